//go:build !race

package runner_test

import (
	"fmt"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/openai"
	"github.com/airlock-dev/airlock/runner/sim"
)

// The timing test is built without the race detector: it checks the
// accuracy of measurements, which the detector's slowdown of client and
// server on two cores would swamp. make test runs it on its own, after the
// race-detector run, so that other packages' tests do not load the
// machine while it measures.

// TestMeasuresKnownTiming runs the runner against the simulator streaming
// with a fixed TTFT and a fixed delay per token over real HTTP, and checks
// that the report's medians are within 5% of the truth at 1, 16 and 128
// concurrent requests.
func TestMeasuresKnownTiming(t *testing.T) {
	const (
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
