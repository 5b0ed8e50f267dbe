package main

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Kayenta's NetflixACAJudge, reimplemented from its description
// (canary-evals reference §1.3 and §3.7): per metric a two-sided Wilcoxon
// rank-sum confidence interval for the shift experiment − control, by the
// normal approximation with the tie and continuity corrections (a port of
// R's wilcox.test(conf.int=TRUE)), the Hodges-Lehmann estimate, a tolerance
// band of ±0.25·|HL|, the metric's direction and the mean-ratio effect
// size; then the weighted score of the labels against the pass and
// marginal thresholds.

// Kayenta's hard-coded classifier settings and the default scoring of a
// canary config (docs/analysis/kayenta.md: thresholds pass 90, marginal
// 75; effectSize allowedIncrease and allowedDecrease default to 1.0).
const (
	kayentaConfidence      = 0.98
	kayentaTolerance       = 0.25
	kayentaPass            = 90.0
	kayentaMarginal        = 75.0
	kayentaAllowedIncrease = 1.0
	kayentaAllowedDecrease = 1.0
)

// label is a metric's classification.
type label int

const (
	labelPass label = iota
	labelHigh
	labelLow
	labelNodata
)

func (l label) String() string {
	return [...]string{"Pass", "High", "Low", "Nodata"}[l]
}

// direction is the change a metric is classified on.
type direction int

const (
	increase direction = iota // High is bad (latency, errors)
	decrease                  // Low is bad (quality)
	either
)

// mwResult is the Mann-Whitney interval and estimate for the shift
// experiment − control.
type mwResult struct {
	lower, upper, estimate float64
}

// sample is a sorted sample with its distinct values and their counts,
// so that heavily tied data (pass/fail outcomes, rates of 50 requests)
// ranks in time proportional to its distinct values.
type sample struct {
	v, c []float64
	n    float64
}

func newSample(sorted []float64) sample {
	var s sample
	for i, x := range sorted {
		if i > 0 && x == sorted[i-1] {
			s.c[len(s.c)-1]++
		} else {
			s.v = append(s.v, x)
			s.c = append(s.c, 1)
		}
	}
	s.n = float64(len(sorted))
	return s
}

// wilcoxon holds an experiment sample x and a control sample y and
// evaluates the normal-approximation statistic of the rank-sum test of
// "x − μ and y have the same location":
//
//	z(μ) = (W(μ) − m(m+1)/2 − mn/2 − ½·sign(·)) / σ(μ),
//	σ(μ) = sqrt(mn/12 · ((m+n+1) − Σ(t³−t) / ((m+n)(m+n−1))))
//
// where W(μ) is the rank sum of x − μ among all m+n values (average
// ranks for ties) and t runs over the sizes of the groups of tied values.
// z is a non-increasing step function of μ whose steps sit at the
// pairwise differences x_i − y_j.
type wilcoxon struct {
	x, y         sample
	m, n         float64
	muMin, muMax float64
}

func newWilcoxon(x, y sample) *wilcoxon {
	return &wilcoxon{x: x, y: y, m: x.n, n: y.n,
		muMin: x.v[0] - y.v[len(y.v)-1], muMax: x.v[len(x.v)-1] - y.v[0]}
}

// z evaluates z(μ) by one merge of the two sorted samples: O(distinct
// values).
func (w *wilcoxon) z(mu float64) float64 {
	xv, xc, yv, yc := w.x.v, w.x.c, w.y.v, w.y.c
	i, j := 0, 0
	var rank, wx, ties float64
	for i < len(xv) || j < len(yv) {
		var a, b float64
		switch {
		case j == len(yv):
			a = xc[i]
			i++
		case i == len(xv):
			b = yc[j]
			j++
		default:
			xi := xv[i] - mu
			switch {
			case xi < yv[j]:
				a = xc[i]
				i++
			case xi > yv[j]:
				b = yc[j]
				j++
			default:
				a, b = xc[i], yc[j]
				i++
				j++
			}
		}
		t := a + b
		wx += a * (rank + (t+1)/2)
		ties += t*t*t - t
		rank += t
	}
	m, n := w.m, w.n
	dz := wx - m*(m+1)/2 - m*n/2
	corr := 0.0
	switch {
	case dz > 0:
		corr = 0.5
	case dz < 0:
		corr = -0.5
	}
	sigma := math.Sqrt(m * n / 12 * ((m + n + 1) - ties/((m+n)*(m+n-1))))
	if sigma == 0 {
		return 0
	}
	return (dz - corr) / sigma
}

// bisectTol is the bracket, relative to the search range, at which a
// bisection stops and snaps to the step inside it. Steps of tied data
// (rates of 50 requests, pass/fail outcomes) are at least 1/50 of the
// range apart, so the bracket holds exactly one; for continuous data any
// step in it is within 1e-8 of the range of the exact root.
const bisectTol = 1e-8

// inf is inf{μ in [muMin, muMax] : z(μ) ≤ t}: the root of z(μ) = t as R's
// uniroot finds it, made exact. Where z jumps across t at a step, the root
// is the step's location itself (a pairwise difference), not a point a
// solver's tolerance away on one side or the other.
func (w *wilcoxon) inf(t float64) float64 {
	lo, hi := w.muMin, w.muMax
	if w.z(lo) <= t {
		return lo
	}
	if w.z(hi) > t {
		return hi
	}
	lo, hi = w.bisect(lo, hi, func(mu float64) bool { return w.z(mu) <= t })
	return w.snap(lo, hi)
}

