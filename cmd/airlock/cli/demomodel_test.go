package cli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveDemoModel runs airlock demo-model serve in-process on a free port
// with args, and returns its URL once it listens; cancelling the test
// stops it, and the test checks it exited 0.
func serveDemoModel(t *testing.T, args ...string) (url string, banner string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		code := Run(ctx, append([]string{"demo-model", "serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), io.Discard, pw)
		pw.Close()
		exit <- code
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exit:
			if code != ExitOK {
				t.Errorf("demo-model serve exited %d after the interrupt, want 0", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("demo-model serve did not stop after the interrupt")
		}
	})
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("demo-model serve printed nothing (%v)", lines.Err())
	}
	banner = lines.Text()
	go io.Copy(io.Discard, pr) // later output must not block the server
	_, url, ok := strings.Cut(banner, " listening on ")
	if !ok {
		t.Fatalf("banner %q names no address", banner)
	}
	return url, banner
}

// TestDemoModelServe: the command says it is a simulator, serves the
// built-in good version over the OpenAI API, streams in vLLM's shape, and
// stops on interrupt.
func TestDemoModelServe(t *testing.T) {
	url, banner := serveDemoModel(t, "--version", "good", "--metrics")
	if !strings.HasPrefix(banner, "airlock demo-model: SIMULATED model server (not a real model) demo-model listening on http://127.0.0.1:") {
		t.Errorf("banner %q", banner)
	}
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"demo-model","messages":[{"role":"user","content":"What is the capital of France?"}],"stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v %s", resp.StatusCode, err, b)
	}
	var text strings.Builder
	body := string(b)
	for _, want := range []string{`"delta":{"role":"assistant","content":""}`, `"finish_reason":"stop"`, `"choices":[],"usage":{"prompt_tokens":6,"completion_tokens":6,"total_tokens":12}`} {
		if !strings.Contains(body, want) {
			t.Errorf("stream lacks %s:\n%s", want, body)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if _, piece, ok := strings.Cut(line, `"delta":{"content":"`); ok {
			piece, _, _ = strings.Cut(piece, `"`)
			text.WriteString(piece)
		}
	}
	if text.String() != "The capital of France is Paris." || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("streamed %q, want the good version's answer and [DONE]", text.String())
	}

	resp, err = http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `airlock_sim_requests_total{outcome="ok"} 1`) || !strings.Contains(string(b), `airlock_sim_tokens_total{type="output"} 6`) {
		t.Errorf("/metrics:\n%s", b)
	}
	if strings.Contains(string(b), "go_goroutines") {
		t.Error("/metrics serves the global registry's Go collector, want only the simulator's private registry")
	}
}

// TestDemoModelServeConfig: --config plays a file, --model renames it,
// --api-key guards it, and without --metrics there is no /metrics.
func TestDemoModelServeConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(cfg, []byte("model: mine\nanswers: [{match: ping, text: pong}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url, banner := serveDemoModel(t, "--config", cfg, "--model", "renamed", "--api-key", "k")
	if !strings.Contains(banner, " renamed listening on ") {
		t.Errorf("banner %q", banner)
	}
	get := func(path, key string) (int, string) {
		req, _ := http.NewRequest("GET", url+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/v1/models", ""); code != 401 {
		t.Errorf("without the key: %d", code)
	}
	if code, body := get("/v1/models", "k"); code != 200 || !strings.Contains(body, `"id":"renamed"`) {
		t.Errorf("/v1/models: %d %s", code, body)
	}
	if code, _ := get("/metrics", "k"); code == 200 {
		t.Error("/metrics served without --metrics")
	}
}

func TestDemoModelServeHelp(t *testing.T) {
	code, out, _ := airlock(t, "demo-model", "serve", "--help")
	for _, want := range []string{"SIMULATOR", "docs/demo-model.md", "ttft", "per_token", "answers", "http_429", "--config", "--version", "--metrics"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("--help (exit %d) lacks %q", code, want)
		}
	}
}
