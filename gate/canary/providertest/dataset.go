package providertest

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/airlock-dev/airlock/gate/canary"
)

// Sample is one request's measurement of one metric. For a mean metric
// Value is what was measured (seconds, a score); for a count or proportion
// metric it is 1 for an event (an error, a pass) and 0 for a request
// without one.
type Sample struct {
	Metric  string
	Variant canary.Variant
	// At is the offset from the canary's start. It is never a whole
	// multiple of the Dataset's Step, so which step a sample falls in is
	// never a matter of rounding.
	At    time.Duration
	Value float64
}

// Dataset is what an implementation stores for the suite. It spans
// [0, Duration]; every window the suite asks about starts at 0 and ends at
// a multiple of Step, so an implementation may store cumulative values at
// each Step (as a scrape would) and lose nothing.
type Dataset struct {
	// Metrics are the metrics sampled, with Name, Kind and Test set and
	// Query empty: the implementation says how it reaches each (Setup).
	Metrics []canary.Metric
	// Variants are the variants that saw requests: stable, canary, and an
	// earlier canary with the same name but another digest.
	Variants []canary.Variant
	// Idle is a variant whose series exist (at zero, as the router makes
	// them) but which saw no requests.
	Idle canary.Variant
	// Samples are every request's samples, ordered by At.
	Samples []Sample
	// FirstRequest is when the first request arrived (nothing before it).
	FirstRequest time.Duration
	Step         time.Duration
	Duration     time.Duration
}

// The dataset's metrics.
const (
	// Latency is a time to first token in seconds, judged on its mean; a
	// metrics system may keep it as a histogram.
	Latency = "ttft"
	// Score is a quality score in [0, 1], judged on its mean; a metrics
	// system keeps its count, sum and sum of squares.
	Score = "score"
	// Errors is failed requests, a count.
	Errors = "errors"
	// Passes is answers whose score reached 0.7, a proportion.
	Passes = "passes"
)

// passMark is the score at or above which an answer passes.
const passMark = 0.7

// traffic describes one variant's requests.
type traffic struct {
	v        canary.Variant
	rate     float64 // requests per second
	median   float64 // of the latency, seconds
	score    float64 // mean quality score
	errorPct float64
}

// NewDataset returns the suite's dataset. It is deterministic: every call
// returns the same samples.
func NewDataset() Dataset {
	d := Dataset{
		Metrics: []canary.Metric{
			{Name: Latency, Kind: canary.KindLatency, Test: canary.TestMean},
			{Name: Score, Kind: canary.KindQuality, Test: canary.TestMean},
			{Name: Errors, Kind: canary.KindError, Test: canary.TestCount},
			{Name: Passes, Kind: canary.KindQuality, Test: canary.TestProportion},
		},
		Idle:         canary.Variant{Name: "idle", Digest: digest('d')},
		FirstRequest: 5 * time.Second,
		Step:         time.Second,
		Duration:     60 * time.Second,
	}
	// The old canary shares the canary's name and differs in digest and
	// in every distribution, so a query that ignores {{.Digest}} mixes
	// them and is caught.
	vs := []traffic{
		{v: canary.Variant{Name: "stable", Digest: digest('a')}, rate: 6, median: 0.120, score: 0.78, errorPct: 2},
		{v: canary.Variant{Name: "canary", Digest: digest('b')}, rate: 4, median: 0.150, score: 0.74, errorPct: 5},
		{v: canary.Variant{Name: "canary", Digest: digest('c')}, rate: 2, median: 0.090, score: 0.66, errorPct: 12},
	}
	rng := rand.New(rand.NewPCG(20261204, 7))
	for _, tr := range vs {
		d.Variants = append(d.Variants, tr.v)
		span := (d.Duration - d.FirstRequest).Seconds()
		n := int(span * tr.rate)
		for i := range n {
			// One request per slot of 1/rate seconds, somewhere in
			// the middle of it, to the millisecond.
			sec := d.FirstRequest.Seconds() + (float64(i)+0.05+0.9*rng.Float64())/tr.rate
			at := time.Duration(math.Round(sec*1000)) * time.Millisecond
			if at%d.Step == 0 {
				at += time.Millisecond
			}
			latency := tr.median * math.Exp(0.5*rng.NormFloat64())
			score := min(max(tr.score+0.15*rng.NormFloat64(), 0), 1)
			failed := 0.0
			if rng.Float64()*100 < tr.errorPct {
				failed = 1
			}
			passed := 0.0
			if score >= passMark {
				passed = 1
			}
			d.Samples = append(d.Samples,
				Sample{Metric: Latency, Variant: tr.v, At: at, Value: latency},
				Sample{Metric: Score, Variant: tr.v, At: at, Value: score},
				Sample{Metric: Errors, Variant: tr.v, At: at, Value: failed},
				Sample{Metric: Passes, Variant: tr.v, At: at, Value: passed},
			)
		}
	}
	slices.SortStableFunc(d.Samples, func(a, b Sample) int { return int(a.At - b.At) })
	return d
}

func digest(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return "sha256:" + string(b)
}

// Metric returns the dataset's metric named name.
func (d Dataset) Metric(name string) canary.Metric {
	for _, m := range d.Metrics {
		if m.Name == name {
			return m
		}
	}
	panic("providertest: no metric " + name)
}

// Exact is the observation of metric for v over [0, upTo], computed from
// the samples: what a provider that lost nothing would answer. N is 0 when
// there is no sample.
func (d Dataset) Exact(metric string, v canary.Variant, upTo time.Duration) canary.Observation {
	var n, mean, m2, events float64
	for _, s := range d.Samples {
		if s.Metric != metric || s.Variant != v || s.At > upTo {
			continue
		}
		// Welford's update: stable however the values are spread.
		n++
		dx := s.Value - mean
		mean += dx / n
		m2 += dx * (s.Value - mean)
		events += s.Value
	}
	if n == 0 {
		return canary.Observation{}
	}
	if d.Metric(metric).Test != canary.TestMean {
		p := events / n
		return canary.Observation{N: n, Mean: p, Var: p * (1 - p), Events: events}
	}
	o := canary.Observation{N: n, Mean: mean}
	if n > 1 {
		o.Var = m2 / (n - 1)
	}
	return o
}
