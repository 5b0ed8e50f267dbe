package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/gate"
	gaterego "github.com/airlock-dev/airlock/gate/rego"
	"github.com/airlock-dev/airlock/policies"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/sign"
	"github.com/airlock-dev/airlock/runner"
)

type gateFlags struct {
	config, env, keyPath, format, output, markdown string
	trust, policyDirs                              []string
	dryRun, noRun, promote                         bool
	endpoint, cmdTemplate, baseline                string
	approvals, inputFile, showInput                string
	githubOutput, at                               string
}

func newGateCmd(g *globals) *cobra.Command {
	var f gateFlags
	cmd := &cobra.Command{
		Use:   "gate REF --config gate.yaml [--key K.key]",
		Short: "Decide with policy whether a release may go to an environment, and sign the verdict",
		Long: `Gate resolves REF to its digest and decides, with OPA policy, whether that
exact digest may go to the environment gate.yaml names:

  1. verify the release's signatures with the trusted keys (trust: and --trust);
  2. collect evidence: signed eval and bench attestations on the digest,
     verified with the trusted keys; the baseline (REPO:ENVIRONMENT unless
     baseline: says otherwise) and its evidence; what changed against it,
     part by part;
  3. run what is missing: each eval job whose suite has no fresh evidence
     for this digest (airlock eval with the job's flags and the engine
     flags; compare: true adds the paired comparison against the
     baseline), and the bench job when the SLO needs a benchmark. With
     --key their reports are attached, signed. --no-run runs nothing;
  4. build the policy input document (docs/schemas/gate-input.v1.json)
     and evaluate the built-in policies (see airlock policy test) and
     the user policies (policies: dirs, bundle, and --policy). Any deny
     wins; an error, a timeout or an unexpected result denies;
  5. with --key, attach the signed verdict (environment, outcome,
     reasons, evidence digests, policy revision, expiry) that the
     registry's protected tags and the admission webhook check;
  6. print the decision: text (default), json, markdown, junit, sarif or
     github (workflow annotations) with --format; -o writes it to a file;
     --markdown FILE also writes the Markdown summary ($GITHUB_STEP_SUMMARY
     is appended to);
  7. with --promote, on a pass, point the environment's tag at the digest
     (a registry with protected tags checks the verdict just attached).

--input FILE decides on a policy input document as it is (no registry, no
jobs, nothing signed): for replaying a decision or writing policies.
--show-input FILE writes the document a gate run built.

Exit codes: 0 pass (and any dry run), 1 denied by policy, 2 error or the
policies could not decide, 64 usage.`,
		Example: `  airlock gate localhost:5000/support-bot:1.5.0 --config gate.yaml --key release.key
  airlock gate localhost:5000/support-bot:1.5.0 --config gate.yaml --trust release.pub --no-run --format junit -o gate.xml
  airlock gate localhost:5000/support-bot:1.5.0 --config gate.yaml --key release.key --promote
  airlock gate --input input.json --config gate.yaml --format json`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runGate(cmd.Context(), g, f, a)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "the gate configuration (gate.yaml); see docs/gate.md")
	fl.StringVar(&f.env, "env", "", "the environment to decide for (default: the config's)")
	fl.StringArrayVar(&f.trust, "trust", nil, "a trusted public key (repeatable), beside the config's trust list")
	fl.StringVar(&f.keyPath, "key", "", "private key: signs the verdict and the evidence of jobs the gate runs (its public half is trusted)")
	fl.StringArrayVar(&f.policyDirs, "policy", nil, "a directory (or file) of user policies, beside the config's (repeatable)")
	fl.StringVar(&f.format, "format", "text", "output format: text, "+strings.Join(gate.Formats, ", "))
	fl.StringVarP(&f.output, "output", "o", "", "write the output to this file instead of stdout")
	fl.StringVar(&f.markdown, "markdown", "", "also write the Markdown summary here; $GITHUB_STEP_SUMMARY is appended to")
	fl.BoolVar(&f.dryRun, "dry-run", false, "decide and report, but exit 0 and sign nothing")
	fl.BoolVar(&f.promote, "promote", false, "on a pass, point the environment's tag (REPO:ENVIRONMENT) at the digest")
	fl.BoolVar(&f.noRun, "no-run", false, "run no eval or bench job: decide on the evidence found")
	fl.StringVar(&f.endpoint, "endpoint", "", "the candidate's OpenAI-compatible server for the jobs (replaces the config's engine)")
	fl.StringVar(&f.cmdTemplate, "cmd", "", "the serving command the jobs start on the release (replaces the config's engine)")
	fl.StringVar(&f.baseline, "baseline", "", "the baseline: REF, or none (default: the config's, else REPO:ENVIRONMENT if that tag exists)")
	fl.StringVar(&f.approvals, "approvals", "", "a YAML list of approvals ({by, for, expires, reason}), beside the config's")
	fl.StringVar(&f.inputFile, "input", "", "decide on this policy input document (JSON) as it is")
	fl.StringVar(&f.githubOutput, "github-output", "", "append decision=, digest= and verdict-ref= lines to this file ($GITHUB_OUTPUT in a workflow)")
	fl.StringVar(&f.at, "at", "", "with --input: decide as of this RFC 3339 time (replay a decision), not now")
	fl.StringVar(&f.showInput, "show-input", "", "write the policy input document built to this file")
	return cmd
}

