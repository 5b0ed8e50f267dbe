package evals

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// The statistics a release decision stands on, with the formulas of
// ../shared/reference/canary-evals.md §3. Pure functions: no I/O, no
// global state; randomness only from an explicit seed.

// NormalQuantile is Φ⁻¹(p), the standard normal quantile.
func NormalQuantile(p float64) float64 {
	return math.Sqrt2 * math.Erfinv(2*p-1)
}

// Interval is a confidence interval.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// Wilson is the Wilson score interval for x successes out of n at
// confidence conf (0.95 for 95%, two-sided). With n = 0 it is [0, 1]:
// nothing is known.
func Wilson(x, n int, conf float64) Interval {
	if n <= 0 {
		return Interval{0, 1}
	}
	z := NormalQuantile(1 - (1-conf)/2)
	p := float64(x) / float64(n)
	nn := float64(n)
	den := 1 + z*z/nn
	center := (p + z*z/(2*nn)) / den
	half := z / den * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn))
	return Interval{max(0, center-half), min(1, center+half)}
}

// ZeroEventsUpper is the exact one-sided upper bound on a rate when none
// of n trials had the event (Clopper-Pearson with x = 0): 1 − α^(1/n),
// about 3/n at 95% ("the rule of three"). It is 1 for n = 0.
func ZeroEventsUpper(n int, conf float64) float64 {
	if n <= 0 {
		return 1
	}
	return 1 - math.Pow(1-conf, 1/float64(n))
}

// PassAtK is the unbiased pass@k of one problem with n samples of which c
// passed (Chen et al. 2021, arXiv 2107.03374), in the product form that
// does not overflow: 1 − ∏_{i=n−c+1}^{n} (1 − k/i).
func PassAtK(n, c, k int) (float64, error) {
	if n <= 0 || k <= 0 || c < 0 || c > n || k > n {
		return 0, fmt.Errorf("pass@k: need 0 < k ≤ n and 0 ≤ c ≤ n, got n=%d c=%d k=%d", n, c, k)
	}
	if n-c < k {
		return 1, nil
	}
	prod := 1.0
	for i := n - c + 1; i <= n; i++ {
		prod *= 1 - float64(k)/float64(i)
	}
	return 1 - prod, nil
}

// McNemarExact is the two-sided exact McNemar p-value for a paired
// comparison with b items the baseline passed and the candidate failed
// and c items the other way round: under H0 the discordant items split
// Binomial(b+c, ½), p = min(1, 2·P(X ≤ min(b, c))). With no discordant
// items it is 1.
func McNemarExact(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	k := min(b, c)
	// Σ_{i≤k} C(n,i)/2^n in log space.
	lg := func(x float64) float64 { v, _ := math.Lgamma(x); return v }
	lfn := lg(float64(n) + 1)
	sum := 0.0
	for i := 0; i <= k; i++ {
		sum += math.Exp(lfn - lg(float64(i)+1) - lg(float64(n-i)+1) - float64(n)*math.Ln2)
	}
	return min(1, 2*sum)
}

// Paired is a paired comparison of binary outcomes of a candidate against
// a baseline on the same n items: Worse counts items the baseline passed
// and the candidate failed (McNemar's b), Better the other way (c).
type Paired struct {
	N      int `json:"n"`
	Worse  int `json:"worse"`
	Better int `json:"better"`
}

// Diff is the candidate's pass rate minus the baseline's, (c − b)/n, and
// its standard error sqrt(((b+c)/n − Δ²)/n).
func (p Paired) Diff() (delta, se float64) {
	if p.N <= 0 {
		return 0, math.Inf(1)
	}
	n := float64(p.N)
	delta = float64(p.Better-p.Worse) / n
	v := (float64(p.Worse+p.Better)/n - delta*delta) / n
	return delta, math.Sqrt(max(0, v))
}

// NonInferior reports whether the candidate is at most margin worse than
// the baseline at one-sided level alpha: Δ − z_{1−α}·SE > −margin.
func (p Paired) NonInferior(margin, alpha float64) bool {
	d, se := p.Diff()
	return d-NormalQuantile(1-alpha)*se > -margin
}

