package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/gate/canary/router"
	"github.com/airlock-dev/airlock/registry/regtest"
)

// TestRouterServe runs `airlock router serve` in front of two `airlock
// demo-model serve` processes, the good version as stable and the
// regressed one (slower, 503 for 2% of requests, "Lyon" for the capital
// of France) as canary, and sends streamed chat completions through it:
// traffic splits by weight, a weight change through the admin API moves
// it all to the canary, the regressed variant's errors show in /metrics
// beside the stable's series, and the kill-switch sends the very next
// request to stable.
func TestRouterServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the router and two model servers")
	}
	bin := buildAirlock(t)
	work := t.TempDir()
	start := func(name string, args ...string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var logs regtest.LockedBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		must(t, cmd.Start())
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Signal(os.Interrupt)
				_ = cmd.Wait()
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", name, tail(logs.String(), 4000))
			}
		})
		return cmd
	}
	addr := func() string {
		a, err := regtest.FreeLoopbackAddr()
		must(t, err)
		return a
	}
	good, regressed, proxy, admin := addr(), addr(), addr(), addr()
	start("good", "demo-model", "serve", "--version", "good", "--addr", good)
	start("regressed", "demo-model", "serve", "--version", "regressed", "--addr", regressed)
	const (
		stableDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		canaryDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
		token        = "test-admin-token"
	)
	must(t, os.WriteFile(filepath.Join(work, "admin.token"), []byte(token+"\n"), 0o600))
	config := filepath.Join(work, "router.yaml")
	must(t, os.WriteFile(config, fmt.Appendf(nil, `admin: {token_file: admin.token}
stable: {url: "http://%s", digest: %q}
canary: {url: "http://%s", digest: %q}
weight: 50
safety: {refusal_patterns: ["I can't help with that"]}
prices: {stable: {prompt_per_1k: 0.5, completion_per_1k: 1.5}, canary: {prompt_per_1k: 0.5, completion_per_1k: 1.5}}
`, good, stableDigest, regressed, canaryDigest), 0o644))
	srv := start("router", "router", "serve", "--config", config, "--addr", proxy, "--admin-addr", admin, "--log-format", "json")

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	waitHTTP(t, hc, "http://"+good+"/v1/models")
	waitHTTP(t, hc, "http://"+regressed+"/v1/models")
	waitHTTP(t, hc, "http://"+admin+"/healthz")

	// ask sends one streamed chat completion through the router and
	// returns the status and the stream.
	ask := func(prompt string) (int, string, error) {
		body := fmt.Sprintf(`{"model":"demo-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":%q}]}`, prompt)
		res, err := hc.Post("http://"+proxy+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}
	const france = "What is the capital of France?"
	// load sends n requests, 32 at a time, and counts the answers.
	load := func(n int) (paris, lyon, failed int) {
		t.Helper()
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				code, stream, err := ask(france)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("request: %v", err)
				case code == http.StatusServiceUnavailable:
					failed++
				case code != http.StatusOK || !strings.HasPrefix(stream, "data: ") || !strings.HasSuffix(stream, "data: [DONE]\n\n"):
					t.Errorf("answer %d: %q", code, stream)
				case strings.Contains(stream, "Paris"):
					paris++
				case strings.Contains(stream, "Lyon"):
					lyon++
				default:
					t.Errorf("an answer from neither: %q", stream)
				}
			})
		}
		wg.Wait()
		return
	}

	// At 50%, both variants answer (all one side has odds 2^-99).
	paris, lyon, failed := load(100)
	if paris == 0 || lyon == 0 {
		t.Errorf("at 50%%: %d answers from stable, %d from the canary, %d failed", paris, lyon, failed)
	}

	ctx := context.Background()
	c := router.NewClient("http://"+admin, token, hc)
	must(t, c.SetWeight(ctx, 100))
	s, err := c.State(ctx)
	must(t, err)
	if s.Weight != 100 || s.Canary == nil || s.Canary.Digest != canaryDigest {
		t.Errorf("state after SetWeight(100): %+v", s)
	}
	if err := router.NewClient("http://"+admin, "", hc).SetWeight(ctx, 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a change without the token: %v", err)
	}
	// At 100%, only the canary; 600 requests to it in all, so that its 2%
	// of 503s shows (none at all has odds below 1 in 100,000).
	paris, lyon2, failed2 := load(500)
	if paris != 0 || lyon2+failed2 != 500 {
		t.Errorf("at 100%%: %d answers from stable, %d from the canary, %d failed", paris, lyon2, failed2)
	}
	if failed+failed2 == 0 {
		t.Errorf("no 503 from the regressed canary in %d requests", lyon+failed+lyon2+failed2)
	}

	// The kill-switch: the very next request goes to stable.
	must(t, c.KillSwitch(ctx, true, "errors up 2%"))
	for i := range 5 {
		code, stream, err := ask(france)
		must(t, err)
		if code != http.StatusOK || !strings.Contains(stream, "Paris") {
			t.Fatalf("request %d after the kill-switch: %d %q", i, code, stream)
		}
	}
	must(t, c.KillSwitch(ctx, false, ""))
	for {
		code, stream, err := ask(france)
		must(t, err)
		if code == http.StatusServiceUnavailable { // the canary's 2%
			continue
		}
		if !strings.Contains(stream, "Lyon") {
			t.Errorf("after the kill-switch went off: %d %q", code, stream)
		}
		break
	}

	// /metrics: per-variant series with the regressed variant's errors.
	res, err := hc.Get("http://" + admin + "/metrics")
	must(t, err)
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	must(t, err)
	metrics := string(b)
	get := func(name string, labels ...string) float64 {
		t.Helper()
		for _, l := range strings.Split(metrics, "\n") {
			if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
				continue
			}
			ok := true
			for _, lb := range labels {
				ok = ok && strings.Contains(l, lb)
			}
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			must(t, err)
			return v
		}
		t.Fatalf("/metrics has no %s%v:\n%s", name, labels, grepLines(metrics, "airlock_router_"))
		return 0
	}
	canaryLabels := []string{`variant="canary"`, `digest="` + canaryDigest + `"`}
	stableLabels := []string{`variant="stable"`, `digest="` + stableDigest + `"`}
	if v := get("airlock_router_errors_total", canaryLabels...); v != float64(failed+failed2) || v == 0 {
		t.Errorf("canary errors_total = %v, want the %d 503s seen", v, failed+failed2)
	}
	if v := get("airlock_router_errors_total", stableLabels...); v != 0 {
		t.Errorf("stable errors_total = %v, want 0", v)
	}
	if v := get("airlock_router_requests_total", append(canaryLabels, `code="5xx"`)...); v != float64(failed+failed2) {
		t.Errorf("canary requests_total{5xx} = %v", v)
	}
	for _, lb := range [][]string{stableLabels, canaryLabels} {
		for _, m := range []string{"airlock_router_ttft_seconds_count", "airlock_router_request_duration_seconds_count", "airlock_router_cost_total"} {
			if v := get(m, lb...); v <= 0 {
				t.Errorf("%s%v = %v, want > 0", m, lb, v)
			}
		}
		if v := get("airlock_router_tokens_total", append(lb, `type="completion"`)...); v <= 0 {
			t.Errorf("completion tokens%v = %v", lb, v)
		}
	}
	if v := get("airlock_router_weight", `variant="canary"`); v != 100 {
		t.Errorf("weight{canary} = %v", v)
	}
	if v := get("airlock_router_kill_switch"); v != 0 {
		t.Errorf("kill_switch = %v", v)
	}

	// SIGINT drains and exits 0.
	must(t, srv.Process.Signal(os.Interrupt))
	if err := srv.Wait(); err != nil {
		t.Errorf("router exit: %v", err)
	}
}
