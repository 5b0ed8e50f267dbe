package main

import (
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/airlock-dev/airlock/gate/canary"
)

// outcome is one judge's decision on one canary: failed (rolled back) or
// not, the canary requests it had used at the decision, and which metrics
// failed.
type outcome struct {
	failed  bool
	samples int
	why     string
}

// settings are the judges' parameters.
type settings struct {
	// Airlock.
	alpha            float64
	look, max        int
	latencyTolerance float64 // relative
	qualityTolerance float64 // absolute
	// Kayenta.
	grid     []int
	interval int // requests per cohort per Prometheus interval
	// Argo.
	argoInterval     int
	argoLatency      float64 // ms: the mean latency must stay at or below it
	argoQuality      float64 // the pass rate must stay at or above it
	argoErrors       float64 // the error rate must stay at or below it
	argoFailureLimit int
}

// running accumulates what a provider reports of one variant: the count,
// mean and variance of a mean metric (Welford), or events out of
// requests.
type running struct{ n, mean, m2, events float64 }

func (r *running) add(x float64) {
	r.n++
	d := x - r.mean
	r.mean += d / r.n
	r.m2 += d * (x - r.mean)
}

func (r *running) count(event bool) {
	r.n++
	if event {
		r.events++
	}
}

func (r *running) meanObs() canary.Observation {
	v := 0.0
	if r.n > 1 {
		v = r.m2 / (r.n - 1)
	}
	return canary.Observation{N: r.n, Mean: r.mean, Var: v}
}

func (r *running) countObs() canary.Observation {
	return canary.Observation{N: r.n, Events: r.events}
}

// airlockMetrics are the three metrics Airlock judges, with the judge's
// default minimum samples.
func airlockMetrics(st settings) []canary.Metric {
	return []canary.Metric{
		{Name: "latency", Kind: canary.KindLatency, Direction: canary.Lower, Test: canary.TestMean,
			Tolerance: &canary.Tolerance{Value: st.latencyTolerance, Relative: true}, MinSamples: canary.DefaultMinMean},
		{Name: "quality", Kind: canary.KindQuality, Direction: canary.Higher, Test: canary.TestProportion,
			Tolerance: &canary.Tolerance{Value: st.qualityTolerance}, MinSamples: canary.DefaultMinCount},
		{Name: "errors", Kind: canary.KindError, Direction: canary.Lower, Test: canary.TestCount,
			Tolerance: &canary.Tolerance{}, MinSamples: canary.DefaultMinCount},
	}
}

// judgeAirlock runs canary.Judge on cumulative observations every st.look
// canary requests up to st.max, and stops at the first Fail. A canary that
// never fails passes at st.max.
func judgeAirlock(r canaryRun, m model, st settings) outcome {
	metrics := airlockMetrics(st)
	var lat, qual, errs [2]running // 0: baseline, 1: canary
	nb := 0
	in := make([]canary.Input, 3)
	for k := 1; k <= st.max; k++ {
		i := k - 1
		lat[1].add(r.canary.latency[i])
		qual[1].count(r.canary.pass[i])
		errs[1].count(r.canary.failed[i])
		for ; nb < m.baselineN(k); nb++ {
			lat[0].add(r.baseline.latency[nb])
			qual[0].count(r.baseline.pass[nb])
			errs[0].count(r.baseline.failed[nb])
		}
		if k%st.look != 0 {
			continue
		}
		in[0] = canary.Input{Metric: metrics[0], Baseline: lat[0].meanObs(), Canary: lat[1].meanObs()}
		in[1] = canary.Input{Metric: metrics[1], Baseline: qual[0].countObs(), Canary: qual[1].countObs()}
		in[2] = canary.Input{Metric: metrics[2], Baseline: errs[0].countObs(), Canary: errs[1].countObs()}
		a := canary.Judge(in, st.alpha)
		if a.Status == canary.Fail {
			var why []string
			for _, res := range a.Results {
				if res.Status == canary.Fail {
					why = append(why, res.Metric)
				}
			}
			return outcome{failed: true, samples: k, why: strings.Join(why, "+")}
		}
	}
	return outcome{samples: st.max}
}

