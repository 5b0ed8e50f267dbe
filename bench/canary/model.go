package main

import (
	"math"
	"math/rand/v2"
)

// model is the traffic both cohorts serve: per request a latency
// (lognormal), a quality outcome (pass or fail) and an error outcome.
type model struct {
	latencyMedian float64 // ms
	latencySigma  float64 // σ of log latency
	quality       float64 // the baseline's pass rate
	errorRate     float64 // the baseline's error rate
	// ratio is baseline requests per canary request (1: the same-size
	// baseline Kayenta recommends).
	ratio float64
}

// latencyMean is the baseline's true mean latency.
func (m model) latencyMean() float64 {
	return m.latencyMedian * math.Exp(m.latencySigma*m.latencySigma/2)
}

// baselineN is the baseline's requests when the canary has served k.
func (m model) baselineN(k int) int { return int(math.Round(m.ratio * float64(k))) }

// scenario is what is wrong with the canary.
type scenario struct {
	key, name     string
	latencyFactor float64 // every canary latency is multiplied by it
	quality       float64 // the canary's pass rate
	// burstErrors is the error rate added in bursts of burstLen
	// consecutive failed canary requests.
	burstErrors float64
	burstLen    int
	regression  bool
}

func scenarios(m model, burstLen int, burstErrors float64) []scenario {
	return []scenario{
		{key: "none", name: "no regression", latencyFactor: 1, quality: m.quality},
		{key: "latency", name: "latency +20%", latencyFactor: 1.2, quality: m.quality, regression: true},
		{key: "quality", name: "quality −5 points", latencyFactor: 1, quality: m.quality - 0.05, regression: true},
		{key: "errors", name: "error bursts +0.5 points", latencyFactor: 1, quality: m.quality,
			burstErrors: burstErrors, burstLen: burstLen, regression: true},
	}
}

// cohort is one side's requests in arrival order.
type cohort struct {
	latency []float64
	pass    []bool
	failed  []bool
}

// burstStart is the chance that a canary request outside a burst starts
// one, such that the bursts add s.burstErrors to the error rate on top of
// the base rate outside them: bursts cover f = 5q/(1+4q) of the requests
// (for bursts of 5), and f + (1−f)·base = base + burstErrors.
func (s scenario) burstStart(base float64) float64 {
	if s.burstLen == 0 || s.burstErrors == 0 {
		return 0
	}
	f := s.burstErrors / (1 - base)
	l := float64(s.burstLen)
	return f / (l - (l-1)*f)
}

// generate draws n requests of one cohort.
func generate(rng *rand.Rand, m model, s scenario, n int) cohort {
	c := cohort{latency: make([]float64, n), pass: make([]bool, n), failed: make([]bool, n)}
	mu := math.Log(m.latencyMedian)
	q := s.burstStart(m.errorRate)
	left := 0
	for i := range n {
		c.latency[i] = math.Exp(mu+m.latencySigma*rng.NormFloat64()) * s.latencyFactor
		c.pass[i] = rng.Float64() < s.quality
		switch {
		case left > 0:
			c.failed[i] = true
			left--
		case q > 0 && rng.Float64() < q:
			c.failed[i] = true
			left = s.burstLen - 1
		default:
			c.failed[i] = rng.Float64() < m.errorRate
		}
	}
	return c
}

// baselineScenario is the baseline's traffic: the model itself.
func baselineScenario(m model) scenario {
	return scenario{key: "baseline", latencyFactor: 1, quality: m.quality}
}

// canaryRun is one simulated canary: the canary's and the baseline's
// requests, canaryN and baselineN(canaryN) of them.
type canaryRun struct {
	canary, baseline cohort
}

func newCanaryRun(seed uint64, scenarioIndex, run int, m model, s scenario, canaryN int) canaryRun {
	rng := rand.New(rand.NewPCG(seed, uint64(scenarioIndex)<<32|uint64(run)))
	can := generate(rng, m, s, canaryN)
	base := generate(rng, m, baselineScenario(m), m.baselineN(canaryN))
	return canaryRun{canary: can, baseline: base}
}
