package runner_test

import (
	"fmt"
	"math"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/openai"
	"github.com/airlock-dev/airlock/runner/sim"
)

// TestMeasuresKnownTiming runs the runner against the simulator streaming
// with a fixed TTFT and a fixed delay per token over real HTTP, and checks
// that the report's medians are within 5% of the truth at 1, 16 and 128
// concurrent requests.
func TestMeasuresKnownTiming(t *testing.T) {
	const (
		// Long enough that the race detector's slowdown of client and
		// server on two cores (about 15ms per request at 128 in flight)
		// stays inside the 5%.
		ttft     = 500 * time.Millisecond
		perToken = 25 * time.Millisecond
		tokens   = 16
	)
	cfg := sim.Config{Model: "timed", Default: "w w w w w w w w w w w w w w w w",
		TTFT: sim.Dist{Kind: "fixed", Mean: ttft}, PerToken: sim.Dist{Kind: "fixed", Mean: perToken}}
	srv := httptest.NewServer(sim.New(cfg))
	defer srv.Close()
	for _, c := range []int{1, 16, 128} {
		t.Run(fmt.Sprint("concurrency ", c), func(t *testing.T) {
			eng, err := openai.New(openai.Options{BaseURL: srv.URL, MaxConns: c})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.CloseIdleConnections()
			reqs := []runner.Request{{ID: "q", Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: "go"}}, MaxTokens: 64}}
			res, err := runner.Run(t.Context(), eng, reqs, runner.Options{Load: runner.Load{Concurrency: c, Requests: max(2*c, 6), Warmup: c}})
			if err != nil {
				t.Fatal(err)
			}
			s := runner.Summarize(res, runner.SLO{})
			if s.Failed > 0 || s.Tokens.ServerCounted != s.Requests || s.OutputTokensPerRequest.P50 != tokens {
				t.Fatalf("summary %+v: want every request ok with %d server-counted tokens", s, tokens)
			}
			within := func(name string, got float64, want time.Duration) {
				if rel := math.Abs(got-want.Seconds()) / want.Seconds(); rel > 0.05 {
					t.Errorf("%s median %.4fs, truth %s: off by %.1f%% (limit 5%%)", name, got, want, 100*rel)
				} else {
					t.Logf("%s median %.4fs, truth %s (%.2f%%)", name, got, want, 100*rel)
				}
			}
			within("ttft", s.TTFT.P50, ttft)
			within("tpot", s.TPOT.P50, perToken)
		})
	}
}

// TestFaultsAreDataPoints runs a benchmark against a simulator that
// rate-limits, fails, cuts streams, sends garbage, drops connections and
// hangs: every fault is classified in the summary, the run finishes, and
// nothing is left running.
func TestFaultsAreDataPoints(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := sim.Config{Model: "faulty", Default: "fine answer here", Answers: []sim.Answer{
		{Match: "p429", Fault: "http_429", RetryAfter: time.Second},
		{Match: "p500", Fault: "http_500"},
		{Match: "pcut", Text: "one two three four", Fault: "cut"},
		{Match: "pgarbage", Fault: "garbage"},
		{Match: "pclose", Fault: "close"},
		{Match: "phang", Fault: "hang"},
	}}
	srv := httptest.NewServer(sim.New(cfg))
	eng, err := openai.New(openai.Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []runner.Request
	for _, p := range []string{"ok", "p429", "p500", "pcut", "pgarbage", "pclose", "phang"} {
		reqs = append(reqs, runner.Request{ID: p, Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: p}}})
	}
	res, err := runner.Run(t.Context(), eng, reqs, runner.Options{Load: runner.Load{Concurrency: 7, Requests: 14}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := runner.Summarize(res, runner.SLO{})
	want := map[runner.Class]int{runner.ClassHTTP429: 2, runner.ClassHTTP5xx: 2, runner.ClassStreamCut: 2,
		runner.ClassStreamParse: 2, runner.ClassConnect: 2, runner.ClassTimeout: 2}
	if s.Succeeded != 2 || s.Failed != 12 || len(s.Errors) != len(want) {
		t.Fatalf("summary: %d ok, %d failed, errors %v; want 2 ok and %v", s.Succeeded, s.Failed, s.Errors, want)
	}
	for c, n := range want {
		if s.Errors[c] != n {
			t.Errorf("%s: %d, want %d", c, s.Errors[c], n)
		}
	}
	for _, tl := range res.Timelines {
		if tl.Attempts != 1 {
			t.Errorf("%s sent %d times: a benchmark never retries", tl.ID, tl.Attempts)
		}
	}
	eng.CloseIdleConnections()
	srv.Close()
	for i := 0; runtime.NumGoroutine() > before+2; i++ {
		if i > 500 {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after the run, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEvalRetriesHonourRetryAfter: with a retry policy (evals), a
// rate-limited request waits at least the server's Retry-After and then
// succeeds.
func TestEvalRetriesHonourRetryAfter(t *testing.T) {
	cfg := sim.Config{Model: "m", Answers: []sim.Answer{{Match: "q", Text: "answer", Fault: "http_429", RetryAfter: time.Second, FaultTimes: 1}}}
	srv := httptest.NewServer(sim.New(cfg))
	defer srv.Close()
	eng, _ := openai.New(openai.Options{BaseURL: srv.URL, KeepOutput: true})
	defer eng.CloseIdleConnections()
	t0 := time.Now()
	res, err := runner.Run(t.Context(), eng, []runner.Request{{ID: "q", Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: "q"}}}},
		runner.Options{Retry: runner.Retry{Attempts: 3, Base: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	tl := res.Timelines[0]
	if tl.Error != nil || tl.Attempts != 2 || tl.Output != "answer" {
		t.Fatalf("error %v after %d attempts, output %q", tl.Error, tl.Attempts, tl.Output)
	}
	if took := time.Since(t0); took < time.Second {
		t.Errorf("retried after %v, before the server's Retry-After of 1s", took)
	}
}
