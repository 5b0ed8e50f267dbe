package canary

import (
	"errors"
	"fmt"
	"math"
)

// Status is a metric's or a look's judgement, in the shape of Argo Rollouts'
// measurement phases.
type Status string

// Statuses.
const (
	// Pass: the canary is shown within tolerance of the baseline.
	Pass Status = "pass"
	// Fail: the canary is shown worse than the baseline beyond tolerance,
	// or above its absolute limit.
	Fail Status = "fail"
	// Inconclusive: enough samples, but neither shown.
	Inconclusive Status = "inconclusive"
	// NoData: too few samples (or none) to judge; the step is extended.
	NoData Status = "nodata"
)

// Input is one metric's observations at a look. An error from the provider
// (ErrNoData or another) makes the metric NoData, with the error as the
// reason.
type Input struct {
	Metric      Metric
	Baseline    Observation
	Canary      Observation
	BaselineErr error
	CanaryErr   error
}

// Result is one metric's judgement with the numbers behind it.
type Result struct {
	Metric    string       `json:"metric"`
	Kind      Kind         `json:"kind"`
	Test      Test         `json:"test"`
	Direction Direction    `json:"direction"`
	Status    Status       `json:"status"`
	Reason    string       `json:"reason"`
	Baseline  *Observation `json:"baseline,omitempty"`
	Canary    *Observation `json:"canary,omitempty"`
	// Difference is the canary's value (mean or rate) minus the
	// baseline's.
	Difference float64 `json:"difference"`
	// Margin is the tolerance in the metric's unit: the canary fails only
	// when shown worse than the baseline by more than this.
	Margin float64 `json:"margin"`
	// Lower and Upper bound Difference by the test's anytime-valid
	// confidence sequence (means and proportions).
	Lower *float64 `json:"lower,omitempty"`
	Upper *float64 `json:"upper,omitempty"`
	// LRWorse is the test statistic against "within tolerance" (Fail when
	// it reaches 1/Alpha); LRWithin against "worse than tolerance" (Pass
	// when it reaches 1/Alpha).
	LRWorse  float64 `json:"lr_worse"`
	LRWithin float64 `json:"lr_within"`
	// Limit is the absolute limit's judgement, when the metric has one.
	Limit *LimitResult `json:"limit,omitempty"`
	// Alpha is the level of each of this metric's tests: the plan's alpha
	// shared out over every test (Bonferroni).
	Alpha float64 `json:"alpha"`
}

// LimitResult is the judgement of an absolute limit on the canary's value.
type LimitResult struct {
	Limit    float64 `json:"limit"`
	Value    float64 `json:"value"`
	LRAbove  float64 `json:"lr_above"`
	Breached bool    `json:"breached"`
}

// Assessment is one look's judgement: Fail if any metric fails, else NoData
// if any lacks data, else Pass if all pass, else Inconclusive.
type Assessment struct {
	Status  Status   `json:"status"`
	Results []Result `json:"metrics"`
	Alpha   float64  `json:"alpha"`
	Tests   int      `json:"tests"`
}

// Failed lists the reasons of the metrics that failed.
func (a Assessment) Failed() []string { return a.reasons(Fail) }

// Missing lists the reasons of the metrics without data.
func (a Assessment) Missing() []string { return a.reasons(NoData) }

func (a Assessment) reasons(s Status) []string {
	var out []string
	for _, r := range a.Results {
		if r.Status == s || (s == Fail && r.Limit != nil && r.Limit.Breached) {
			out = append(out, r.Reason)
		}
	}
	return out
}

// Tests counts the statistical tests a plan's metrics make at a look: one
// per metric and one per absolute limit. The family-wise alpha is shared
// out over them.
func Tests(metrics []Metric) int {
	n := 0
	for _, m := range metrics {
		n++
		if m.Limit != nil {
			n++
		}
	}
	return n
}

// Judge judges one look. alpha is the family-wise false-alarm rate: each of
// the Tests(metrics) tests runs at alpha/Tests, so that a canary as good as
// its baseline is failed with probability at most alpha over all metrics
// and looks (the tests are anytime-valid).
func Judge(in []Input, alpha float64) Assessment {
	ms := make([]Metric, len(in))
	for i, x := range in {
		ms[i] = x.Metric
	}
	k := Tests(ms)
	a := Assessment{Alpha: alpha, Tests: k}
	if k == 0 {
		a.Status = NoData
		return a
	}
	each := alpha / float64(k)
	counts := map[Status]int{}
	for _, x := range in {
		r := judgeMetric(x, each)
		a.Results = append(a.Results, r)
		counts[r.Status]++
	}
	switch {
	case counts[Fail] > 0:
		a.Status = Fail
	case counts[NoData] > 0:
		a.Status = NoData
	case counts[Pass] == len(in):
		a.Status = Pass
	default:
		a.Status = Inconclusive
	}
	return a
}

