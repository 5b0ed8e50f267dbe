package runner_test

import (
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/enginetest"
	"github.com/airlock-dev/airlock/runner/openai"
	"github.com/airlock-dev/airlock/runner/sim"
)

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
	enginetest.NoGoroutinesLeft(t, before, 2)
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
