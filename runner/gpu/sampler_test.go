package gpu

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// fakeTicker ticks when the test says so. tick blocks until the Sampler
// has taken the tick, and Stop waits for the Sampler's goroutine, so a
// test sees every tick's sample without sleeping.
type fakeTicker struct {
	c        chan time.Time
	interval time.Duration
	stopped  bool
}

func newFakeTicker() *fakeTicker { return &fakeTicker{c: make(chan time.Time)} }

func (f *fakeTicker) new(d time.Duration) Ticker { f.interval = d; return f }
func (f *fakeTicker) C() <-chan time.Time        { return f.c }
func (f *fakeTicker) Stop()                      { f.stopped = true }
func (f *fakeTicker) tick()                      { f.c <- time.Time{} }

func TestSamplerUnavailable(t *testing.T) {
	ft := newFakeTicker()
	s := StartSampler(t.Context(), Unavailable("no GPU: test"), SamplerOptions{NewTicker: ft.new})
	ft.tick()
	sum := s.Stop(t.Context())
	want := Summary{Samples: 3, GPUs: []GPUSummary{}}
	if !reflect.DeepEqual(sum, want) || !ft.stopped || ft.interval != time.Second {
		t.Errorf("summary %+v, ticker %+v", sum, ft)
	}
	if again := s.Stop(t.Context()); !reflect.DeepEqual(again, sum) {
		t.Errorf("second Stop = %+v, want the first summary", again)
	}
}

func TestSamplerStopsWithContext(t *testing.T) {
	ft := newFakeTicker()
	ctx, cancel := context.WithCancel(t.Context())
	s := StartSampler(ctx, Unavailable("no GPU: test"), SamplerOptions{NewTicker: ft.new, Interval: time.Minute})
	cancel()
	<-s.done // hangs the test if the goroutine outlives its context
	if !ft.stopped || ft.interval != time.Minute {
		t.Errorf("ticker %+v, want stopped, interval 1m", ft)
	}
}

func TestSummary(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type reading struct {
		energy, util *float64
		used         *uint64
		lost         bool
	}
	for _, tc := range []struct {
		name     string
		readings []reading
		want     GPUSummary
	}{
		{"energy delta", []reading{{energy: f(10)}, {energy: f(15)}, {energy: f(30)}},
			GPUSummary{EnergyJoules: f(20)}},
		{"counter reset", []reading{{energy: f(10)}, {energy: f(15)}, {energy: f(2)}, {energy: f(4)}},
			GPUSummary{EnergyReset: true}},
		{"energy unsupported", []reading{{}, {}},
			GPUSummary{}},
		{"one reading has no delta", []reading{{energy: f(10)}},
			GPUSummary{}},
		{"a failed reading is bridged", []reading{{energy: f(10)}, {}, {energy: f(30)}},
			GPUSummary{EnergyJoules: f(20)}},
		{"lost", []reading{{energy: f(10)}, {energy: f(20)}, {lost: true}},
			GPUSummary{Lost: true}},
		{"utilization and memory", []reading{{util: f(0.25), used: ptr[uint64](5)}, {used: ptr[uint64](9)}, {util: f(0.75), used: ptr[uint64](7)}},
			GPUSummary{MeanUtilization: f(0.5), PeakUtilization: f(0.75), PeakMemoryUsed: ptr[uint64](9)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a accumulator
			for i, r := range tc.readings {
				a.add([]Sample{{Time: t0.Add(time.Duration(i) * time.Second), Index: 2, UUID: "GPU-2", Name: "A100",
					EnergyJoules: r.energy, UtilizationGPU: r.util, MemoryUsed: r.used, Lost: r.lost}}, 0)
			}
			want := tc.want
			want.Index, want.UUID, want.Name, want.Samples = 2, "GPU-2", "A100", len(tc.readings)
			sum := a.summary()
			if len(sum.GPUs) != 1 || !reflect.DeepEqual(sum.GPUs[0], want) {
				t.Errorf("got  %+v\nwant %+v", sum.GPUs, want)
			}
			if end := t0.Add(time.Duration(len(tc.readings)-1) * time.Second); !sum.Start.Equal(t0) || !sum.End.Equal(end) {
				t.Errorf("run %v–%v, want %v–%v", sum.Start, sum.End, t0, end)
			}
		})
	}
}
