package runner

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestScheduleRatesAndBurstiness(t *testing.T) {
	const n, rate = 200_000, 1000.0
	for _, tc := range []struct {
		name string
		load Load
		cv   float64 // coefficient of variation of the gaps
	}{
		{"constant", Load{Arrival: Constant, Rate: rate}, 0},
		{"poisson", Load{Arrival: Poisson, Rate: rate, Seed: 1}, 1},
		{"gamma k=1 is poisson", Load{Arrival: Gamma, Rate: rate, Burstiness: 1, Seed: 2}, 1},
		{"gamma k=0.25 is bursty", Load{Arrival: Gamma, Rate: rate, Burstiness: 0.25, Seed: 3}, 2},
		{"gamma k=4 is regular", Load{Arrival: Gamma, Rate: rate, Burstiness: 4, Seed: 4}, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.load.Schedule(n)
			if s[0] != 0 {
				t.Fatalf("first send at %v, want 0", s[0])
			}
			var sum, sq float64
			for i := 1; i < n; i++ {
				if s[i] < s[i-1] {
					t.Fatalf("schedule goes back at %d: %v < %v", i, s[i], s[i-1])
				}
				g := (s[i] - s[i-1]).Seconds()
				sum += g
				sq += g * g
			}
			mean := sum / (n - 1)
			cv := math.Sqrt(sq/(n-1)-mean*mean) / mean
			if got := 1 / mean; math.Abs(got-rate)/rate > 0.01 {
				t.Errorf("realised rate %.1f/s, want %v/s within 1%%", got, rate)
			}
			if math.Abs(cv-tc.cv) > 0.03 {
				t.Errorf("gap coefficient of variation %.3f, want %.2f (1/sqrt(shape))", cv, tc.cv)
			}
		})
	}
}

func TestScheduleSeeded(t *testing.T) {
	a := Load{Arrival: Poisson, Rate: 50, Seed: 7}.Schedule(100)
	b := Load{Arrival: Poisson, Rate: 50, Seed: 7}.Schedule(100)
	c := Load{Arrival: Poisson, Rate: 50, Seed: 8}.Schedule(100)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different schedule at %d", i)
		}
	}
	if a[99] == c[99] {
		t.Error("different seeds gave the same schedule")
	}
	if got := (Load{Arrival: Closed}).Schedule(10); got != nil {
		t.Errorf("closed loop schedule = %v, want nil", got)
	}
	if got := (Load{Arrival: Constant, Rate: 4}).Schedule(3); got[2] != 500*time.Millisecond {
		t.Errorf("constant 4/s: third send at %v, want 500ms", got[2])
	}
}

func TestLoadValidate(t *testing.T) {
	for _, tc := range []struct {
		load Load
		want string
	}{
		{Load{Arrival: Poisson}, "need a rate"},
		{Load{Arrival: Gamma, Rate: 1, Burstiness: -1}, "burstiness"},
		{Load{Arrival: "zipf"}, "unknown arrival"},
		{Load{Arrival: Closed}, "concurrency"},
		{Load{Arrival: Constant, Rate: 1, Concurrency: -1}, "negative"},
		{Load{Arrival: Constant, Rate: math.Inf(1)}, "rate"},
	} {
		err := tc.load.Validate()
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.load, err, tc.want)
		}
	}
	if err := (Load{}).Defaults(3).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