// Kayenta's two feeds of the quality metric.
const (
	qualityPerRequest  = iota // each request's pass (1) or fail (0): what the issue asked for
	qualityPerInterval        // the pass rate of each interval of requests, as a Prometheus query per interval gives
	kayentaFeeds
)

// kayentaVerdict is Kayenta's judgement of one fixed window.
type kayentaVerdict struct {
	failed bool
	// flagged has bit i set when metric i (latency, quality, errors) was
	// labelled bad.
	flagged uint8
}

// judgeKayenta judges each window of st.grid canary requests (and the
// baseline's requests over the same time) once, with each quality feed.
// Latency is fed per request; errors as the error rate of each interval
// of st.interval requests per cohort.
func judgeKayenta(r canaryRun, m model, st settings, rng *rand.Rand) [kayentaFeeds][]kayentaVerdict {
	var out [kayentaFeeds][]kayentaVerdict
	for _, n := range st.grid {
		nb := m.baselineN(n)
		latL, _ := classify(r.baseline.latency[:nb], r.canary.latency[:n], increase, rng)
		errL, _ := classify(intervalRates(r.baseline.failed[:nb], st.interval), intervalRates(r.canary.failed[:n], st.interval), increase, rng)
		qualReq, _ := classify(outcomes(r.baseline.pass[:nb]), outcomes(r.canary.pass[:n]), decrease, rng)
		qualInt, _ := classify(intervalRates(r.baseline.pass[:nb], st.interval), intervalRates(r.canary.pass[:n], st.interval), decrease, rng)
		for feed, q := range [kayentaFeeds]label{qualReq, qualInt} {
			labels := []label{latL, q, errL}
			v := kayentaVerdict{failed: verdict(score(labels)) != "Pass"}
			for i, l := range labels {
				if l == labelHigh || l == labelLow {
					v.flagged |= 1 << i
				}
			}
			out[feed] = append(out[feed], v)
		}
	}
	return out
}

// outcomes turns pass/fail outcomes into 1/0 values.
func outcomes(bs []bool) []float64 {
	out := make([]float64, len(bs))
	for i, b := range bs {
		if b {
			out[i] = 1
		}
	}
	return out
}

// intervalRates is the share of true outcomes in each whole interval of
// size requests (a partial last interval is dropped).
func intervalRates(bs []bool, size int) []float64 {
	out := make([]float64, 0, len(bs)/size)
	for i := 0; i+size <= len(bs); i += size {
		k := 0
		for _, b := range bs[i : i+size] {
			if b {
				k++
			}
		}
		out = append(out, float64(k)/float64(size))
	}
	return out
}

// judgeArgo measures the canary alone every st.argoInterval requests up to
// st.max (the mean latency, pass rate and error rate of that interval)
// against fixed thresholds. A metric fails when its failed measurements
// exceed st.argoFailureLimit, and the run fails with the first failed
// metric.
func judgeArgo(r canaryRun, st settings) outcome {
	var failures [3]int
	for end := st.argoInterval; end <= st.max; end += st.argoInterval {
		lat := mean(r.canary.latency[end-st.argoInterval : end])
		q := intervalRates(r.canary.pass[end-st.argoInterval:end], st.argoInterval)[0]
		e := intervalRates(r.canary.failed[end-st.argoInterval:end], st.argoInterval)[0]
		bad := [3]bool{lat > st.argoLatency, q < st.argoQuality, e > st.argoErrors}
		var why []string
		for i, b := range bad {
			if b {
				failures[i]++
			}
			if failures[i] > st.argoFailureLimit {
				why = append(why, metricName(i))
			}
		}
		if len(why) > 0 {
			return outcome{failed: true, samples: end, why: strings.Join(why, "+")}
		}
	}
	return outcome{samples: st.max - st.max%st.argoInterval}
}

// metricName names metric i of the three every judge sees.
func metricName(i int) string { return [...]string{"latency", "quality", "errors"}[i] }

// maxGrid is the largest Kayenta window.
func maxGrid(grid []int) int { return slices.Max(grid) }