// PairedSampleSize is the number of paired items needed to detect a
// difference delta in pass rate with a two-sided test at level alpha and
// the given power, when a share psi of items is discordant (Connor 1987):
// n = (z_{1−α/2}·√ψ + z_{1−β}·√(ψ − δ²))² / δ², rounded up.
func PairedSampleSize(psi, delta, alpha, power float64) (int, error) {
	if !(delta > 0) || !(psi > 0) || psi > 1 || psi < delta*delta || !(alpha > 0 && alpha < 1) || !(power > 0 && power < 1) {
		return 0, fmt.Errorf("paired sample size: need 0 < δ, δ² ≤ ψ ≤ 1, 0 < α, power < 1; got ψ=%v δ=%v α=%v power=%v", psi, delta, alpha, power)
	}
	za, zb := NormalQuantile(1-alpha/2), NormalQuantile(power)
	s := za*math.Sqrt(psi) + zb*math.Sqrt(psi-delta*delta)
	return int(math.Ceil(s * s / (delta * delta))), nil
}

// ErrNoItems is returned for statistics of an empty sample.
var ErrNoItems = errors.New("no items")

// Bootstrap is a paired bootstrap result: the percentile interval of
// f(candidate) − f(baseline) over resamples of the items, and the share of
// resamples in which the difference was at most zero.
type Bootstrap struct {
	Delta    float64  `json:"delta"` // f(candidate) − f(baseline) on the items as they are
	CI       Interval `json:"ci"`
	PAtMost0 float64  `json:"p_at_most_0"`
}

// PairedBootstrap resamples item indices with replacement, the same indices
// for both arms (canary-evals.md §3.3), B times with the given seed, and
// returns the percentile interval at confidence conf.
func PairedBootstrap(baseline, candidate []float64, f func([]float64) float64, b int, seed uint64, conf float64) (Bootstrap, error) {
	n := len(baseline)
	if err := checkPaired(n, len(candidate), b); err != nil {
		return Bootstrap{}, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x626f6f74))
	ra, rb := make([]float64, n), make([]float64, n)
	deltas := make([]float64, b)
	le0 := 0
	for r := range b {
		for i := range n {
			j := rng.IntN(n)
			ra[i], rb[i] = baseline[j], candidate[j]
		}
		deltas[r] = f(rb) - f(ra)
		if deltas[r] <= 0 {
			le0++
		}
	}
	slices.Sort(deltas)
	a := (1 - conf) / 2
	return Bootstrap{Delta: f(candidate) - f(baseline), CI: Interval{percentile(deltas, 100*a), percentile(deltas, 100*(1-a))}, PAtMost0: float64(le0) / float64(b)}, nil
}

// checkPaired rejects what no paired bootstrap can resample.
func checkPaired(n, m, b int) error {
	switch {
	case n == 0:
		return ErrNoItems
	case m != n:
		return fmt.Errorf("paired bootstrap: %d baseline items but %d candidate items", n, m)
	case b < 1:
		return fmt.Errorf("paired bootstrap: %d resamples", b)
	}
	return nil
}

// PairedBootstrapMean is PairedBootstrap with f = Mean, drawing the same
// resamples from the same seed, computed on the per-item differences: one
// read per draw instead of two arrays and two means, which matters at
// 100,000 items.
func PairedBootstrapMean(baseline, candidate []float64, b int, seed uint64, conf float64) (Bootstrap, error) {
	n := len(baseline)
	if err := checkPaired(n, len(candidate), b); err != nil {
		return Bootstrap{}, err
	}
	d := make([]float64, n)
	for i := range n {
		d[i] = candidate[i] - baseline[i]
	}
	rng := rand.New(rand.NewPCG(seed, 0x626f6f74))
	deltas := make([]float64, b)
	le0 := 0
	for r := range b {
		s := 0.0
		for range n {
			s += d[rng.IntN(n)]
		}
		deltas[r] = s / float64(n)
		if deltas[r] <= 0 {
			le0++
		}
	}
	slices.Sort(deltas)
	a := (1 - conf) / 2
	return Bootstrap{Delta: Mean(candidate) - Mean(baseline), CI: Interval{percentile(deltas, 100*a), percentile(deltas, 100*(1-a))}, PAtMost0: float64(le0) / float64(b)}, nil
}

// Mean is the arithmetic mean, the usual f for PairedBootstrap.
func Mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
