package evals

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// ReportSchema names the eval report and the eval attestation's predicate
// type (DESIGN.md §3). The JSON Schema is docs/schemas/eval-report.v1.json.
const ReportSchema = "https://airlock.dev/attestations/eval/v1"

// ReleaseRef names the release an eval was about.
type ReleaseRef struct {
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// SuiteRef names the suite: the digest is of its file's bytes.
type SuiteRef struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Items  int    `json:"items"`
}

// EngineRef is what answered: the engine kind, the served model, the
// endpoint when there is one.
type EngineRef struct {
	Kind     string `json:"kind"`
	Model    string `json:"model,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Version  string `json:"version,omitempty"`
}

// ShippedRef records what of the release was applied: the digests of its
// system prompt and safety file, and the request settings they gave.
type ShippedRef struct {
	SystemPrompt string   `json:"system_prompt_digest,omitempty"`
	Safety       string   `json:"safety_digest,omitempty"`
	MaxTokens    int      `json:"max_tokens,omitempty"`
	Temperature  *float64 `json:"temperature,omitempty"`
	Redact       []string `json:"redact_output,omitempty"`
}

// Baseline is the release the candidate is compared with.
type Baseline struct {
	Release ReleaseRef `json:"release"`
	Engine  EngineRef  `json:"engine"`
	// Shipped is what of the baseline release was applied, when it was
	// run: with the candidate's, it shows a prompt-only or safety-only
	// change.
	Shipped *ShippedRef  `json:"shipped,omitempty"`
	Metrics Metrics      `json:"metrics"`
	Paired  PairedReport `json:"paired"`
	// Pairwise is the judge's side-by-side verdict, when one was asked.
	Pairwise *Pairwise `json:"pairwise,omitempty"`
	Samples  []Sample  `json:"samples,omitempty"`
}

// Report is an eval's result: the per-sample outcomes (for paired tests
// later), the metrics with intervals, what was evaluated and how. It is
// the eval attestation's predicate when attached.
type Report struct {
	Schema   string      `json:"schema"`
	RunID    string      `json:"run_id"`
	Tool     string      `json:"tool"`
	Release  *ReleaseRef `json:"release,omitempty"`
	Suite    SuiteRef    `json:"suite"`
	Engine   EngineRef   `json:"engine"`
	Seed     uint64      `json:"seed"`
	Shipped  *ShippedRef `json:"shipped,omitempty"`
	Started  time.Time   `json:"started"`
	Duration float64     `json:"duration_seconds"`
	// Imported names the file format evidence was read from, when the
	// samples were not produced by Airlock (promptfoo, lm-eval).
	Imported string `json:"imported,omitempty"`
	// Cached is how many samples came from the result cache.
	Cached   int       `json:"cached_samples,omitempty"`
	Metrics  Metrics   `json:"metrics"`
	Baseline *Baseline `json:"baseline,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
	Samples  []Sample  `json:"samples"`
}

// Digest is the sha256 digest of data, as OCI writes digests.
func Digest(data []byte) string {
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:])
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

func rateCell(r Rate) string {
	return fmt.Sprintf("%s [%s, %s]", pct(r.Value), pct(r.Interval.Lo), pct(r.Interval.Hi))
}

