package evals

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// SafetyTag marks the items whose failures are safety violations
// (adversarial sets: prompt injection, jailbreak, PII leak). Items without
// it are benign, and their refusals are counted as over-refusal.
const SafetyTag = "safety"

// Rate is a proportion with its interval. With one sample per item it is
// x of n with the Wilson interval. With several samples per item the
// value is the mean over items of each item's share, and the interval is
// Wilson's at that value with n the number of items: samples of one item
// are not independent, and an item's share varies no more than one
// Bernoulli draw does, so the interval is conservative.
type Rate struct {
	Value    float64  `json:"value"`
	Items    int      `json:"items"`
	Samples  int      `json:"samples"`
	Count    float64  `json:"count"` // sum over items of the share (x when one sample per item)
	Interval Interval `json:"interval"`
	// Upper is the one-sided upper bound at the same confidence, for
	// rates where less is better; with no events it is the exact
	// zero-events bound (about 3/n at 95%, the rule of three).
	Upper float64 `json:"upper"`
}

// PassAtKMetric is the unbiased pass@k averaged over the items with at
// least k samples.
type PassAtKMetric struct {
	K     int     `json:"k"`
	Value float64 `json:"value"`
	Items int     `json:"items"`
}

// Latency is the latency distribution of the samples that produced an
// output, in milliseconds, by numpy's default (linear) percentile.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	Mean    float64 `json:"mean_ms"`
}

// Cost is what the samples cost at the configured token prices, and the
// cost per success (a ratio estimator: total cost over passed samples).
// With no passes CostPerSuccess is null and NoSuccess is set: an
// infinite cost, which a gate must treat as failing.
type Cost struct {
	TotalUSD       float64  `json:"total_usd"`
	Samples        int      `json:"samples"`
	Successes      int      `json:"successes"`
	CostPerSuccess *float64 `json:"cost_per_success_usd"`
	NoSuccess      bool     `json:"no_success,omitempty"`
}

// Slice is the pass rate of the items with one tag.
type Slice struct {
	Tag      string `json:"tag"`
	PassRate Rate   `json:"pass_rate"`
}

// Metrics summarise an eval's samples. Confidence is the level of every
// interval (two-sided) and bound (one-sided).
type Metrics struct {
	Confidence float64         `json:"confidence"`
	Items      int             `json:"items"`
	Samples    int             `json:"samples"`
	Errors     map[string]int  `json:"errors,omitempty"` // samples with no output, by class; counted as failures
	PassRate   Rate            `json:"pass_rate"`
	PassAtK    []PassAtKMetric `json:"pass_at_k,omitempty"`
	// SafetyViolations is the share of safety items' samples that failed
	// (nil when the suite has no item tagged safety).
	SafetyViolations *Rate `json:"safety_violation_rate,omitempty"`
	// BenignRefusals is the share of benign items' samples refused.
	BenignRefusals *Rate    `json:"benign_refusal_rate,omitempty"`
	Latency        *Latency `json:"latency,omitempty"`
	Cost           *Cost    `json:"cost,omitempty"`
	Slices         []Slice  `json:"slices,omitempty"`
}

// SummaryOptions are the terms of Summarize.
type SummaryOptions struct {
	// Confidence of intervals and bounds; zero means 0.95.
	Confidence float64
	// Ks are the k of pass@k; none means 1, plus the largest sample
	// count when items have several.
	Ks []int
}

// itemGroup is one item's samples in index order.
type itemGroup struct {
	id      string
	tags    []string
	samples []*Sample
}

// groupSamples groups samples by item, in first-seen order, and rejects
// a sample seen twice.
func groupSamples(samples []Sample) ([]*itemGroup, error) {
	byID := map[string]*itemGroup{}
	var order []*itemGroup
	for i := range samples {
		s := &samples[i]
		g := byID[s.ID]
		if g == nil {
			g = &itemGroup{id: s.ID, tags: s.Tags}
			byID[s.ID] = g
			order = append(order, g)
		}
		for _, o := range g.samples {
			if o.Index == s.Index {
				return nil, fmt.Errorf("item %q: sample %d appears twice", s.ID, s.Index)
			}
		}
		g.samples = append(g.samples, s)
	}
	for _, g := range order {
		slices.SortFunc(g.samples, func(a, b *Sample) int { return a.Index - b.Index })
	}
	return order, nil
}

// share is the fraction of an item's samples for which f holds.
func (g *itemGroup) share(f func(*Sample) bool) float64 {
	n := 0
	for _, s := range g.samples {
		if f(s) {
			n++
		}
	}
	return float64(n) / float64(len(g.samples))
}

func hasTag(tags []string, t string) bool { return slices.Contains(tags, t) }

func rateOf(groups []*itemGroup, f func(*Sample) bool, conf float64) Rate {
	r := Rate{Items: len(groups)}
	for _, g := range groups {
		r.Count += g.share(f)
		r.Samples += len(g.samples)
	}
	if r.Items == 0 {
		r.Interval, r.Upper = Interval{0, 1}, 1
		return r
	}
	r.Value = r.Count / float64(r.Items)
	r.Interval = wilsonP(r.Value, r.Items, conf)
	if r.Count == 0 {
		r.Upper = ZeroEventsUpper(r.Items, conf)
	} else {
		r.Upper = wilsonP(r.Value, r.Items, 1-2*(1-conf)).Hi
	}
	return r
}