func judgeMetric(x Input, alpha float64) Result {
	m := x.Metric
	r := Result{Metric: m.Name, Kind: m.Kind, Test: m.Test, Direction: m.Direction, Alpha: alpha}
	if x.BaselineErr != nil || x.CanaryErr != nil {
		r.Status = NoData
		var why []string
		for _, e := range []struct {
			side string
			err  error
		}{{"baseline", x.BaselineErr}, {"canary", x.CanaryErr}} {
			switch {
			case e.err == nil:
			case errors.Is(e.err, ErrNoData):
				why = append(why, "the "+e.side+" has no data")
			default:
				why = append(why, "the "+e.side+"'s query failed: "+e.err.Error())
			}
		}
		r.Reason = fmt.Sprintf("%s: %s", m.Name, joinAnd(why))
		return r
	}
	b, c := x.Baseline, x.Canary
	if m.Test != TestMean {
		b, c = asRate(b), asRate(c)
	}
	for _, o := range []Observation{b, c} {
		for _, f := range []float64{o.N, o.Mean, o.Var, o.Events} {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				r.Status = NoData
				r.Reason = fmt.Sprintf("%s: the provider gave a value that is not a finite number", m.Name)
				return r
			}
		}
	}
	r.Baseline, r.Canary = &b, &c
	r.Difference = c.Mean - b.Mean
	min := float64(m.MinSamples)
	if b.N < min || c.N < min {
		r.Status = NoData
		unit := "samples"
		if m.Test != TestMean {
			unit = "requests"
		}
		r.Reason = fmt.Sprintf("%s: too few %s to judge: canary %s, baseline %s, of %d each", m.Name, unit, num(c.N), num(b.N), m.MinSamples)
		return r
	}
	if m.Test == TestCount {
		judgeCount(&r, m, b, c, alpha)
	} else {
		judgeMean(&r, m, b, c, alpha)
	}
	if m.Limit != nil {
		judgeLimit(&r, m, c, alpha)
		r.Limit.LRAbove = finite(r.Limit.LRAbove)
	}
	r.LRWorse, r.LRWithin = finite(r.LRWorse), finite(r.LRWithin)
	return r
}

// finite keeps statistics encodable as JSON: an infinite likelihood ratio
// (constant data) is written as the largest float.
func finite(f float64) float64 {
	switch {
	case math.IsInf(f, 1):
		return math.MaxFloat64
	case math.IsNaN(f):
		return 0
	}
	return f
}

// asRate fills a count observation's Mean and Var from Events and N.
func asRate(o Observation) Observation {
	if o.N > 0 {
		o.Mean = o.Events / o.N
		o.Var = o.Mean * (1 - o.Mean)
	}
	return o
}

// sign turns canary−baseline into "how much worse the canary is".
func sign(d Direction) float64 {
	if d == Higher {
		return -1
	}
	return 1
}

func margin(m Metric, baseline float64) float64 {
	if m.Tolerance == nil {
		return 0
	}
	if m.Tolerance.Relative {
		return m.Tolerance.Value * math.Abs(baseline)
	}
	return m.Tolerance.Value
}

// judgeMean runs the mSPRT on the difference of means (or proportions).
func judgeMean(r *Result, m Metric, b, c Observation, alpha float64) {
	s := sign(m.Direction)
	worse := s * (c.Mean - b.Mean)
	r.Margin = margin(m, b.Mean)
	vb, vc := b.Var, c.Var
	if m.Test == TestProportion {
		// A rate of 0 or 1 has no Bernoulli variance; a half-event
		// correction keeps the test from being certain of nothing.
		vb, vc = pvar(b), pvar(c)
	}
	v := vc/c.N + vb/b.N
	tau := r.Margin
	if tau == 0 {
		tau = 0.1 * math.Abs(b.Mean)
	}
	if tau == 0 {
		tau = math.Sqrt(math.Max(vb, vc))
	}
	if !(v > 0) || !(tau > 0) {
		// Both sides constant: the difference is known exactly.
		if worse > r.Margin {
			r.Status, r.LRWorse = Fail, math.Inf(1)
		} else {
			r.Status, r.LRWithin = Pass, math.Inf(1)
		}
	} else {
		r.LRWorse = msprtOneSided(worse, r.Margin, v, tau, true)
		r.LRWithin = msprtOneSided(worse, r.Margin, v, tau, false)
		w := confidenceSequence(v, tau, alpha)
		lo, hi := r.Difference-w, r.Difference+w
		r.Lower, r.Upper = &lo, &hi
		switch {
		case r.LRWorse >= 1/alpha:
			r.Status = Fail
		case r.LRWithin >= 1/alpha:
			r.Status = Pass
		default:
			r.Status = Inconclusive
		}
	}
	what := "mean"
	if m.Test == TestProportion {
		what = "rate"
	}
	rel := ""
	if b.Mean != 0 {
		rel = fmt.Sprintf(" (%+.1f%%)", 100*(c.Mean-b.Mean)/math.Abs(b.Mean))
	}
	switch r.Status {
	case Fail:
		r.Reason = fmt.Sprintf("%s: canary %s %s vs baseline %s%s: worse beyond the tolerance of %s (LR %s ≥ %s; n %s vs %s)",
			m.Name, what, num(c.Mean), num(b.Mean), rel, m.Tolerance, num(r.LRWorse), num(1/alpha), num(c.N), num(b.N))
	case Pass:
		r.Reason = fmt.Sprintf("%s: canary %s %s vs baseline %s%s: within the tolerance of %s (n %s vs %s)",
			m.Name, what, num(c.Mean), num(b.Mean), rel, m.Tolerance, num(c.N), num(b.N))
	default:
		r.Reason = fmt.Sprintf("%s: canary %s %s vs baseline %s%s: not yet shown worse or within %s (n %s vs %s)",
			m.Name, what, num(c.Mean), num(b.Mean), rel, m.Tolerance, num(c.N), num(b.N))
	}
}

