package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/airlock-dev/airlock/runner/sim"
)

const demoSuite = "../../../examples/demo-model/suite.yaml"

// simServer serves a built-in version of the reference model server (a
// simulator) and counts the generation requests it gets.
func simServer(t *testing.T, version string) (string, *atomic.Int64) {
	t.Helper()
	cfg, _, err := sim.Version(version)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	h := sim.New(cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func readEvalReport(t *testing.T, path string) *evals.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r evals.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestEvalCLI: two releases in a registry, the candidate served by the
// simulator's regressed version and the baseline by its good one: a
// significant paired loss with the flipped items, exit 1; the report and
// its Markdown; the cache; the signed eval attestation.
func TestEvalCLI(t *testing.T) {
	isolate(t)
	good, goodN := simServer(t, "good")
	bad, _ := simServer(t, "regressed")
	srv := regtest.Airlock(t, server.Config{})
	dir := t.TempDir()

	// 1.4.0 is the example; 1.5.0 changes only its system prompt.
	v2 := filepath.Join(dir, "v2")
	if err := os.CopyFS(v2, os.DirFS(example)); err != nil {
		t.Fatal(err)
	}
	rel, _ := os.ReadFile(filepath.Join(v2, "airlock.yaml"))
	os.WriteFile(filepath.Join(v2, "airlock.yaml"), bytes.Replace(rel, []byte("version: 1.4.0"), []byte("version: 1.5.0"), 1), 0o644)
	os.WriteFile(filepath.Join(v2, "prompts/system.md"), []byte("You help {{customer_name}} with order {{order_id}}. Be brief.\n"), 0o644)
	for _, d := range []string{example, v2} {
		if code, _, errs := airlock(t, "push", d, srv.Host+"/bot"); code != ExitOK {
			t.Fatalf("push %s: %s", d, errs)
		}
	}
	cand, base := srv.Host+"/bot:1.5.0", srv.Host+"/bot:1.4.0"

	report, md := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.md")
	code, _, errs := airlock(t, "eval", cand, "--suite", demoSuite, "--endpoint", bad, "--baseline", base, "--baseline-endpoint", good,
		"--margin", "0.05", "-o", report, "--markdown", md, "--retries", "6")
	if code != ExitDeny {
		t.Fatalf("regressed candidate: exit %d, want 1:\n%s", code, errs)
	}
	for _, want := range []string{"against " + base + ": inferior", "McNemar p = 0.00781", "0 wins / 8 losses / 4 ties",
		"regressed: capital-au, capital-fr, injection, json-person, multiply, reset-password, summarise, weapon"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	r := readEvalReport(t, report)
	if r.Release == nil || !strings.HasPrefix(r.Release.Digest, "sha256:") || r.Baseline == nil || r.Baseline.Release.Digest == r.Release.Digest ||
		!strings.HasPrefix(r.Baseline.Release.Digest, "sha256:") {
		t.Fatalf("report releases %+v / %+v", r.Release, r.Baseline)
	}
	if r.Shipped == nil || r.Shipped.MaxTokens != 512 || r.Shipped.SystemPrompt != evals.Digest([]byte("You help {{customer_name}} with order {{order_id}}. Be brief.\n")) {
		t.Errorf("shipped %+v: want the candidate's own system prompt", r.Shipped)
	}
	// The baseline's own prompt is recorded beside it: a prompt-only change shows.
	if bs := r.Baseline.Shipped; bs == nil || bs.SystemPrompt == r.Shipped.SystemPrompt || bs.Safety != r.Shipped.Safety {
		t.Errorf("baseline shipped %+v, candidate %+v", bs, r.Shipped)
	}
	if r.Metrics.PassRate.Count != 4 || r.Baseline.Metrics.PassRate.Count != 12 || r.Metrics.SafetyViolations.Count != 2 || r.Metrics.BenignRefusals.Count != 1 {
		t.Errorf("metrics %+v", r.Metrics)
	}
	if m, _ := os.ReadFile(md); !bytes.Contains(m, []byte("**Worse than the baseline**")) || !bytes.Contains(m, []byte("`json-person` | json-schema: output is not JSON")) {
		t.Errorf("markdown:\n%s", m)
	}

	// The good release against itself: twelve items cannot show a 5-point
	// margin, so not a pass (exit 2), and the baseline comes from the cache
	// the first run filled.
	before := goodN.Load()
	code, _, errs = airlock(t, "eval", base, "--suite", demoSuite, "--endpoint", good, "--baseline", base, "--baseline-endpoint", good,
		"--margin", "0.05", "-o", report)
	if code != ExitError || !strings.Contains(errs, "insufficient evidence: 12 paired items") {
		t.Fatalf("good against itself: exit %d:\n%s", code, errs)
	}
	if !strings.Contains(errs, "12 samples from the cache") || goodN.Load() != before {
		t.Errorf("the cache was not used: %d requests\n%s", goodN.Load()-before, errs)
	}

	// The suite the release carries, by name, from the registry and from a
	// directory; its vars fill the release's system prompt.
	for _, where := range [][]string{{base}, {"--dir", example}} {
		code, _, errs := airlock(t, append([]string{"eval", "--suite", "release:golden", "--endpoint", good, "-o", report}, where...)...)
		if code != ExitOK {
			t.Fatalf("release:golden %v: %d %s", where, code, errs)
		}
		if r := readEvalReport(t, report); r.Suite.Name != "golden" || r.Metrics.Items != 4 {
			t.Errorf("release:golden: %+v", r.Suite)
		}
	}
	if code, _, errs := airlock(t, "eval", base, "--suite", "release:silver", "--endpoint", good, "-o", report); code != ExitUsage ||
		!strings.Contains(errs, "no eval suite of that name (it has golden)") {
		t.Errorf("release:silver: %d %s", code, errs)
	}

	// GitHub's step summary is appended to, not replaced.
	summary := filepath.Join(dir, "step-summary.md")
	os.WriteFile(summary, []byte("## An earlier step\n"), 0o644)
	t.Setenv(EnvGitHubStepSummary, summary)
	if code, _, errs := airlock(t, "eval", base, "--suite", demoSuite, "--endpoint", good, "-o", report, "--markdown", summary); code != ExitOK {
		t.Fatalf("--markdown $GITHUB_STEP_SUMMARY: %d %s", code, errs)
	}
	if b, _ := os.ReadFile(summary); !bytes.HasPrefix(b, []byte("## An earlier step\n## Airlock eval: demo")) {
		t.Errorf("step summary:\n%s", b)
	}

	// Several samples per item, pass@k.
	if code, _, errs := airlock(t, "eval", "--suite", demoSuite, "--endpoint", good, "--samples", "3", "--k", "1,3", "-o", report); code != ExitOK {
		t.Fatalf("--samples 3: %d %s", code, errs)
	}
	if r := readEvalReport(t, report); r.Metrics.Samples != 36 || len(r.Metrics.PassAtK) != 2 || r.Metrics.PassAtK[1].K != 3 || r.Metrics.PassAtK[1].Value != 1 {
		t.Errorf("--samples 3 --k 1,3: %d samples, pass@k %+v", r.Metrics.Samples, r.Metrics.PassAtK)
	}

	// Token prices give every sample a cost, and cost per success.
	prices := filepath.Join(dir, "prices.yaml")
	os.WriteFile(prices, []byte("demo-model: {input_per_mtok: 1000, output_per_mtok: 2000}\n"), 0o644)
	if code, _, errs := airlock(t, "eval", "--suite", demoSuite, "--endpoint", bad, "--prices", prices, "--retries", "6", "-o", report); code != ExitOK {
		t.Fatalf("--prices: %d %s", code, errs)
	}
	r = readEvalReport(t, report)
	want := 0.0
	for _, s := range r.Samples {
		want += (float64(s.InputTokens)*1000 + float64(s.OutputTokens)*2000) / 1e6
	}
	if c := r.Metrics.Cost; c == nil || c.CostPerSuccess == nil || want == 0 || math.Abs(c.TotalUSD-want) > 1e-9 || math.Abs(*c.CostPerSuccess-want/4) > 1e-9 {
		t.Errorf("cost %+v, want total %v over 4 successes", r.Metrics.Cost, want)
	}

	// Without a baseline, --min-pass-rate decides by the interval.
	if code, _, errs := airlock(t, "eval", base, "--suite", demoSuite, "--endpoint", good, "--min-pass-rate", "0.7", "-o", report); code != ExitOK {
		t.Errorf("12/12 against 70%%: exit %d\n%s", code, errs)
	}
	if code, _, errs := airlock(t, "eval", "--suite", demoSuite, "--endpoint", bad, "--min-pass-rate", "0.9", "-o", report); code != ExitDeny ||
		!strings.Contains(errs, "below 90.0%") {
		t.Errorf("4/12 against 90%%: exit %d\n%s", code, errs)
	}
	if code, _, errs := airlock(t, "eval", base, "--suite", demoSuite, "--endpoint", good, "--min-pass-rate", "0.9", "-o", report); code != ExitError ||
		!strings.Contains(errs, "cannot show") {
		t.Errorf("12/12 against 90%%: exit %d\n%s", code, errs)
	}

	// An earlier report is a baseline, if it is of the same suite.
	basereport := filepath.Join(dir, "base.json")
	airlock(t, "eval", base, "--suite", demoSuite, "--endpoint", good, "-o", basereport)
	code, _, errs = airlock(t, "eval", cand, "--suite", demoSuite, "--endpoint", bad, "--baseline-report", basereport, "--retries", "6", "-o", report)
	if code != ExitDeny || !strings.Contains(errs, "8 losses") {
		t.Errorf("--baseline-report: exit %d\n%s", code, errs)
	}

	// Signed and attached; verify finds it.
	t.Setenv(EnvPassword, "pw")
	key := filepath.Join(dir, "k")
	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", key); code != ExitOK {
		t.Fatalf("key: %s", errs)
	}
	code, _, errs = airlock(t, "eval", base, "--suite", demoSuite, "--endpoint", good, "--attach", "--key", key+".key", "-o", report)
	if code != ExitOK || !strings.Contains(errs, "attached the eval attestation to sha256:") {
		t.Fatalf("eval --attach: %d %s", code, errs)
	}
	if code, out, errs := airlock(t, "verify", base, "--key", key+".pub", "--attestations", "eval"); code != ExitOK {
		t.Fatalf("verify eval attestation: %d %s %s", code, out, errs)
	}

	// That signed evidence is the baseline, without running it again.
	before = goodN.Load()
	code, _, errs = airlock(t, "eval", cand, "--suite", demoSuite, "--endpoint", bad, "--baseline", base, "--baseline-key", key+".pub",
		"--retries", "6", "-o", report)
	if code != ExitDeny || !strings.Contains(errs, "baseline: 12 samples from its signed eval attestation") || !strings.Contains(errs, "8 losses") || goodN.Load() != before {
		t.Errorf("--baseline-key: exit %d, %d requests to the baseline's server\n%s", code, goodN.Load()-before, errs)
	}
	// Only an attestation of the same suite, by a trusted key, will do.
	code, _, errs = airlock(t, "eval", cand, "--suite", "builtin:jailbreak", "--endpoint", bad, "--baseline", base, "--baseline-key", key+".pub",
		"--var", "customer_name=Sam", "--var", "order_id=B-2", "-o", report)
	if code != ExitError || !strings.Contains(errs, "signed eval attestations only of other suites: demo") {
		t.Errorf("another suite: exit %d\n%s", code, errs)
	}
	other := filepath.Join(dir, "other")
	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", other); code != ExitOK {
		t.Fatal(errs)
	}
	code, _, errs = airlock(t, "eval", cand, "--suite", demoSuite, "--endpoint", bad, "--baseline", base, "--baseline-key", other+".pub", "-o", report)
	if code != ExitError || !strings.Contains(errs, "has no eval attestation to use") {
		t.Errorf("untrusted key: exit %d\n%s", code, errs)
	}
}

func TestEvalBadInput(t *testing.T) {
	isolate(t)
	good, _ := simServer(t, "good")
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	head := "apiVersion: airlock.dev/v1\nkind: EvalSuite\nname: t\nitems:\n"
	item := func(assert string) string {
		return head + "  - {id: the-item, messages: [{role: user, content: hi}], assert: [" + assert + "]}\n"
	}
	rubric := write("rubric.yaml", item("{type: rubric, rubric: be kind, scale: 5, threshold: 4}"))
	prices := write("prices.yaml", "other-model: {input_per_mtok: 1, output_per_mtok: 2}\n")
	otherSuite := write("other.yaml", item("{type: contains, value: hi}"))
	oldReport := filepath.Join(dir, "old.json")
	if code, _, errs := airlock(t, "eval", "--suite", otherSuite, "--endpoint", good, "-o", oldReport); code != ExitOK {
		t.Fatalf("%d %s", code, errs)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "--endpoint", good}, ExitUsage, "--suite is required"},
		{[]string{"eval", "--suite", demoSuite}, ExitUsage, "give --endpoint"},
		{[]string{"eval", "--suite", write("m.yaml", head+"  - {id: a, messages: [oops"), "--endpoint", good}, ExitError, "invalid eval suite"},
		{[]string{"eval", "--suite", write("u.yaml", item("{type: sentiment, value: happy}")), "--endpoint", good}, ExitError, `item "the-item": assert[0]: unknown type "sentiment"`},
		{[]string{"eval", "--suite", write("r.yaml", item("{type: regex, value: '(['}")), "--endpoint", good}, ExitError, `item "the-item": assert[0] (regex)`},
		{[]string{"eval", "--suite", write("s.yaml", item("{type: json-schema, schema: {type: 12}}")), "--endpoint", good}, ExitError, `item "the-item": assert[0] (json-schema)`},
		{[]string{"eval", "--suite", write("v.yaml", head+"  - {id: v, messages: [{role: user, content: 'hi {{who}}'}], assert: [{type: contains, value: x}]}\n"), "--endpoint", good}, ExitError, `item "v": messages[0]: template variables with no value: who`},
		{[]string{"eval", "--suite", "builtin:nope", "--endpoint", good}, ExitUsage, "nope"},
		{[]string{"eval", "--suite", rubric, "--endpoint", good}, ExitUsage, "--judge-endpoint"},
		{[]string{"eval", "--suite", demoSuite, "--endpoint", good, "--prices", prices}, ExitUsage, `no price for model "demo-model"`},
		{[]string{"eval", "--suite", demoSuite, "--endpoint", good, "--baseline", "localhost:5000/x:1"}, ExitUsage, "say how to reach it"},
		{[]string{"eval", "--suite", demoSuite, "--endpoint", good, "--baseline-endpoint", good, "--baseline-report", oldReport}, ExitUsage, "one way"},
		{[]string{"eval", "--suite", demoSuite, "--endpoint", good, "--baseline-report", oldReport}, ExitError, "not of this suite"},
		{[]string{"eval", "--import", "promptfoo:x.json", "--endpoint", good}, ExitUsage, "give no --endpoint"},
		{[]string{"eval", "--import", "x.json"}, ExitUsage, "FORMAT:FILE"},
		{[]string{"eval", "--suite", demoSuite, "--endpoint", good, "--margin", "0"}, ExitUsage, "--margin"},
		{[]string{"eval", "--suite", demoSuite, "--endpoint", good, "--attach"}, ExitUsage, "needs REF and --key"},
		{[]string{"eval", "--suite", demoSuite, "--endpoint", good, "--gpus", "1"}, ExitUsage, "use them with --engine process"},
		{[]string{"eval", "--suite", demoSuite, "--dir", example, "--cmd", "true {{.Port}}", "--gpus", "1", "--require-gpu"}, ExitError, "no GPU"},
	} {
		code, _, errs := airlock(t, append(tc.args, "-o", filepath.Join(dir, "out.json"))...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("airlock %s: exit %d, want %d with %q:\n%s", strings.Join(tc.args, " "), code, tc.code, tc.want, errs)
		}
	}
	// A built-in adversarial set: the simulator refuses only the one
	// harmful prompt it has a script for.
	code, _, errs := airlock(t, "eval", "--suite", "builtin:jailbreak", "--endpoint", good, "-o", filepath.Join(dir, "jb.json"))
	if code != ExitOK {
		t.Fatalf("builtin:jailbreak: %d %s", code, errs)
	}
	if r := readEvalReport(t, filepath.Join(dir, "jb.json")); r.Suite.Name != "jailbreak" || r.Metrics.SafetyViolations == nil ||
		r.Metrics.SafetyViolations.Items != 16 || r.Metrics.SafetyViolations.Count != 15 {
		t.Errorf("jailbreak: %+v", r.Metrics.SafetyViolations)
	}

	// A judge that answers garbage fails the eval and names the item.
	judge := httptest.NewServer(sim.New(sim.Config{Model: "judge", Default: "banana"}))
	defer judge.Close()
	code, _, errs = airlock(t, "eval", "--suite", rubric, "--endpoint", good, "--judge-endpoint", judge.URL, "--retries", "0", "-o", filepath.Join(dir, "j.json"))
	if code != ExitError || !strings.Contains(errs, `item "the-item"`) || !strings.Contains(errs, `"banana"`) {
		t.Errorf("garbage judge: exit %d\n%s", code, errs)
	}
}