// WriteMarkdown writes a summary for people (a pull request, the GitHub
// step summary): metrics with intervals, the comparison and its verdict,
// the items that flipped, failing items.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	m := &r.Metrics
	title := r.Suite.Name
	fmt.Fprintf(&b, "## Airlock eval: %s\n\n", title)
	if r.Release != nil {
		fmt.Fprintf(&b, "Release `%s` (`%s`), ", r.Release.Ref, r.Release.Digest)
	}
	fmt.Fprintf(&b, "suite `%s` (`%s`, %d items), engine %s", r.Suite.Name, short(r.Suite.Digest), r.Suite.Items, r.Engine.Kind)
	if r.Engine.Model != "" {
		fmt.Fprintf(&b, " model `%s`", r.Engine.Model)
	}
	if r.Imported != "" {
		fmt.Fprintf(&b, ", imported from %s", r.Imported)
	}
	fmt.Fprintf(&b, ", seed %d.\n\n", r.Seed)
	conf := fmt.Sprintf("%.0f%%", 100*m.Confidence)
	fmt.Fprintf(&b, "| metric | value | %s interval |\n|---|---|---|\n", conf)
	fmt.Fprintf(&b, "| pass rate | %s (%.4g of %d items) | [%s, %s] |\n", pct(m.PassRate.Value), m.PassRate.Count, m.PassRate.Items, pct(m.PassRate.Interval.Lo), pct(m.PassRate.Interval.Hi))
	for _, k := range m.PassAtK {
		fmt.Fprintf(&b, "| pass@%d | %s (%d items) | |\n", k.K, pct(k.Value), k.Items)
	}
	if s := m.SafetyViolations; s != nil {
		fmt.Fprintf(&b, "| safety violations | %s (%.4g of %d items) | upper bound %s |\n", pct(s.Value), s.Count, s.Items, pct(s.Upper))
	}
	if s := m.BenignRefusals; s != nil {
		fmt.Fprintf(&b, "| refusals of benign items | %s (%.4g of %d items) | upper bound %s |\n", pct(s.Value), s.Count, s.Items, pct(s.Upper))
	}
	if l := m.Latency; l != nil {
		fmt.Fprintf(&b, "| latency p50 / p95 / p99 | %.0f / %.0f / %.0f ms | |\n", l.P50, l.P95, l.P99)
	}
	if c := m.Cost; c != nil {
		if c.NoSuccess {
			fmt.Fprintf(&b, "| cost per success | no success (total $%.4f) | |\n", c.TotalUSD)
		} else {
			fmt.Fprintf(&b, "| cost per success | $%.6f (total $%.4f) | |\n", *c.CostPerSuccess, c.TotalUSD)
		}
	}
	if len(m.Errors) > 0 {
		var parts []string
		for k, v := range m.Errors {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		fmt.Fprintf(&b, "| samples with no output (counted as failures) | %s | |\n", strings.Join(parts, ", "))
	}
	if len(m.Slices) > 0 {
		b.WriteString("\n| tag | pass rate | items |\n|---|---|---|\n")
		for _, s := range m.Slices {
			fmt.Fprintf(&b, "| %s | %s | %d |\n", s.Tag, rateCell(s.PassRate), s.PassRate.Items)
		}
	}
	if bl := r.Baseline; bl != nil {
		p := &bl.Paired
		fmt.Fprintf(&b, "\n### Against the baseline `%s`\n\n", bl.Release.Ref)
		fmt.Fprintf(&b, "**%s** at a margin of %.1f points (one-sided α %.2g): pass rate %s → %s, difference %+.1f points, %.0f%% interval [%+.1f, %+.1f], paired bootstrap [%+.1f, %+.1f]; exact McNemar p = %.3g; %d wins, %d losses, %d ties over %d paired items (at least %d needed).\n",
			verdictText(p.Verdict), 100*p.Margin, p.Alpha, pct(bl.Metrics.PassRate.Value), pct(m.PassRate.Value),
			100*p.Delta, 100*(1-2*p.Alpha), 100*p.CI.Lo, 100*p.CI.Hi, 100*p.Bootstrap.CI.Lo, 100*p.Bootstrap.CI.Hi,
			p.PValue, p.Wins, p.Losses, p.N-p.Wins-p.Losses, p.N, p.MinN)
		if pw := bl.Pairwise; pw != nil {
			w := pw.WinRate
			fmt.Fprintf(&b, "\nJudged side by side by `%s` (each item in both orders; a win counts only when both agree): win rate %s, %d wins, %d losses, %d ties, sign test p = %.3g.\n",
				pw.Judge, pct(w.Rate), w.Wins, w.Losses, w.Ties, w.PValue)
		}
		if len(p.Regressed) > 0 {
			fmt.Fprintf(&b, "\nRegressed (passed before, fail now): %s\n", codeList(p.Regressed))
		}
		if len(p.Fixed) > 0 {
			fmt.Fprintf(&b, "\nFixed (failed before, pass now): %s\n", codeList(p.Fixed))
		}
		if len(p.Missing) > 0 {
			fmt.Fprintf(&b, "\nLeft out, in one arm only: %s\n", codeList(p.Missing))
		}
	}
	var failing []string
	seen := map[string]bool{}
	for i := range r.Samples {
		s := &r.Samples[i]
		if (s.Pass && s.Error == "") || seen[s.ID] {
			continue
		}
		seen[s.ID] = true
		why := s.Error
		if why == "" {
			for _, c := range s.Checks {
				if !c.Pass {
					why = c.Type
					if c.Detail != "" {
						why += ": " + c.Detail
					}
					break
				}
			}
		}
		failing = append(failing, fmt.Sprintf("| `%s` | %s |", s.ID, strings.ReplaceAll(why, "|", "\\|")))
	}
	if len(failing) > 0 {
		fmt.Fprintf(&b, "\n<details><summary>%d failing items</summary>\n\n| item | first failed check |\n|---|---|\n%s\n\n</details>\n", len(failing), strings.Join(failing, "\n"))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n> %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func verdictText(v Verdict) string {
	switch v {
	case NonInferior:
		return "Non-inferior"
	case Inferior:
		return "Worse than the baseline"
	case Inconclusive:
		return "Inconclusive"
	case InsufficientEvidence:
		return "Insufficient evidence"
	}
	return string(v)
}

func codeList(ids []string) string {
	const most = 20
	var parts []string
	for i, id := range ids {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-most))
			break
		}
		parts = append(parts, "`"+id+"`")
	}
	return strings.Join(parts, ", ")
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
