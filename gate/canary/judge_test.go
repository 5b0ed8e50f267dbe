package canary

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// running accumulates samples as a provider would report them.
type running struct{ n, mean, m2, events float64 }

func (r *running) add(x float64) {
	r.n++
	d := x - r.mean
	r.mean += d / r.n
	r.m2 += d * (x - r.mean)
}

func (r *running) obs() Observation {
	v := 0.0
	if r.n > 1 {
		v = r.m2 / (r.n - 1)
	}
	return Observation{N: r.n, Mean: r.mean, Var: v, Events: r.events}
}

func latencyMetric() Metric {
	return Metric{Name: "ttft", Kind: KindLatency, Direction: Lower, Test: TestMean, Tolerance: &Tolerance{Value: 0.10, Relative: true}, MinSamples: 20}
}

func errorMetric() Metric {
	return Metric{Name: "errors", Kind: KindError, Direction: Lower, Test: TestCount, Tolerance: &Tolerance{Relative: true}, MinSamples: 100}
}

// simulate runs canaries of canary samples at a 1:4 traffic split (the
// baseline gets four for each of the canary's), looking every 20 canary
// samples, and returns the share failed and the mean canary samples at
// the failure.
func simulate(t *testing.T, runs, samples int, m Metric, base, can func(*rand.Rand) float64, count bool) (failed float64, at float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	fails, sum := 0, 0.0
	for range runs {
		var b, c running
		for i := 1; i <= samples; i++ {
			x := can(rng)
			if count {
				c.n++
				c.events += x
			} else {
				c.add(x)
			}
			for range 4 {
				y := base(rng)
				if count {
					b.n++
					b.events += y
				} else {
					b.add(y)
				}
			}
			if i%20 != 0 {
				continue
			}
			a := Judge([]Input{{Metric: m, Baseline: b.obs(), Canary: c.obs()}}, 0.05)
			if a.Status == Fail {
				fails++
				sum += float64(i)
				break
			}
		}
	}
	if fails > 0 {
		at = sum / float64(fails)
	}
	return float64(fails) / float64(runs), at
}

func normal(mean, sd float64) func(*rand.Rand) float64 {
	return func(r *rand.Rand) float64 { return mean + sd*r.NormFloat64() }
}

func bernoulli(p float64) func(*rand.Rand) float64 {
	return func(r *rand.Rand) float64 {
		if r.Float64() < p {
			return 1
		}
		return 0
	}
}

// At the edge of the null (the canary exactly at the tolerance) a canary
// is failed at most alpha of the time over 50 looks: the tests stay valid
// however often they are looked at. The bound allows three standard
// errors of the simulation; a test that ignored the repeated looks fails
// it (a fixed z-test at each look fails far more often).
func TestJudgeFalseAlarmsAtTheMargin(t *testing.T) {
	const runs = 1000
	bound := 0.05 + 3*math.Sqrt(0.05*0.95/runs)
	rate, _ := simulate(t, runs, 1000, latencyMetric(), normal(100, 30), normal(110, 30), false)
	t.Logf("mean test at the margin: %.3f failed", rate)
	if rate > bound {
		t.Errorf("mean test: %.3f of canaries at the tolerance failed; want ≤ %.3f", rate, bound)
	}
	rate, _ = simulate(t, runs, 4000, errorMetric(), bernoulli(0.01), bernoulli(0.01), true)
	t.Logf("count test at the margin: %.3f failed", rate)
	if rate > bound {
		t.Errorf("count test: %.3f of canaries with the baseline's error rate failed; want ≤ %.3f", rate, bound)
	}
}

func TestJudgeDetectsRegressions(t *testing.T) {
	rate, at := simulate(t, 300, 1000, latencyMetric(), normal(100, 30), normal(130, 30), false)
	if rate < 0.95 {
		t.Errorf("a 30%% latency regression was failed in %.2f of canaries; want ≥ 0.95", rate)
	}
	t.Logf("latency +30%%: failed %.2f, at %.0f canary samples on average", rate, at)
	rate, at = simulate(t, 300, 4000, errorMetric(), bernoulli(0.001), bernoulli(0.006), true)
	if rate < 0.9 {
		t.Errorf("a 0.5-point error burst was failed in %.2f of canaries; want ≥ 0.9", rate)
	}
	t.Logf("errors 0.1%% → 0.6%%: failed %.2f, at %.0f canary requests on average", rate, at)
}

func TestJudgeStatuses(t *testing.T) {
	lat := latencyMetric()
	good := Observation{N: 2000, Mean: 100, Var: 900}
	cases := []struct {
		name   string
		in     []Input
		status Status
		reason string
	}{
		{"within tolerance", []Input{{Metric: lat, Baseline: good, Canary: Observation{N: 2000, Mean: 99, Var: 900}}}, Pass, "within the tolerance of 10%"},
		{"worse", []Input{{Metric: lat, Baseline: good, Canary: Observation{N: 500, Mean: 140, Var: 900}}}, Fail, "worse beyond the tolerance of 10%"},
		{"too few", []Input{{Metric: lat, Baseline: good, Canary: Observation{N: 5, Mean: 140, Var: 900}}}, NoData, "too few samples to judge: canary 5, baseline 2000, of 20 each"},
		{"no series", []Input{{Metric: lat, Baseline: good, CanaryErr: fmt.Errorf("query x: %w", ErrNoData)}}, NoData, "the canary has no data"},
		{"query error", []Input{{Metric: lat, BaselineErr: errors.New("connection refused"), Canary: good}}, NoData, "the baseline's query failed: connection refused"},
		{"undecided", []Input{{Metric: lat, Baseline: Observation{N: 30, Mean: 100, Var: 900}, Canary: Observation{N: 30, Mean: 105, Var: 900}}}, Inconclusive, "not yet shown"},
		{"fail beats nodata", []Input{
			{Metric: lat, Baseline: good, Canary: Observation{N: 500, Mean: 140, Var: 900}},
			{Metric: errorMetric(), BaselineErr: ErrNoData, CanaryErr: ErrNoData},
		}, Fail, "worse beyond"},
		{"errors", []Input{{Metric: errorMetric(), Baseline: Observation{N: 10000, Events: 10}, Canary: Observation{N: 2000, Events: 30}}}, Fail, "canary 30 of 2000 requests (1.50%) vs baseline 10 of 10000 (0.10%)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := Judge(c.in, 0.05)
			if a.Status != c.status {
				t.Fatalf("status %s, want %s: %+v", a.Status, c.status, a.Results)
			}
			if !strings.Contains(a.Results[0].Reason, c.reason) {
				t.Errorf("reason %q, want it to say %q", a.Results[0].Reason, c.reason)
			}
		})
	}
}

func TestJudgeLimitAndBonferroni(t *testing.T) {
	lat := latencyMetric()
	limit := 0.5
	lat.Limit = &limit
	in := []Input{{Metric: lat, Baseline: Observation{N: 1000, Mean: 0.6, Var: 0.01}, Canary: Observation{N: 1000, Mean: 0.6, Var: 0.01}}}
	a := Judge(in, 0.05)
	if a.Tests != 2 || a.Results[0].Alpha != 0.025 {
		t.Errorf("tests %d, alpha %g: want 2 tests at 0.025", a.Tests, a.Results[0].Alpha)
	}
	if a.Status != Fail || !a.Results[0].Limit.Breached || !strings.Contains(a.Results[0].Reason, "above the limit 0.5") {
		t.Errorf("a canary at 0.6 against a limit of 0.5: %s %+v", a.Status, a.Results[0])
	}
}