// sup is sup{μ in [muMin, muMax] : z(μ) ≥ t}. It differs from inf(t) only
// where z equals t over a whole interval between two steps (at t = 0 for
// the Hodges-Lehmann estimate, when the two middle pairwise differences
// differ).
func (w *wilcoxon) sup(t float64) float64 {
	lo, hi := w.muMin, w.muMax
	if w.z(hi) >= t {
		return hi
	}
	if w.z(lo) < t {
		return lo
	}
	lo, hi = w.bisect(lo, hi, func(mu float64) bool { return w.z(mu) < t })
	return w.snap(lo, hi)
}

// bisect narrows [lo, hi], where above(hi) holds and above(lo) does not,
// to bisectTol of its width.
func (w *wilcoxon) bisect(lo, hi float64, above func(float64) bool) (float64, float64) {
	tol := bisectTol * (hi - lo)
	for hi-lo > tol {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if above(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo, hi
}

// snap returns the pairwise difference x_i − y_j in [lo, hi] nearest its
// middle (the step the bisection closed in on), or the middle if float
// rounding left none inside. Two pointers over the sorted samples:
// O(distinct values).
func (w *wilcoxon) snap(lo, hi float64) float64 {
	mid := lo + (hi-lo)/2
	best, found := mid, false
	yv := w.y.v
	j := 0
	for _, x := range w.x.v {
		// The smallest y ≥ x − hi; x − y ≤ hi. It only moves right as x
		// grows.
		for j < len(yv) && yv[j] < x-hi {
			j++
		}
		for k := j; k < len(yv) && yv[k] <= x-lo; k++ {
			d := x - yv[k]
			if !found || math.Abs(d-mid) < math.Abs(best-mid) {
				best, found = d, true
			}
		}
	}
	return best
}

// mannWhitney computes the two-sided confidence interval at level conf
// and the Hodges-Lehmann estimate of the shift of x (experiment) against
// y (control), both sorted and not empty, by the normal approximation.
func mannWhitney(x, y []float64, conf float64) mwResult {
	w := newWilcoxon(newSample(x), newSample(y))
	zq := normalQuantile(1 - (1-conf)/2)
	return mwResult{
		lower:    w.inf(zq),
		upper:    w.inf(-zq),
		estimate: (w.inf(0) + w.sup(0)) / 2,
	}
}

// classify labels one metric as Kayenta's Mann-Whitney classifier does.
// ctrl and exp are not modified. rng draws the tie-breaking noise Kayenta
// adds when both samples are constant.
func classify(ctrl, exp []float64, dir direction, rng *rand.Rand) (label, mwResult) {
	if len(ctrl) == 0 || len(exp) == 0 {
		return labelNodata, mwResult{}
	}
	x, y := slices.Clone(exp), slices.Clone(ctrl)
	slices.Sort(x)
	slices.Sort(y)
	if slices.Equal(x, y) {
		return labelPass, mwResult{}
	}
	xConst, yConst := x[0] == x[len(x)-1], y[0] == y[len(y)-1]
	if xConst && yConst && x[0] == y[0] {
		// A single unique value over both.
		return labelPass, mwResult{}
	}
	if xConst && yConst {
		// Both constant: Gaussian noise of σ = 1e-5 × the value,
		// so that ranks are not all tied.
		for i := range x {
			x[i] += 1e-5 * x[i] * rng.NormFloat64()
		}
		for i := range y {
			y[i] += 1e-5 * y[i] * rng.NormFloat64()
		}
		slices.Sort(x)
		slices.Sort(y)
	}
	r := mannWhitney(x, y, kayentaConfidence)
	bound := kayentaTolerance * math.Abs(r.estimate)
	// The mean-ratio effect size, NaN when either mean is 0, and a NaN
	// effect size is ignored.
	effect := math.NaN()
	if mx, my := mean(x), mean(y); mx != 0 && my != 0 {
		effect = mx / my
	}
	if (dir == increase || dir == either) && r.lower > bound &&
		(math.IsNaN(effect) || effect >= kayentaAllowedIncrease) {
		return labelHigh, r
	}
	if (dir == decrease || dir == either) && r.upper < -bound &&
		(math.IsNaN(effect) || effect <= kayentaAllowedDecrease) {
		return labelLow, r
	}
	return labelPass, r
}

// score is Kayenta's summary score of metric labels, one metric per group
// of equal weight: a group's score is 100·Pass/(Pass+High+Low) (Nodata
// excluded, an empty group counting 100), and the summary is 0 when half
// or more of the metrics have no data.
func score(labels []label) float64 {
	nodata := 0
	total := 0.0
	for _, l := range labels {
		switch l {
		case labelPass, labelNodata:
			total += 100
			if l == labelNodata {
				nodata++
			}
		}
	}
	if 2*nodata >= len(labels) {
		return 0
	}
	return total / float64(len(labels))
}

// verdict is Kayenta's classification of a summary score: Pass at or above
// the pass threshold, Marginal at or above the marginal one, else Fail.
// Promotion needs Pass.
func verdict(s float64) string {
	switch {
	case s >= kayentaPass:
		return "Pass"
	case s >= kayentaMarginal:
		return "Marginal"
	}
	return "Fail"
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// normalQuantile is Φ⁻¹(p), by Newton's method on math.Erfc from a
// rational start (Abramowitz & Stegun 26.2.23); accurate to 1e-15.
func normalQuantile(p float64) float64 {
	if p <= 0 || p >= 1 {
		return math.NaN()
	}
	q := math.Min(p, 1-p)
	t := math.Sqrt(-2 * math.Log(q))
	x := t - (2.515517+0.802853*t+0.010328*t*t)/(1+1.432788*t+0.189269*t*t+0.001308*t*t*t)
	if p < 0.5 {
		x = -x
	}
	for range 4 {
		cdf := 0.5 * math.Erfc(-x/math.Sqrt2)
		pdf := math.Exp(-x*x/2) / math.Sqrt(2*math.Pi)
		x -= (cdf - p) / pdf
	}
	return x
}