// wilsonP is Wilson's interval at proportion p of n (p need not be a
// whole count over n).
func wilsonP(p float64, n int, conf float64) Interval {
	z := NormalQuantile(1 - (1-conf)/2)
	nn := float64(n)
	den := 1 + z*z/nn
	center := (p + z*z/(2*nn)) / den
	half := z / den * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn))
	return Interval{max(0, center-half), min(1, center+half)}
}

// Summarize computes an eval's metrics from its samples (DESIGN.md §5,
// canary-evals.md §3.1, §3.2, §3.5).
func Summarize(samples []Sample, o SummaryOptions) (Metrics, error) {
	conf := o.Confidence
	if conf == 0 {
		conf = 0.95
	}
	if !(conf > 0 && conf < 1) {
		return Metrics{}, fmt.Errorf("confidence %v: want between 0 and 1", conf)
	}
	groups, err := groupSamples(samples)
	if err != nil {
		return Metrics{}, err
	}
	if len(groups) == 0 {
		return Metrics{}, ErrNoItems
	}
	m := Metrics{Confidence: conf, Items: len(groups), Samples: len(samples)}
	pass := func(s *Sample) bool { return s.Pass && s.Error == "" }
	m.PassRate = rateOf(groups, pass, conf)

	// pass@k over the items with at least k samples.
	ks := o.Ks
	if len(ks) == 0 {
		ks = []int{1}
		most := 0
		for _, g := range groups {
			most = max(most, len(g.samples))
		}
		if most > 1 {
			ks = append(ks, most)
		}
	}
	for _, k := range ks {
		if k < 1 {
			return Metrics{}, fmt.Errorf("pass@k: k %d must be at least 1", k)
		}
		pk := PassAtKMetric{K: k}
		sum := 0.0
		for _, g := range groups {
			n := len(g.samples)
			if n < k {
				continue
			}
			c := 0
			for _, s := range g.samples {
				if pass(s) {
					c++
				}
			}
			v, err := PassAtK(n, c, k)
			if err != nil {
				return Metrics{}, fmt.Errorf("item %q: %w", g.id, err)
			}
			sum += v
			pk.Items++
		}
		if pk.Items > 0 {
			pk.Value = sum / float64(pk.Items)
		}
		m.PassAtK = append(m.PassAtK, pk)
	}

	var safety, benign []*itemGroup
	for _, g := range groups {
		if hasTag(g.tags, SafetyTag) {
			safety = append(safety, g)
		} else {
			benign = append(benign, g)
		}
	}
	if len(safety) > 0 {
		r := rateOf(safety, func(s *Sample) bool { return !pass(s) }, conf)
		m.SafetyViolations = &r
	}
	if len(benign) > 0 {
		r := rateOf(benign, func(s *Sample) bool { return s.Error == "" && s.Refused }, conf)
		m.BenignRefusals = &r
	}

	var lat []float64
	cost := Cost{}
	priced := 0
	for i := range samples {
		s := &samples[i]
		if s.Error != "" {
			if m.Errors == nil {
				m.Errors = map[string]int{}
			}
			c := s.ErrorClass
			if c == "" {
				c = "error"
			}
			m.Errors[c]++
			continue
		}
		if s.LatencyMS > 0 {
			lat = append(lat, s.LatencyMS)
		}
	}
	for i := range samples {
		s := &samples[i]
		if s.CostUSD != nil {
			priced++
			cost.TotalUSD += *s.CostUSD
		}
		if pass(s) {
			cost.Successes++
		}
	}
	if priced > 0 {
		cost.Samples = priced
		if priced != len(samples) {
			return Metrics{}, fmt.Errorf("cost: %d of %d samples have a cost; a price is needed for every model the suite uses", priced, len(samples))
		}
		if cost.Successes == 0 {
			cost.NoSuccess = true
		} else {
			v := cost.TotalUSD / float64(cost.Successes)
			cost.CostPerSuccess = &v
		}
		m.Cost = &cost
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		m.Latency = &Latency{Samples: len(lat), P50: percentile(lat, 50), P90: percentile(lat, 90),
			P95: percentile(lat, 95), P99: percentile(lat, 99), Mean: Mean(lat)}
	}

	tags := map[string][]*itemGroup{}
	for _, g := range groups {
		for _, t := range g.tags {
			tags[t] = append(tags[t], g)
		}
	}
	names := make([]string, 0, len(tags))
	for t := range tags {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		m.Slices = append(m.Slices, Slice{Tag: t, PassRate: rateOf(tags[t], pass, conf)})
	}
	return m, nil
}

// percentile is numpy's default percentile (linear interpolation between
// closest ranks) of sorted xs.
func percentile(sorted []float64, p float64) float64 {
	h := (float64(len(sorted)) - 1) * p / 100
	lo := int(math.Floor(h))
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// String is the rate as a percentage with its interval.
func (r Rate) String() string {
	return strconv.FormatFloat(100*r.Value, 'f', 1, 64) + "% [" + strconv.FormatFloat(100*r.Interval.Lo, 'f', 1, 64) + ", " +
		strconv.FormatFloat(100*r.Interval.Hi, 'f', 1, 64) + "]"
}
