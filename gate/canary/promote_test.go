package canary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeActuator records what it was told (a fake: the router and Gateway API
// actuators have their own tests).
type fakeActuator struct {
	weights []int
	kills   []bool
}

func (f *fakeActuator) SetWeight(_ context.Context, w int) error {
	f.weights = append(f.weights, w)
	return nil
}

func (f *fakeActuator) KillSwitch(_ context.Context, on bool, _ string) error {
	f.kills = append(f.kills, on)
	return nil
}

// fakeProvider answers from a function of the metric, variant and the time
// since the canary started: a fake, standing in for a regressed or idle
// model that no real part produces on demand.
type fakeProvider func(m Metric, v string, since time.Duration) (Observation, error)

func (f fakeProvider) Observe(_ context.Context, q Query) (Observation, error) {
	return f(q.Metric, q.Variant.Name, q.Window())
}

// clock is a simulated clock: Sleep moves it on.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }
func (c *clock) sleep(_ context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return nil
}

func testPlan(t *testing.T, extra string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(`
environment: prod
interval: 30s
steps: [{weight: 5, pause: 2m}, {weight: 25, pause: 2m}, {weight: 50, pause: 2m}, {weight: 100}]
provider: {file: obs.yaml}
metrics:
  - {name: ttft, kind: latency, min_samples: 50, query: {histogram: 'x_bucket{variant="{{.Variant}}"}'}}
  - {name: errors, kind: error, min_samples: 100, query: {events: e, requests: r}}
`+extra), ".")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// traffic models a service taking rate requests/s, split by weight; the
// canary's latency and error rate are given.
func traffic(rate float64, weight func() int, canaryMean, canaryErr float64) fakeProvider {
	return func(m Metric, v string, since time.Duration) (Observation, error) {
		n := rate * since.Seconds()
		share := float64(weight()) / 100
		mean, errRate := 0.100, 0.001
		if v == "canary" {
			n *= share
			mean, errRate = canaryMean, canaryErr
		} else {
			n *= 1 - share
		}
		if n < 1 {
			return Observation{}, fmt.Errorf("x: %w", ErrNoData)
		}
		if m.Test == TestCount {
			return Observation{N: n, Events: float64(int(n * errRate))}, nil
		}
		return Observation{N: n, Mean: mean, Var: 0.03 * 0.03}, nil
	}
}

func run(t *testing.T, plan *Config, prov Provider, r *Record) (*fakeActuator, *Record, error) {
	t.Helper()
	act := &fakeActuator{}
	c := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	saves := 0
	p := &Promoter{Plan: plan, Provider: prov, Actuator: act, Now: c.now, Sleep: c.sleep, Save: func(*Record) error { saves++; return nil }}
	if r == nil {
		r = NewRecord(plan, "sha256:plan", "reg/app", Variant{Name: "stable", Digest: "sha256:a"}, Variant{Name: "canary", Digest: "sha256:b"}, "sha256:a")
	}
	err := p.Run(context.Background(), r)
	if saves == 0 {
		t.Error("the record was never saved")
	}
	return act, r, err
}

func TestPromoterRollsBackARegressionAtTheFirstStep(t *testing.T) {
	plan := testPlan(t, "rollback: {kill_switch: true}\n")
	w := 0
	act, r, err := run(t, plan, traffic(20, func() int { return max(w, 5) }, 0.140, 0.02), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != RolledBack || r.Step != 0 {
		t.Fatalf("phase %s at step %d, want rolled_back at step 0: %s", r.Phase, r.Step, r.Reason)
	}
	if !strings.Contains(r.Reason, "rolled back at step 1 (5%): ttft: canary mean 0.14 vs baseline 0.1 (+40.0%)") {
		t.Errorf("reason %q", r.Reason)
	}
	if fmt.Sprint(act.weights) != "[5 0]" || fmt.Sprint(act.kills) != "[false true]" {
		t.Errorf("weights %v, kill-switch %v; want [5 0] and [false true]", act.weights, act.kills)
	}
}

func TestPromoterPromotesAGoodCanary(t *testing.T) {
	plan := testPlan(t, "")
	act, r, err := run(t, plan, traffic(20, func() int { return 25 }, 0.100, 0.001), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != Promoted {
		t.Fatalf("phase %s: %s", r.Phase, r.Reason)
	}
	if fmt.Sprint(act.weights) != "[5 25 50 100]" {
		t.Errorf("weights %v", act.weights)
	}
	for _, l := range r.Looks {
		if l.Assessment.Status == Fail {
			t.Errorf("a look failed: %+v", l)
		}
	}
}

func TestPromoterExtendsOnNoDataThenPauses(t *testing.T) {
	plan := testPlan(t, "no_data: {extend: 1m, max_extensions: 2}\n")
	// 0.5 requests/s: the canary's 5% never reaches 50 samples.
	act, r, err := run(t, plan, traffic(0.5, func() int { return 5 }, 0.100, 0.001), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != Paused || !strings.Contains(r.Reason, "still no data after 2 extensions") {
		t.Fatalf("phase %s: %s", r.Phase, r.Reason)
	}
	ext := 0
	for _, a := range r.Actions {
		if a.What == "extended" {
			ext++
		}
	}
	if ext != 2 || fmt.Sprint(act.weights) != "[5]" {
		t.Errorf("%d extensions, weights %v; want 2 and [5]", ext, act.weights)
	}
	// Resumed with traffic back: it goes on and promotes.
	_, r, err = run(t, plan, traffic(50, func() int { return 25 }, 0.100, 0.001), r)
	if err != nil || r.Phase != Promoted {
		t.Fatalf("resumed: %v, phase %s: %s", err, r.Phase, r.Reason)
	}
}

func TestPromoterPausesOnAnInconclusiveLastStep(t *testing.T) {
	plan := testPlan(t, "on_inconclusive: pause\n")
	// 6% slower against a 10% tolerance, at low traffic: never shown
	// either way within the pauses.
	_, r, err := run(t, plan, traffic(3, func() int { return 25 }, 0.106, 0.001), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != Paused || !strings.Contains(r.Reason, "inconclusive") {
		t.Fatalf("phase %s: %s", r.Phase, r.Reason)
	}
	act, r, err := run(t, plan, traffic(3, func() int { return 25 }, 0.106, 0.001), r)
	if err != nil || r.Phase != Promoted || r.Reason != "promoted by hand after an inconclusive last step" {
		t.Fatalf("resumed: %v, %s: %s", err, r.Phase, r.Reason)
	}
	if fmt.Sprint(act.weights) != "[100]" {
		t.Errorf("weights on resume %v, want [100]", act.weights)
	}
}

func TestPromoterStopsWithTheContextAndResumes(t *testing.T) {
	plan := testPlan(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	c := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	looks := 0
	p := &Promoter{Plan: plan, Provider: traffic(20, func() int { return 25 }, 0.1, 0.001), Actuator: &fakeActuator{}, Now: c.now, Sleep: c.sleep,
		OnLook: func(*Record, Look) {
			if looks++; looks == 2 {
				cancel()
			}
		}}
	r := NewRecord(plan, "", "reg/app", Variant{Name: "stable"}, Variant{Name: "canary"}, "")
	if err := p.Run(ctx, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if r.Phase != Running {
		t.Fatalf("phase %s", r.Phase)
	}
	if err := p.Run(context.Background(), r); err != nil || r.Phase != Promoted {
		t.Fatalf("resumed: %v, %s", err, r.Phase)
	}
}

func TestPlanErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`
environment: ""
alpha: 2
steps: [{weight: 50, pause: 1m}, {weight: 25}, {weight: 100}]
metrics:
  - {name: a, kind: speed, query: {}}
  - {name: e, kind: error, direction: higher, query: {events: '{{.Nope'}}
provider: {}
actuator: {router: {}, none: {}}
`), ".")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"environment: required", "alpha: 2", "steps[1]: weight 25 does not rise", "kind: \"speed\"",
		"a count metric counts bad events", "needs events and requests", "unclosed action",
		"provider: give exactly one", "actuator: give one of", "router: url: required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
