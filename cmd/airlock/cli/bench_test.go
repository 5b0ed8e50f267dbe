package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/gpu"
	"github.com/airlock-dev/airlock/runner/sim"
	"github.com/prometheus/client_golang/prometheus"
)

// TestBenchCLI: airlock bench against the simulator over HTTP writes a
// report whose numbers are the simulator's, Batch JSONL in and out, and
// a signed bench attestation that verify finds.
func TestBenchCLI(t *testing.T) {
	isolate(t)
	cfg, _, err := sim.Version("regressed")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ErrorRate = 0
	cfg.Answers = append([]sim.Answer{{Match: "overloaded", Fault: "http_429"}}, cfg.Answers...)
	model := httptest.NewServer(sim.New(cfg))
	defer model.Close()
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")

	code, _, errs := airlock(t, "bench", "--endpoint", model.URL, "--requests", "24", "--concurrency", "4", "--warmup", "2",
		"--slo", "ttft:1s", "--max-tokens", "8", "--ignore-eos", "-o", report)
	if code != ExitOK {
		t.Fatalf("bench: %d %s", code, errs)
	}
	for _, want := range []string{"24 measured (+2 warm-up), 24 ok", "ttft", "tpot", "goodput", "no GPU"} {
		if !strings.Contains(errs, want) {
			t.Errorf("summary lacks %q:\n%s", want, errs)
		}
	}
	var rep runner.Report
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Schema != runner.ReportSchema || rep.Engine.Model != "demo-model" || len(rep.Requests) != 26 || rep.Definitions["ttft"] == "" {
		t.Errorf("report: schema %s model %q %d timelines", rep.Schema, rep.Engine.Model, len(rep.Requests))
	}
	if s := rep.Summary; s.Tokens.Output != 24*8 || s.Tokens.ServerCounted != 24 || s.TTFT.P50 < 0.08 || s.TTFT.P50 > 0.5 {
		t.Errorf("summary %+v: want 8 server-counted tokens per request, ttft near the regressed version's 110ms", s)
	}

	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"custom_id":"fr","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":32}}
{"custom_id":"busy","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"overloaded"}]}}
`), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	code, _, errs = airlock(t, "bench", "--endpoint", model.URL, "--input", in, "--output-jsonl", out, "-o", filepath.Join(dir, "r2.json"))
	if code != ExitOK || !strings.Contains(errs, "errors: http_429 1") {
		t.Fatalf("bench --input: %d %s", code, errs)
	}
	lines, _ := os.ReadFile(out)
	if !strings.Contains(string(lines), `"custom_id":"fr"`) || !strings.Contains(string(lines), "Lyon") || !strings.Contains(string(lines), `"status_code":429`) {
		t.Errorf("batch output:\n%s", lines)
	}

	// Attached to a release, and found by verify.
	srv := regtest.Airlock(t, server.Config{})
	ref := srv.Host + "/bot:1.4.0"
	if code, _, errs := airlock(t, "push", example, ref); code != ExitOK {
		t.Fatalf("push: %d %s", code, errs)
	}
	t.Setenv(EnvPassword, "pw")
	key := filepath.Join(dir, "k")
	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", key); code != ExitOK {
		t.Fatalf("key: %s", errs)
	}
	code, _, errs = airlock(t, "bench", ref, "--endpoint", model.URL, "--requests", "4", "--attach", "--key", key+".key", "-o", report)
	if code != ExitOK || !strings.Contains(errs, "attached the bench attestation to sha256:") {
		t.Fatalf("bench --attach: %d %s", code, errs)
	}
	b, _ = os.ReadFile(report)
	json.Unmarshal(b, &rep)
	if rep.Release == nil || !strings.HasPrefix(rep.Release.Digest, "sha256:") {
		t.Errorf("report release %+v, want the resolved digest", rep.Release)
	}
	if code, out, errs := airlock(t, "verify", ref, "--key", key+".pub", "--attestations", "bench"); code != ExitOK {
		t.Fatalf("verify bench attestation: %d %s %s", code, out, errs)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"custom_id\":\"a\",\"url\":\"/v1/embeddings\",\"body\":{}}\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench"}, ExitUsage, "give --endpoint"},
		{[]string{"bench", "--endpoint", "http://x", "--cmd", "y"}, ExitUsage, "no --cmd"},
		{[]string{"bench", "--engine", "process", "--cmd", "srv {{.Port}}"}, ExitUsage, "give REF or --dir"},
		{[]string{"bench", "--engine", "kubernetes"}, ExitUsage, "not built yet"},
		{[]string{"bench", "--endpoint", "http://x", "--arrival", "poisson"}, ExitUsage, "rate"},
		{[]string{"bench", "--endpoint", "http://x", "--slo", "ttft:soon"}, ExitUsage, "SLO"},
		{[]string{"bench", "--endpoint", "http://x", "--gpus", "1"}, ExitUsage, "--engine process"},
		{[]string{"bench", "--endpoint", "http://x", "--batch", "4"}, ExitUsage, "--kind completion --no-stream"},
		{[]string{"bench", "--endpoint", "http://x", "--attach"}, ExitUsage, "needs REF and --key"},
		{[]string{"bench", "--endpoint", "ftp://x"}, ExitUsage, "http://"},
		{[]string{"bench", "--endpoint", "http://x", "--input", bad}, ExitError, "line 1"},
		{[]string{"bench", "--endpoint", "http://127.0.0.1:1", "--model", "m", "-o", filepath.Join(dir, "r.json")}, ExitError, "no request succeeded (connect 8)"},
	} {
		code, _, errs := airlock(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("airlock %s: exit %d, want %d with %q:\n%s", strings.Join(tc.args, " "), code, tc.code, tc.want, errs)
		}
	}
}

func TestDemoModelServeUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo-model", "serve"},
		{"demo-model", "serve", "--version", "best"},
		{"demo-model", "serve", "--version", "good", "--config", "x.yaml"},
	} {
		if code, _, errs := airlock(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
	bad := filepath.Join(t.TempDir(), "v.yaml")
	os.WriteFile(bad, []byte("model: m\nttft: {kind: weibull}\n"), 0o644)
	if code, _, errs := airlock(t, "demo-model", "serve", "--config", bad); code != ExitError || !strings.Contains(errs, "ttft.kind") {
		t.Errorf("bad config: %d %s", code, errs)
	}
}

// TestBenchMetricsEndpoint: --metrics-addr serves the private registry,
// with the runner's and the GPU collector's metrics, and nothing else.
func TestBenchMetricsEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := runner.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.RunInfo("run-x", "demo-model", "sha256:ab", "openai", "closed")
	if _, err := gpu.NewCollector(reg, gpu.Unavailable("no GPU: test")); err != nil {
		t.Fatal(err)
	}
	stop, addr, err := serveMetrics("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`airlock_run_info{model="demo-model",model_digest="sha256:ab",profile="closed",run_id="run-x",server_kind="openai"} 1`, "airlock_gpu_collector_up 0"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "go_goroutines") {
		t.Error("/metrics serves the global registry's Go metrics: the registry must be private")
	}
	if _, _, err := serveMetrics(addr, reg); err == nil {
		t.Error("a second listener on the same address was accepted")
	}
}