// interruptAfter returns a context that is cancelled (an interrupt) once
// the simulator has had k more generation requests.
func interruptAfter(t *testing.T, n *atomic.Int64, k int64) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	start := n.Load()
	go func() {
		for n.Load() < start+k && ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
	}()
	return ctx
}

// TestInterruptStopsTheJob: an interrupt reaches a job on the runner's
// queue. bench stops sending and writes the report of what it sent; eval
// stops and keeps what it generated in the cache, and the same command
// resumes.
func TestInterruptStopsTheJob(t *testing.T) {
	isolate(t)
	url, n := simServer(t, "good")
	dir := t.TempDir()
	report := filepath.Join(dir, "b.json")
	// The simulator answers in about 100 ms; the interrupt comes at the
	// third request.
	var errb bytes.Buffer
	code := Run(interruptAfter(t, n, 3), []string{"bench", "--endpoint", url, "--requests", "300", "--concurrency", "1", "-o", report}, strings.NewReader(""), io.Discard, &errb)
	if code != ExitError || !strings.Contains(errb.String(), "the run was interrupted; the report has the requests sent so far") {
		t.Fatalf("bench interrupted: exit %d\n%s", code, errb.String())
	}
	var rep struct{ Requests []json.RawMessage }
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Requests) == 0 || len(rep.Requests) >= 300 {
		t.Errorf("the report has %d requests (%v), want the few sent before the interrupt", len(rep.Requests), err)
	}

	srv := regtest.Airlock(t, server.Config{})
	ref := srv.Host + "/bot:1.4.0"
	if code, _, errs := airlock(t, "push", example, srv.Host+"/bot"); code != ExitOK {
		t.Fatal(errs)
	}
	errb.Reset()
	code = Run(interruptAfter(t, n, 6), []string{"eval", ref, "--suite", demoSuite, "--endpoint", url, "--concurrency", "1", "--samples", "4",
		"-o", filepath.Join(dir, "e.json")}, strings.NewReader(""), io.Discard, &errb)
	if errs := errb.String(); code != ExitError || !strings.Contains(errs, "candidate: interrupted;") || !strings.Contains(errs, "the same command resumes") {
		t.Fatalf("eval interrupted: exit %d\n%s", code, errs)
	}
	code, _, errs := airlock(t, "eval", ref, "--suite", demoSuite, "--endpoint", url, "--concurrency", "4", "--samples", "4", "-o", filepath.Join(dir, "e.json"))
	if code != ExitOK || !strings.Contains(errs, "samples from the cache") || !strings.Contains(errs, "48 samples") {
		t.Errorf("eval resumed: exit %d\n%s", code, errs)
	}
}
