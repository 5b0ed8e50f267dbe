package gate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/airlock-dev/airlock/runner"
)

// ContentDigest is the sha256 digest of b, as evidence is named.
func ContentDigest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ReleaseFrom builds the input's release from a manifest and the release
// file it carries (nil when it carries none).
func ReleaseFrom(ref, digest string, m ocispec.Manifest, file *pack.Release) Release {
	r := Release{Ref: ref, Digest: digest, Parts: Parts(m), Annotations: map[string]string{}, DataScopes: []string{}, Datasets: []Dataset{}}
	for k, v := range m.Annotations {
		if k == registry.AnnotationRelease {
			continue // the release file is given field by field below
		}
		r.Annotations[k] = v
	}
	if file == nil {
		return r
	}
	r.Name, r.Version = file.Metadata.Name, file.Metadata.Version
	r.Owner, r.License = file.Metadata.Owner, file.Metadata.License
	r.DataScopes = append(r.DataScopes, file.DataScopes...)
	for _, d := range file.Datasets {
		r.Datasets = append(r.Datasets, Dataset{Name: d.Name, License: d.License, Digest: d.Digest})
	}
	r.BaseModel = file.BaseModel
	if file.Model != nil {
		r.Model = &ModelFacts{Format: file.Model.Format, Architecture: file.Model.Architecture, ParamSize: file.Model.ParamSize, Precision: file.Model.Precision}
	}
	return r
}

// Parts lists a manifest's layers as parts, sorted by path.
func Parts(m ocispec.Manifest) []Part {
	ps := []Part{}
	for _, l := range m.Layers {
		p := l.Annotations[registry.AnnotationFilepath]
		if p == "" {
			p = l.Annotations[ocispec.AnnotationTitle]
		}
		ps = append(ps, Part{Role: l.Annotations[registry.AnnotationRole], Path: p, Digest: l.Digest.String(), Size: l.Size, MediaType: l.MediaType})
	}
	slices.SortFunc(ps, func(a, b Part) int { return strings.Compare(a.Path, b.Path) })
	return ps
}

// Diff says what changed from baseline to candidate parts, by path.
func Diff(candidate, baseline []Part) Changes {
	c := Changes{Parts: []PartChange{}, Roles: []string{}}
	old := map[string]Part{}
	for _, p := range baseline {
		old[p.Path] = p
	}
	seen := map[string]bool{}
	for _, p := range candidate {
		seen[p.Path] = true
		o, ok := old[p.Path]
		switch {
		case !ok:
			c.Parts = append(c.Parts, PartChange{Role: p.Role, Path: p.Path, Change: ChangeAdded, To: p.Digest})
		case o.Digest != p.Digest || o.Role != p.Role:
			c.Parts = append(c.Parts, PartChange{Role: p.Role, Path: p.Path, Change: ChangeModified, From: o.Digest, To: p.Digest})
		}
	}
	for _, p := range baseline {
		if !seen[p.Path] {
			c.Parts = append(c.Parts, PartChange{Role: p.Role, Path: p.Path, Change: ChangeRemoved, From: p.Digest})
		}
	}
	for _, pc := range c.Parts {
		if !slices.Contains(c.Roles, pc.Role) {
			c.Roles = append(c.Roles, pc.Role)
		}
	}
	slices.Sort(c.Roles)
	c.PromptOnly = len(c.Roles) == 1 && c.Roles[0] == string(registry.RolePrompt)
	return c
}

// FirstRelease is the change set of a release with no baseline: every
// part is new.
func FirstRelease(parts []Part) Changes {
	c := Diff(parts, nil)
	c.FirstRelease = true
	c.PromptOnly = false
	return c
}

// EvalFrom reduces an eval report (its JSON as read) to evidence. A
// report that does not parse is still evidence, with Problem set, so that
// policies deny on it rather than miss it.
func EvalFrom(raw []byte, meta EvidenceMeta, now time.Time) EvalEvidence {
	meta.Digest = ContentDigest(raw)
	e := EvalEvidence{EvidenceMeta: meta, Slices: map[string]Rate{}}
	var r evals.Report
	release := ""
	err := json.Unmarshal(raw, &r)
	if err == nil && r.Release != nil {
		release = r.Release.Digest
	}
	if !e.read("an eval", evals.ReportSchema, err, r.Schema, release, r.Started, now) {
		return e
	}
	e.Suite, e.SuiteDigest, e.Items = r.Suite.Name, r.Suite.Digest, r.Suite.Items
	e.Engine = r.Engine.Kind
	m := r.Metrics
	e.PassRate = rate(m.PassRate)
	if m.SafetyViolations != nil {
		x := rate(*m.SafetyViolations)
		e.SafetyViolations = &x
	}
	if m.BenignRefusals != nil {
		x := rate(*m.BenignRefusals)
		e.BenignRefusals = &x
	}
	if m.Latency != nil && m.Latency.Samples > 0 {
		x := m.Latency.P95
		e.LatencyP95Ms = &x
	}
	if m.Cost != nil && m.Cost.Samples > 0 {
		x := m.Cost.TotalUSD / float64(m.Cost.Samples) * 1e6
		e.CostUSPerRequest = &x
	}
	for _, n := range m.Errors {
		e.Errors += n
	}
	for _, s := range m.Slices {
		e.Slices[s.Tag] = rate(s.PassRate)
	}
	if b := r.Baseline; b != nil {
		p := b.Paired
		e.Comparison = &Comparison{
			BaselineDigest: b.Release.Digest, Verdict: string(p.Verdict), Delta: p.Delta,
			Lower: p.CI.Lo, Upper: p.CI.Hi, PValue: p.PValue, Margin: p.Margin,
			Items: p.Wins + p.Losses + p.Ties, MinItems: p.MinN, Regressed: append([]string{}, p.Regressed...),
		}
	}
	return e
}

