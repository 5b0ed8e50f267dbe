//go:build unix

package process

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/enginetest"
	"github.com/airlock-dev/airlock/runner/process/internal/gguf"
)

// llamaModules finds node and the node-llama-cpp that .ci/install-tools.sh
// installs into .tools/llama, pinned by testdata/llama. Without them the
// test is skipped, unless AIRLOCK_REQUIRE_INTEROP=1 (make test) makes it
// fail.
func llamaModules(t *testing.T) (node, modules string) {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		if os.Getenv("AIRLOCK_REQUIRE_INTEROP") == "1" {
			t.Fatalf(format+" (AIRLOCK_REQUIRE_INTEROP=1; run make tools)", a...)
		}
		t.Skipf(format+"; make tools installs it", a...)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("node-llama-cpp's prebuilt binaries are pinned for linux/amd64 only, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("no node on PATH: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	modules = filepath.Join(root, ".tools", "llama", "node_modules")
	var pinned, installed struct {
		Version      string
		Dependencies map[string]string
	}
	readJSON(t, filepath.Join("testdata", "llama", "package.json"), &pinned)
	b, err := os.ReadFile(filepath.Join(modules, "node-llama-cpp", "package.json"))
	if err != nil {
		missing("node-llama-cpp is not installed in %s", modules)
	}
	if err := json.Unmarshal(b, &installed); err != nil {
		t.Fatal(err)
	}
	if want := pinned.Dependencies["node-llama-cpp"]; installed.Version != want {
		missing("node-llama-cpp %s is installed in %s, testdata/llama pins %s", installed.Version, modules, want)
	}
	return node, modules
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestLlama runs a real engine, llama.cpp through node-llama-cpp, on a
// tiny random-weight model: the release directory holds the GGUF, the
// process engine starts the shim on it, requests stream real tokens.
func TestLlama(t *testing.T) {
	node, modules := llamaModules(t)
	before := runtime.NumGoroutine()

	// root/server.mjs finds root/node_modules; root/release is the
	// release directory.
	root := t.TempDir()
	shim, err := os.ReadFile(filepath.Join("testdata", "llama", "server.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(root, "release")
	if err := os.WriteFile(filepath.Join(root, "server.mjs"), shim, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(root, "node_modules")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(rel, "model.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(f, gguf.TinyLlama{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	e, err := New(Options{
		Command:      quote(node) + ` {{.Dir}}/../server.mjs {{.File "model"}} {{.Port}} {{.Model}}`,
		Dir:          rel,
		Model:        "tiny-llama",
		ReadyTimeout: time.Minute,
		StopTimeout:  5 * time.Second,
		Stdout:       &out,
		Stderr:       &out,
		KeepOutput:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(t.Context()) })
	began := time.Now()
	if err := e.Start(t.Context()); err != nil {
		t.Fatalf("%v\nserver output:\n%s", err, out.String())
	}
	t.Logf("llama server ready after %s", time.Since(began).Round(time.Millisecond))
	pgid := e.PID()

	zero := 0.0
	const maxTokens = 16
	prompts := []string{"the model is", "a release gate", "the gate is a model", "release the model"}
	outputs := map[string]string{}
	for i := range 8 {
		p := prompts[i%len(prompts)]
		req := &runner.Request{ID: "llama-" + string(rune('a'+i)), Kind: runner.Completion, Prompt: p,
			MaxTokens: maxTokens, Temperature: &zero, IgnoreEOS: true}
		if i%2 == 1 {
			req.Kind, req.Prompt, req.Messages = runner.Chat, "", []runner.Message{{Role: "user", Content: p}}
		}
		tl := runner.NewTimeline(req.ID, time.Now())
		if err := e.Do(t.Context(), req, tl); err != nil {
			t.Fatalf("%s: %v", req.ID, err)
		}
		m := runner.Measure(tl)
		chars := 0
		for _, ev := range tl.Events {
			chars += ev.Chars
		}
		switch {
		case !m.HasTTFT || m.TTFT <= 0:
			t.Errorf("%s: no TTFT (events %+v)", req.ID, tl.Events)
		case tl.Usage == nil || tl.Usage.CompletionTokens != maxTokens || !m.FromServer:
			// ignore_eos: exactly max_tokens tokens, as the server counts them.
			t.Errorf("%s: usage %+v, want %d completion tokens", req.ID, tl.Usage, maxTokens)
		case content(tl) < 1 || content(tl) > tl.Usage.CompletionTokens:
			t.Errorf("%s: %d content events for %d tokens", req.ID, content(tl), tl.Usage.CompletionTokens)
		case tl.FinishReason != "length":
			t.Errorf("%s: finish reason %q, want length", req.ID, tl.FinishReason)
		case tl.Output == "" || chars != len(tl.Output):
			t.Errorf("%s: output %q, %d bytes in events", req.ID, tl.Output, chars)
		}
		// Greedy decoding: the same prompt gives the same text.
		key := string(req.Kind) + " " + p
		if prev, ok := outputs[key]; ok && prev != tl.Output {
			t.Errorf("%s: %q, earlier %q for the same prompt at temperature 0", req.ID, tl.Output, prev)
		}
		outputs[key] = tl.Output
		t.Logf("%s %s: TTFT %s, E2E %s, %d tokens in %d chunks", req.ID, req.Kind, m.TTFT.Round(time.Microsecond),
			m.E2E.Round(time.Microsecond), tl.Usage.CompletionTokens, content(tl))
	}

	// The same engine under the runner: two streams, one warm-up.
	var inputs []runner.Request
	for i, p := range prompts {
		inputs = append(inputs, runner.Request{ID: "run-" + string(rune('a'+i)), Kind: runner.Chat, MaxTokens: maxTokens,
			Temperature: &zero, IgnoreEOS: true, Messages: []runner.Message{{Role: "user", Content: p}}})
	}
	res, err := runner.Run(t.Context(), e, inputs, runner.Options{Load: runner.Load{Concurrency: 2, Warmup: 1}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	sum := runner.Summarize(res, runner.SLO{})
	if sum.Succeeded != len(inputs) || sum.Tokens.Output != len(inputs)*maxTokens || sum.Tokens.ServerCounted != len(inputs) ||
		sum.TTFT.Mean <= 0 || sum.TPOT.Mean <= 0 {
		t.Errorf("summary %+v", sum)
	}
	t.Logf("runner: %d requests, TTFT mean %.1f ms, TPOT mean %.2f ms, %.0f output tokens/s",
		sum.Succeeded, sum.TTFT.Mean*1000, sum.TPOT.Mean*1000, sum.Rates.OutputTokensPerSecond)

	if err := e.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkGone(t, pgid)
	if t.Failed() {
		t.Logf("server output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "serving") {
		t.Errorf("server output %q", out.String())
	}
	enginetest.NoGoroutinesLeft(t, before, 0)
}