func runGate(ctx context.Context, g *globals, f gateFlags, a []string) error {
	if f.config == "" {
		return usagef("--config is required (gate.yaml; see docs/gate.md)")
	}
	if f.format != "text" && !slices.Contains(gate.Formats, f.format) {
		return usagef("--format %q: want text, %s", f.format, strings.Join(gate.Formats, ", "))
	}
	if (f.inputFile == "") == (len(a) == 0) {
		return usagef("give REF, or --input FILE")
	}
	if f.endpoint != "" && f.cmdTemplate != "" {
		return usagef("--endpoint and --cmd exclude each other")
	}
	cfgBytes, err := os.ReadFile(f.config)
	if err != nil {
		return err
	}
	cfg, err := gate.ParseConfig(cfgBytes, filepath.Dir(f.config))
	if err != nil {
		return err
	}
	if f.env != "" {
		cfg.Environment = f.env
	}
	if f.dryRun {
		cfg.Policies.DryRun = true
	}
	var now func() time.Time
	if f.at != "" {
		if f.inputFile == "" {
			return usagef("--at replays a decision on --input; a gate run decides now")
		}
		t, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return usagef("--at %q: want an RFC 3339 time such as 2026-12-01T12:00:00Z", f.at)
		}
		now = func() time.Time { return t }
	}
	engine, err := loadPolicies(ctx, g, cfg, f.policyDirs, now)
	if err != nil {
		return err
	}
	if f.inputFile != "" {
		raw, err := os.ReadFile(f.inputFile)
		if err != nil {
			return err
		}
		d := engine.DecideJSON(ctx, raw)
		rep := &gate.Report{Decision: d, Release: gate.Subject{Digest: d.Digest}, Evidence: []gate.EvidenceRef{}}
		return finishGate(g, f, rep)
	}
	in, rep, signer, err := buildGateInput(ctx, g, f, cfg, a[0])
	if err != nil {
		return err
	}
	if f.showInput != "" {
		b, err := json.MarshalIndent(in, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.showInput, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	d := engine.Decide(ctx, in)
	rep.Decision = d
	if signer != nil && !d.DryRun && d.Outcome != gate.Error {
		ref, err := parsePinnedRef(in.Release.Ref)
		if err != nil {
			return err
		}
		v := gate.NewVerdict(d, in, cfg.TTL())
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := sign.Attest(ctx, ref, digest.Digest(in.Release.Digest), signer, gate.VerdictType, b, g.signRemote(ref)); err != nil {
			return fmt.Errorf("attaching the verdict: %w", err)
		}
		rep.VerdictRef = verdictReferrer(ctx, g, ref, digest.Digest(in.Release.Digest), signer, d.ID)
		fmt.Fprintf(g.stderr, "attached the signed %s verdict for %s (expires %s)\n", d.Outcome, d.Environment, v.Expires.Format(time.RFC3339))
	}
	if f.promote && d.Outcome == gate.Pass && !d.DryRun {
		ref, err := parsePinnedRef(in.Release.Ref)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		tagged, err := c.Tag(ctx, ref, d.Environment)
		if err != nil {
			return tagRefused(fmt.Errorf("promoting to %s: %w", d.Environment, err))
		}
		rep.Notes = append(rep.Notes, "Promoted: "+tagged.String())
		fmt.Fprintf(g.stderr, "promoted: %s\n", tagged)
	}
	return finishGate(g, f, rep)
}

// verdictReferrer finds the referrer the verdict was stored as, by
// verifying it back: the digest the Action outputs as verdict-ref.
func verdictReferrer(ctx context.Context, g *globals, ref registry.Ref, d digest.Digest, s *sign.Signer, id string) string {
	pub, err := s.Verifier("signer")
	if err != nil {
		return ""
	}
	vr, err := sign.Verify(ctx, ref, d, []*sign.Verifier{pub}, sign.VerifyOptions{Layout: sign.LayoutBundle, PredicateType: gate.VerdictType}, g.signRemote(ref))
	if err != nil {
		return ""
	}
	for _, m := range vr.Matches {
		if v, err := gate.ParseVerdict(m.Predicate); err == nil && v.DecisionID == id {
			return ref.Name() + "@" + m.Referrer
		}
	}
	return ""
}

// finishGate writes the report and maps the outcome to the exit code.
func finishGate(g *globals, f gateFlags, rep *gate.Report) error {
	d := rep.Decision
	w := g.stdout
	if f.output != "" {
		file, err := os.Create(f.output)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	var err error
	if f.format == "text" {
		err = writeGateText(w, rep)
	} else {
		err = rep.Write(w, f.format)
	}
	if err != nil {
		return err
	}
	if f.githubOutput != "" {
		lines := fmt.Sprintf("decision=%s\ndigest=%s\nverdict-ref=%s\n", d.Outcome, rep.Release.Digest, rep.VerdictRef)
		if err := appendFile(f.githubOutput, func(w io.Writer) error { _, err := io.WriteString(w, lines); return err }); err != nil {
			return err
		}
	}
	if f.markdown != "" {
		if err := writeSummary(g, f.markdown, func(w io.Writer) error { return rep.Write(w, "markdown") }); err != nil {
			return err
		}
	}
	if d.DryRun && d.Outcome != gate.Pass {
		fmt.Fprintf(g.stderr, "dry run: the release would be denied (%s); exit 0\n", d.Outcome)
		return nil
	}
	switch d.Outcome {
	case gate.Pass:
		return nil
	case gate.Fail:
		return exitErr{ExitDeny, d.Err()}
	}
	return exitErr{ExitError, d.Err()}
}

// writeSummary writes a Markdown summary to path, or appends when path
// is $GITHUB_STEP_SUMMARY, where each step adds its part (eval and gate).
func writeSummary(g *globals, path string, write func(io.Writer) error) error {
	if path == os.Getenv(EnvGitHubStepSummary) {
		return appendFile(path, write)
	}
	return writeReport(g, path, write)
}

func writeGateText(w io.Writer, rep *gate.Report) error {
	d := rep.Decision
	var b strings.Builder
	verb := "PASS"
	switch {
	case d.Outcome == gate.Error:
		verb = "DENY (the policies could not decide)"
	case d.Outcome != gate.Pass:
		verb = "DENY"
	}
	if d.DryRun && d.Outcome != gate.Pass {
		verb += " (dry run)"
	}
	fmt.Fprintf(&b, "%s %s for %s\n", verb, rep.Release.Digest, d.Environment)
	for _, x := range d.Deny {
		fmt.Fprintf(&b, "  deny  [%s] %s\n", x.Policy, x.Msg)
		if x.Remediation != "" {
			fmt.Fprintf(&b, "          → %s\n", x.Remediation)
		}
	}
	for _, x := range d.Warn {
		demoted := ""
		if x.Demoted {
			demoted = " (deny in warn mode)"
		}
		fmt.Fprintf(&b, "  warn  [%s] %s%s\n", x.Policy, x.Msg, demoted)
	}
	for _, e := range rep.Evidence {
		fmt.Fprintf(&b, "  evidence %s %s %s (%s)\n", e.Kind, e.Suite, short(e.Digest), e.Source)
	}
	fmt.Fprintf(&b, "  decision %s, policy revision %s, %d policies, %.2f ms\n", d.ID, short(d.Revision), len(d.Policies), d.DurationMs)
	if rep.VerdictRef != "" {
		fmt.Fprintf(&b, "  verdict %s\n", rep.VerdictRef)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// loadPolicies prepares the built-in policies (less the disabled ones)
// and the user policies of the config and the command line.
func loadPolicies(ctx context.Context, g *globals, cfg *gate.Config, extra []string, now func() time.Time) (*gaterego.Engine, error) {
	ms, err := gaterego.LoadFS(policies.FS, true)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, d := range cfg.Policies.Dirs {
		dirs = append(dirs, cfg.Path(d))
	}
	dirs = append(dirs, extra...)
	for _, d := range dirs {
		um, err := gaterego.LoadDir(d)
		if err != nil {
			return nil, err
		}
		ms = append(ms, um...)
	}
	if cfg.Policies.Bundle != "" {
		um, err := pullPolicyBundle(ctx, g, cfg.Policies.Bundle)
		if err != nil {
			return nil, err
		}
		ms = append(ms, um...)
	}
	return gaterego.New(ctx, ms, gaterego.Options{
		Disable: cfg.Policies.Disable, Warn: cfg.Policies.Warn, DryRun: cfg.Policies.DryRun, Timeout: cfg.Timeout(), Now: now,
	})
}

// buildGateInput does steps 1 to 3 of the gate: verify, collect evidence,
// run what is missing; and builds the policy input.
func buildGateInput(ctx context.Context, g *globals, f gateFlags, cfg *gate.Config, refArg string) (*gate.Input, *gate.Report, *sign.Signer, error) {
	var signer *sign.Signer
	var keys []*sign.Verifier
	if f.keyPath != "" {
		s, err := loadSigner(g, f.keyPath)
		if err != nil {
			return nil, nil, nil, err
		}
		signer = s
		pub, err := s.Verifier(filepath.Base(f.keyPath))
		if err != nil {
			return nil, nil, nil, err
		}
		keys = append(keys, pub)
	}
	var trust []string
	for _, t := range cfg.Trust {
		trust = append(trust, cfg.Path(t))
	}
	more, err := loadVerifiers(append(trust, f.trust...))
	if err != nil {
		return nil, nil, nil, err
	}
	keys = append(keys, more...)
	if len(keys) == 0 {
		return nil, nil, nil, usagef("no trusted key: list public keys under trust: in the config, or give --trust K.pub or --key K.key")
	}
	approvals := slices.Clone(cfg.Approvals)
	for _, p := range []string{cfg.Path(cfg.ApprovalsFile), f.approvals} {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, nil, err
		}
		as, err := gate.ParseApprovals(b)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		approvals = append(approvals, as...)
	}
	slo := cfg.SLO
	if cfg.SLOFile != "" {
		b, err := os.ReadFile(cfg.Path(cfg.SLOFile))
		if err != nil {
			return nil, nil, nil, err
		}
		base, err := gate.ParseSLO(b)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", cfg.SLOFile, err)
		}
		slo = gate.MergeSLO(base, slo)
	}

	ref, err := parseRef(refArg)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := g.client()
	if err != nil {
		return nil, nil, nil, err
	}
	insp, err := c.Inspect(ctx, ref)
	if err != nil {
		return nil, nil, nil, err
	}
	dg := insp.Descriptor.Digest
	pinned := ref.WithDigest(dg)
	now := time.Now().UTC()
	fmt.Fprintf(g.stderr, "gate: %s is %s; deciding for %s\n", ref, dg, cfg.Environment)

	in := &gate.Input{
		Schema: gate.InputSchema, Stage: gate.StageCI, Now: now,
		Environment: gate.Environment{Name: cfg.Environment},
		Release:     gate.ReleaseFrom(pinned.String(), dg.String(), insp.Manifest, insp.File),
		Signatures:  gate.Signatures{Keys: []gate.Signer{}, Problems: []string{}},
		Evals:       []gate.EvalEvidence{}, Bench: []gate.BenchEvidence{},
		SLO: slo, Rules: cfg.EffectiveRules(), Approvals: approvals,
	}
	if in.Approvals == nil {
		in.Approvals = []gate.Approval{}
	}
	rep := &gate.Report{Release: gate.Subject{Ref: pinned.String(), Digest: dg.String()}}

	// 1. Signatures.
	sr, err := sign.Verify(ctx, pinned, dg, keys, sign.VerifyOptions{}, g.signRemote(pinned))
	switch {
	case err == nil || errors.Is(err, sign.ErrNotVerified):
		if sr != nil {
			in.Signatures.Verified = sr.Verified
			for _, m := range sr.Matches {
				in.Signatures.Keys = append(in.Signatures.Keys, gate.Signer{Name: filepath.Base(m.Key), KeyID: m.KeyID, Layout: m.Layout})
			}
			for _, p := range sr.Problems {
				in.Signatures.Problems = append(in.Signatures.Problems, p.Reason)
			}
		}
	default:
		return nil, nil, nil, fmt.Errorf("verifying signatures: %w", err)
	}

	// 2. Evidence on the release, and the baseline.
	if cfg.ReuseEvidence() {
		in.Evals, in.Bench, err = signedEvidence(ctx, g, pinned, dg, keys, now)
		if err != nil {
			return nil, nil, nil, err
		}
	}
	base, err := resolveBaseline(ctx, g, c, cfg, f.baseline, ref, dg)
	if err != nil {
		return nil, nil, nil, err
	}
	if base != nil {
		in.Baseline = &gate.Baseline{Ref: base.Ref.String(), Digest: base.Descriptor.Digest.String(), Parts: gate.Parts(base.Manifest)}
		in.Baseline.Evals, in.Baseline.Bench, err = signedEvidence(ctx, g, base.Ref, base.Descriptor.Digest, keys, now)
		if err != nil {
			return nil, nil, nil, err
		}
		in.Changes = gate.Diff(in.Release.Parts, in.Baseline.Parts)
		rep.Baseline = &gate.Subject{Ref: in.Baseline.Ref, Digest: in.Baseline.Digest}
		fmt.Fprintf(g.stderr, "gate: baseline %s; changed: %s\n", base.Ref, describeChanges(in.Changes))
	} else {
		in.Changes = gate.FirstRelease(in.Release.Parts)
		fmt.Fprintln(g.stderr, "gate: no baseline; every part counts as new")
	}

	// 3. Run what is missing.
	if !f.noRun {
		if err := runMissing(ctx, g, f, cfg, in, pinned, signer, rep); err != nil {
			return nil, nil, nil, err
		}
	}
	in.Metrics = gate.Flatten(in.Evals, in.Bench)
	rep.Changes = in.Changes
	rep.Evidence = []gate.EvidenceRef{}
	for _, e := range in.Evals {
		rep.Evidence = append(rep.Evidence, gate.EvidenceRef{Kind: "eval", Suite: e.Suite, Digest: e.Digest, Source: e.Source})
	}
	for _, b := range in.Bench {
		rep.Evidence = append(rep.Evidence, gate.EvidenceRef{Kind: "bench", Digest: b.Digest, Source: b.Source})
	}
	return in, rep, signer, nil
}

func describeChanges(c gate.Changes) string {
	if len(c.Parts) == 0 {
		return "no part (only the release file)"
	}
	var s []string
	for _, p := range c.Parts {
		s = append(s, p.Change+" "+p.Path)
	}
	return strings.Join(s, ", ")
}

// signedEvidence reads the eval and bench attestations on ref@d that
// verify with keys. A release with none has no evidence, not an error.
func signedEvidence(ctx context.Context, g *globals, ref registry.Ref, d digest.Digest, keys []*sign.Verifier, now time.Time) ([]gate.EvalEvidence, []gate.BenchEvidence, error) {
	es, bs := []gate.EvalEvidence{}, []gate.BenchEvidence{}
	for _, pt := range []string{evals.ReportSchema, runner.ReportSchema} {
		vr, err := sign.Verify(ctx, ref, d, keys, sign.VerifyOptions{Layout: sign.LayoutBundle, PredicateType: pt}, g.signRemote(ref))
		if err != nil && !errors.Is(err, sign.ErrNotVerified) {
			return nil, nil, fmt.Errorf("reading evidence on %s: %w", ref, err)
		}
		if vr == nil {
			continue
		}
		for _, m := range vr.Matches {
			meta := gate.EvidenceMeta{Source: gate.SourceAttestation, Signed: true, Signer: filepath.Base(m.Key)}
			if pt == evals.ReportSchema {
				es = append(es, gate.EvalFrom(m.Predicate, meta, now))
			} else {
				bs = append(bs, gate.BenchFrom(m.Predicate, meta, now))
			}
		}
		for _, p := range vr.Problems {
			// A broken attestation is evidence that cannot be read.
			meta := gate.EvidenceMeta{Digest: p.Referrer, Source: gate.SourceAttestation, Problem: p.Reason}
			if pt == evals.ReportSchema {
				es = append(es, gate.EvalEvidence{EvidenceMeta: meta, Slices: map[string]gate.Rate{}})
			} else {
				bs = append(bs, gate.BenchEvidence{EvidenceMeta: meta})
			}
		}
	}
	return es, bs, nil
}

// resolveBaseline finds the release the candidate replaces: --baseline,
// the config's, or REPO:ENVIRONMENT when that tag exists. The candidate
// itself is no baseline.
func resolveBaseline(ctx context.Context, g *globals, c *client.Client, cfg *gate.Config, flag string, ref registry.Ref, candidate digest.Digest) (*client.Inspection, error) {
	spec := cmpNonEmpty(flag, cfg.Baseline)
	if spec == "none" {
		return nil, nil
	}
	explicit := spec != ""
	var bref registry.Ref
	var err error
	if explicit {
		if bref, err = parseRef(spec); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
	} else {
		bref = ref
		bref.Tag, bref.Digest = cfg.Environment, ""
	}
	insp, err := c.Inspect(ctx, bref)
	if err != nil {
		if !explicit && errors.Is(err, registry.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("baseline %s: %w", bref, err)
	}
	if insp.Descriptor.Digest == candidate {
		fmt.Fprintf(g.stderr, "gate: %s is the candidate itself; no baseline\n", bref)
		return nil, nil
	}
	return insp, nil
}

// usableFor reports whether evidence meta counts for the release now, as
// the built-in evidence policy judges it.
func usableFor(m gate.EvidenceMeta, d string, maxAge time.Duration, now time.Time) bool {
	return m.Problem == "" && m.ReleaseDigest == d && now.Sub(m.Time) <= maxAge && (m.Signed || m.Source == gate.SourceRun)
}

// runMissing runs the eval jobs whose suites lack usable evidence and the
// bench job when a benchmark is needed and missing.
func runMissing(ctx context.Context, g *globals, f gateFlags, cfg *gate.Config, in *gate.Input, ref registry.Ref, signer *sign.Signer, rep *gate.Report) error {
	rules := in.Rules
	required := rules.RequiredSuites
	if in.Changes.PromptOnly && len(rules.PromptOnlySuites) > 0 {
		required = rules.PromptOnlySuites
	}
	maxAge := time.Duration(rules.MaxEvidenceAgeHours * float64(time.Hour))
	engine := cfg.Engine
	switch {
	case f.endpoint != "":
		engine = []string{"--endpoint", f.endpoint}
	case f.cmdTemplate != "":
		engine = []string{"--cmd", f.cmdTemplate}
	}
	work, err := os.MkdirTemp("", "airlock-gate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	attach := func(args []string) []string {
		if signer != nil {
			return append(args, "--attach", "--key", f.keyPath)
		}
		return args
	}
	for _, j := range cfg.Evals {
		name := j.SuiteName()
		if !slices.Contains(required, name) {
			continue
		}
		have := slices.ContainsFunc(in.Evals, func(e gate.EvalEvidence) bool {
			if e.Suite != name || !usableFor(e.EvidenceMeta, in.Release.Digest, maxAge, in.Now) {
				return false
			}
			if j.Compare && in.Baseline != nil {
				return e.Comparison != nil && e.Comparison.BaselineDigest == in.Baseline.Digest
			}
			return true
		})
		if have {
			fmt.Fprintf(g.stderr, "gate: reusing signed evidence for suite %s\n", name)
			continue
		}
		if len(engine) == 0 {
			return usagef("suite %s has no usable evidence and the config gives no engine (engine: [--endpoint, URL] or --cmd) to run it", name)
		}
		out := filepath.Join(work, "eval-"+name+".json")
		args := []string{"eval", ref.String(), "--suite", resolveSuiteArg(cfg, j.Suite), "-o", out}
		args = append(args, engine...)
		if j.Compare && in.Baseline != nil {
			args = append(args, "--baseline", in.Baseline.Ref)
			if len(cfg.BaselineEngine) > 0 {
				args = append(args, cfg.BaselineEngine...)
			} else {
				for _, k := range append(slices.Clone(cfg.Trust), f.trust...) {
					args = append(args, "--baseline-key", cfg.Path(k))
				}
				if signer != nil {
					pem, err := signer.PublicPEM()
					if err != nil {
						return err
					}
					pub := filepath.Join(work, "signer.pub")
					if err := os.WriteFile(pub, pem, 0o644); err != nil {
						return err
					}
					args = append(args, "--baseline-key", pub)
				}
			}
		}
		args = attach(append(args, configPaths(cfg, j.Args)...))
		raw, err := runJob(ctx, g, args, out)
		if err != nil {
			return fmt.Errorf("eval job for suite %s: %w", name, err)
		}
		e := gate.EvalFrom(raw, gate.EvidenceMeta{Source: gate.SourceRun}, in.Now)
		in.Evals = append(in.Evals, e)
		rep.Ran = append(rep.Ran, "eval "+name)
	}
	needBench := rules.RequireBench && !slices.ContainsFunc(in.Bench, func(b gate.BenchEvidence) bool {
		return usableFor(b.EvidenceMeta, in.Release.Digest, maxAge, in.Now)
	})
	if needBench && cfg.Bench != nil {
		if len(engine) == 0 {
			return usagef("a benchmark is needed and the config gives no engine to run it")
		}
		out := filepath.Join(work, "bench.json")
		args := append([]string{"bench", ref.String(), "-o", out, "--summary-only"}, engine...)
		args = attach(append(args, configPaths(cfg, cfg.Bench.Args)...))
		raw, err := runJob(ctx, g, args, out)
		if err != nil {
			return fmt.Errorf("bench job: %w", err)
		}
		in.Bench = append(in.Bench, gate.BenchFrom(raw, gate.EvidenceMeta{Source: gate.SourceRun}, in.Now))
		rep.Ran = append(rep.Ran, "bench")
	} else if !needBench && rules.RequireBench {
		fmt.Fprintln(g.stderr, "gate: reusing signed benchmark evidence")
	}
	return nil
}

// jobPathFlags are the eval and bench flags whose value is a file: in
// gate.yaml they are relative to the config's directory.
var jobPathFlags = []string{"--prices", "--input", "--server-log", "--baseline-report", "--baseline-import", "--import", "--output-jsonl"}

// configPaths resolves the file arguments of a job's flags against the
// config's directory.
func configPaths(cfg *gate.Config, args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if name, val, ok := strings.Cut(a, "="); ok && slices.Contains(jobPathFlags, name) {
			out[i] = name + "=" + cfg.Path(val)
		} else if slices.Contains(jobPathFlags, a) && i+1 < len(out) {
			out[i+1] = cfg.Path(out[i+1])
		}
	}
	return out
}

// resolveSuiteArg makes a suite file path relative to the config.
func resolveSuiteArg(cfg *gate.Config, s string) string {
	if strings.HasPrefix(s, "builtin:") || strings.HasPrefix(s, "release:") {
		return s
	}
	return cfg.Path(s)
}

// runJob runs an airlock eval or bench command line in this process, its
// output on stderr, and returns the report it wrote. Eval's exit 1
// (inferior) and 2 with a report (inconclusive) are results for the
// policies to judge, not failures of the job.
func runJob(ctx context.Context, g *globals, args []string, out string) ([]byte, error) {
	var global []string
	if g.plainHTTP {
		global = append(global, "--plain-http")
	}
	if g.insecure {
		global = append(global, "--insecure")
	}
	if g.noProgress {
		global = append(global, "--no-progress")
	}
	fmt.Fprintf(g.stderr, "gate: running airlock %s\n", strings.Join(args, " "))
	code := Run(ctx, append(args, global...), g.stdin, g.stderr, g.stderr)
	raw, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("airlock %s exited %d and wrote no report", args[0], code)
	}
	if code != ExitOK {
		fmt.Fprintf(g.stderr, "gate: airlock %s exited %d; its report goes to the policies\n", args[0], code)
	}
	return raw, nil
}
