package runner

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Arrival is how requests arrive.
type Arrival string

const (
	// Closed keeps Concurrency requests in flight: a stream sends its next
	// request when the previous one ends. Latency feeds back into the rate.
	Closed Arrival = "closed"
	// Constant sends at Rate per second, evenly spaced (open loop).
	Constant Arrival = "constant"
	// Poisson sends at Rate per second with exponential gaps (open loop).
	Poisson Arrival = "poisson"
	// Gamma sends at Rate per second with gamma-distributed gaps of shape
	// Burstiness (open loop): 1 is Poisson, below 1 burstier, above 1
	// more regular. This is vLLM's --burstiness.
	Gamma Arrival = "gamma"
)

// Load is the load model of a run. The zero value, after Defaults, is one
// closed-loop stream sending every request once.
type Load struct {
	Arrival Arrival `json:"arrival"`
	// Rate is the mean requests per second of an open loop.
	Rate float64 `json:"rate,omitempty"`
	// Burstiness is the shape of Gamma arrivals; zero means 1.
	Burstiness float64 `json:"burstiness,omitempty"`
	// Concurrency is the number of streams of a closed loop, and the cap
	// on requests in flight of an open loop (zero: no cap). When the cap
	// is reached, sends wait: the schedule lag in the report shows it.
	Concurrency int `json:"concurrency,omitempty"`
	// Requests is the number of measured requests; zero means one per
	// input request. Inputs are cycled when it is larger.
	Requests int `json:"requests"`
	// Warmup requests are sent first, closed-loop at the same
	// concurrency, and kept out of the statistics.
	Warmup int `json:"warmup,omitempty"`
	// Duration stops sending new requests after this long; zero means no
	// limit. Requests in flight finish.
	Duration Duration `json:"duration,omitempty"`
	// Seed makes Poisson and Gamma schedules repeatable.
	Seed uint64 `json:"seed"`
}

// Defaults fills in the zero fields of l for n input requests.
func (l Load) Defaults(n int) Load {
	if l.Arrival == "" {
		l.Arrival = Closed
	}
	if l.Arrival == Closed && l.Concurrency <= 0 {
		l.Concurrency = 1
	}
	if l.Arrival == Gamma && l.Burstiness == 0 {
		l.Burstiness = 1
	}
	if l.Requests == 0 {
		l.Requests = n
	}
	return l
}

// Validate reports a load that cannot run.
func (l Load) Validate() error {
	switch l.Arrival {
	case Closed:
		if l.Concurrency <= 0 {
			return fmt.Errorf("load: a closed loop needs concurrency ≥ 1, got %d", l.Concurrency)
		}
	case Constant, Poisson, Gamma:
		if !(l.Rate > 0) || math.IsInf(l.Rate, 0) {
			return fmt.Errorf("load: %s arrivals need a rate > 0 requests/s, got %v", l.Arrival, l.Rate)
		}
		if l.Arrival == Gamma && !(l.Burstiness > 0) {
			return fmt.Errorf("load: gamma burstiness must be > 0, got %v", l.Burstiness)
		}
		if l.Concurrency < 0 {
			return fmt.Errorf("load: concurrency cap %d is negative", l.Concurrency)
		}
	default:
		return fmt.Errorf("load: unknown arrival %q (want closed, constant, poisson or gamma)", l.Arrival)
	}
	if l.Requests < 0 || l.Warmup < 0 {
		return fmt.Errorf("load: requests (%d) and warm-up (%d) cannot be negative", l.Requests, l.Warmup)
	}
	if l.Duration < 0 {
		return fmt.Errorf("load: duration cannot be negative")
	}
	return nil
}

// Schedule returns the send offsets of n open-loop requests from the start
// of the run; the first is at zero. It is nil for a closed loop. Gaps are
// drawn, not rescaled, so the realised rate of a short run varies around
// Rate as a real arrival process does.
func (l Load) Schedule(n int) []time.Duration {
	if l.Arrival == Closed || n <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(l.Seed, 0x616972_6c6f636b)) // "airlock"
	out := make([]time.Duration, n)
	var t float64
	for i := 1; i < n; i++ {
		var gap float64
		switch l.Arrival {
		case Constant:
			gap = 1 / l.Rate
		case Poisson:
			gap = rng.ExpFloat64() / l.Rate
		case Gamma:
			// Mean shape·scale = 1/Rate.
			gap = gammaVariate(rng, l.Burstiness) / (l.Burstiness * l.Rate)
		}
		t += gap
		out[i] = time.Duration(t * float64(time.Second))
	}
	return out
}

// gammaVariate draws from Gamma(shape, 1) by Marsaglia and Tsang's method
// ("A simple method for generating gamma variables", ACM TOMS 26(3),
// 2000), with the U^(1/shape) boost for shape < 1.
func gammaVariate(rng *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := rng.Float64()
		for u == 0 {
			u = rng.Float64()
		}
		return gammaVariate(rng, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