// read records what every report says about itself (the release it is
// about, when it started), or the problem when it is not a report of
// its kind: the decode error, or another schema.
func (m *EvidenceMeta) read(kind, want string, decodeErr error, schema, release string, started, now time.Time) bool {
	switch {
	case decodeErr != nil:
		m.Problem = fmt.Sprintf("not %s report: %v", kind, decodeErr)
	case schema != want:
		m.Problem = fmt.Sprintf("not %s report: schema %q, want %s", kind, schema, want)
	default:
		m.ReleaseDigest = release
		m.Time = started.UTC()
		m.AgeHours = now.Sub(started).Hours()
		return true
	}
	return false
}

func rate(r evals.Rate) Rate {
	return Rate{Value: r.Value, Lower: r.Interval.Lo, Upper: r.Interval.Hi, Items: r.Items, Samples: r.Samples}
}

// BenchFrom reduces a benchmark report to evidence, as EvalFrom does.
func BenchFrom(raw []byte, meta EvidenceMeta, now time.Time) BenchEvidence {
	meta.Digest = ContentDigest(raw)
	e := BenchEvidence{EvidenceMeta: meta}
	var r runner.Report
	release := ""
	err := json.Unmarshal(raw, &r)
	if err == nil && r.Release != nil {
		release = r.Release.Digest
	}
	if !e.read("a bench", runner.ReportSchema, err, r.Schema, release, r.Started, now) {
		return e
	}
	s := r.Summary
	e.Requests, e.Failed, e.ErrorRate = s.Requests, s.Failed, s.ErrorRate
	e.TTFTP95Ms = s.TTFT.P95 * 1000
	e.TPOTP95Ms = s.TPOT.P95 * 1000
	e.E2EP50Ms, e.E2EP95Ms, e.E2EP99Ms = s.E2E.P50*1000, s.E2E.P95*1000, s.E2E.P99*1000
	e.OutputTokensPerRequest = s.OutputTokensPerRequest.Mean
	e.GPU.Status = r.GPU.Status
	if sum := r.GPU.Summary; sum != nil {
		e.GPU.Count = len(sum.GPUs)
		for _, g := range sum.GPUs {
			if g.PeakMemoryUsed != nil {
				e.GPU.PeakMemoryBytes += int64(*g.PeakMemoryUsed)
			}
		}
	}
	return e
}

// Flatten names every number of the evidence for input.metrics: eval
// numbers as eval.SUITE.NAME, slices as eval.SUITE.slice.TAG.pass_rate,
// and the newest usable benchmark's as bench.NAME. Evidence with a
// problem contributes nothing.
func Flatten(es []EvalEvidence, bs []BenchEvidence) map[string]float64 {
	m := map[string]float64{}
	for _, e := range es {
		if e.Problem != "" {
			continue
		}
		p := "eval." + e.Suite + "."
		m[p+"pass_rate"] = e.PassRate.Value
		m[p+"pass_rate_lower"] = e.PassRate.Lower
		m[p+"pass_rate_upper"] = e.PassRate.Upper
		m[p+"items"] = float64(e.Items)
		m[p+"errors"] = float64(e.Errors)
		if e.SafetyViolations != nil {
			m[p+"safety_violation_rate"] = e.SafetyViolations.Value
			m[p+"safety_violation_upper"] = e.SafetyViolations.Upper
		}
		if e.BenignRefusals != nil {
			m[p+"benign_refusal_rate"] = e.BenignRefusals.Value
		}
		if e.LatencyP95Ms != nil {
			m[p+"latency_p95_ms"] = *e.LatencyP95Ms
		}
		if e.CostUSPerRequest != nil {
			m[p+"cost_us_per_request"] = *e.CostUSPerRequest
		}
		if c := e.Comparison; c != nil {
			m[p+"paired_delta"] = c.Delta
			m[p+"paired_delta_lower"] = c.Lower
		}
		for tag, r := range e.Slices {
			m[p+"slice."+tag+".pass_rate"] = r.Value
		}
	}
	var newest *BenchEvidence
	for i := range bs {
		if bs[i].Problem == "" && (newest == nil || bs[i].Time.After(newest.Time)) {
			newest = &bs[i]
		}
	}
	if b := newest; b != nil {
		m["bench.requests"] = float64(b.Requests)
		m["bench.error_rate"] = b.ErrorRate
		m["bench.ttft_p95_ms"] = b.TTFTP95Ms
		m["bench.tpot_p95_ms"] = b.TPOTP95Ms
		m["bench.e2e_p50_ms"] = b.E2EP50Ms
		m["bench.e2e_p95_ms"] = b.E2EP95Ms
		m["bench.e2e_p99_ms"] = b.E2EP99Ms
		m["bench.output_tokens_per_request"] = b.OutputTokensPerRequest
		m["bench.gpu_peak_memory_bytes"] = float64(b.GPU.PeakMemoryBytes)
	}
	return m
}