func pvar(o Observation) float64 {
	p := (o.Events + 0.5) / (o.N + 1)
	return p * (1 - p)
}

// judgeCount runs the Beta-binomial mixture test on event counts: given the
// events seen, each is the canary's with probability θ0 = its share of
// requests (scaled by the tolerance) if the canary is no worse.
func judgeCount(r *Result, m Metric, b, c Observation, alpha float64) {
	ratio := 1.0
	if m.Tolerance != nil {
		ratio += m.Tolerance.Value
	}
	r.Margin = (ratio - 1) * b.Mean
	theta0 := ratio * c.N / (ratio*c.N + b.N)
	pa, pb := countPrior(theta0)
	r.LRWorse = betaBinomialBF(c.Events, b.Events, theta0, pa, pb, true)
	r.LRWithin = betaBinomialBF(c.Events, b.Events, theta0, pa, pb, false)
	switch {
	case r.LRWorse >= 1/alpha:
		r.Status = Fail
	case r.LRWithin >= 1/alpha:
		r.Status = Pass
	default:
		r.Status = Inconclusive
	}
	head := fmt.Sprintf("%s: canary %s of %s requests (%s) vs baseline %s of %s (%s)",
		m.Name, num(c.Events), num(c.N), pct(c.Mean), num(b.Events), num(b.N), pct(b.Mean))
	switch r.Status {
	case Fail:
		r.Reason = fmt.Sprintf("%s: more than the baseline's rate allows (tolerance %s; LR %s ≥ %s)", head, m.Tolerance, num(r.LRWorse), num(1/alpha))
	case Pass:
		r.Reason = fmt.Sprintf("%s: within the tolerance of %s", head, m.Tolerance)
	default:
		r.Reason = fmt.Sprintf("%s: not shown worse", head)
	}
}

// countPrior is the Beta mixture of the count test: centred on the canary
// share that a doubled event rate would give, with the weight of two
// pseudo-events, so that a rate a few times the baseline's is found within a
// few dozen events.
func countPrior(theta0 float64) (a, b float64) {
	odds := 2 * theta0 / (1 - theta0)
	t1 := odds / (1 + odds)
	return 2 * t1, 2 * (1 - t1)
}

// judgeLimit tests the canary's value against an absolute limit: a mean
// against it by a one-sample mSPRT, a rate by a Beta-binomial mixture.
func judgeLimit(r *Result, m Metric, c Observation, alpha float64) {
	l := *m.Limit
	lr := &LimitResult{Limit: l, Value: c.Mean}
	s := sign(m.Direction)
	if m.Test == TestMean {
		v := c.Var / c.N
		tau := 0.1 * math.Abs(l)
		if tau == 0 {
			tau = math.Sqrt(c.Var)
		}
		if v > 0 && tau > 0 {
			lr.LRAbove = msprtOneSided(s*c.Mean, s*l, v, tau, true)
		} else if s*c.Mean > s*l {
			lr.LRAbove = math.Inf(1)
		}
	} else {
		events := c.Events
		limit := l
		if m.Direction == Higher {
			// A rate that must stay above the limit: test the
			// complementary rate against 1−limit.
			events, limit = c.N-c.Events, 1-l
		}
		if limit > 0 && limit < 1 {
			lr.LRAbove = betaBinomialBF(events, c.N-events, limit, 1, 1, true)
		}
	}
	lr.Breached = lr.LRAbove >= 1/alpha
	r.Limit = lr
	if lr.Breached {
		word := "above"
		if m.Direction == Higher {
			word = "below"
		}
		msg := fmt.Sprintf("%s: canary %s %s is %s the limit %s (LR %s ≥ %s)", m.Name, map[bool]string{true: "mean", false: "rate"}[m.Test == TestMean], num(c.Mean), word, num(l), num(lr.LRAbove), num(1/alpha))
		if r.Status == Fail {
			r.Reason += "; " + msg
		} else {
			r.Status, r.Reason = Fail, msg
		}
	}
}

func num(f float64) string {
	switch {
	case math.IsInf(f, 1) || f == math.MaxFloat64:
		return "∞"
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return fmt.Sprintf("%.0f", f)
	case math.Abs(f) >= 1e6:
		return fmt.Sprintf("%.3g", f)
	}
	return fmt.Sprintf("%.4g", f)
}

func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}
