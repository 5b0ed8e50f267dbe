package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func sorted(xs ...float64) []float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s
}

// The intervals and estimates below are derived by hand from the normal
// approximation R's wilcox.test(x, y, conf.int = TRUE, exact = FALSE)
// uses (continuity correction on), which Kayenta ports.
//
// Without ties, W(μ) − m(m+1)/2 = U(μ) = #{i,j : x_i − y_j > μ} (½ for an
// equality), so z(μ) only changes at the pairwise differences
// d_(1) < … < d_(mn), and the roots of z(μ) = ±z_q are order statistics of
// the d's.
func TestMannWhitneyHandComputed(t *testing.T) {
	cases := []struct {
		name             string
		x, y             []float64
		conf             float64
		lower, upper, hl float64
	}{
		{
			// Kayenta's own MannWhitneySuite case. m = n = 4, so z can
			// never exceed z_.975 = 1.96 inside the range except at its
			// end: at μ = min(x) − max(y) = 6, x − 6 = {4,14,24,34}
			// ties y = 4, U = 15.5, dz = 7.5, σ = sqrt(16/12·(9 −
			// 6/56)) = 3.443, z = (7.5 − .5)/3.443 = 2.03 > 1.96; just
			// above 6, U = 15, σ = sqrt(12) = 3.464, z = 6.5/3.464 =
			// 1.88 < 1.96. The lower root is the step at 6, the upper
			// one at 39 by symmetry. z = 0 wherever dz ∈ [−½, ½], i.e.
			// U ∈ [7.5, 8.5]: μ from d_(8) = 19 to d_(9) = 26, whose
			// middle is 22.5.
			name: "kayenta suite", x: sorted(10, 20, 30, 40), y: sorted(1, 2, 3, 4), conf: 0.95,
			lower: 6, upper: 39, hl: 22.5,
		},
		{
			// m = n = 6, the 36 differences all distinct: -39 -36 -30
			// -28 -25 -20 -19 ... 10 11 ... 42 49 50 60 67 68. Off the
			// steps σ = sqrt(36·13/12) = 6.245; on one (a tie of two)
			// σ = sqrt(3·(13 − 6/132)) = 6.234. At 95%: just below
			// d_(6) U = 31, z = (13 − .5)/6.245 = 2.002 > 1.96; at
			// d_(6) U = 30.5, z = 12/6.234 = 1.925: lower = d_(6) =
			// −20, and upper = d_(31) = 42 by symmetry. HL = (d_(18) +
			// d_(19))/2 = (10 + 11)/2.
			name: "6 by 6 at 95%", x: sorted(20, 23, 29, 45, 61, 79), y: sorted(11, 12, 19, 40, 48, 59), conf: 0.95,
			lower: -20, upper: 42, hl: 10.5,
		},
		{
			// At 98% (z_q = 2.326): at d_(3) U = 33.5, z = 15/6.234 =
			// 2.406; just above it U = 33, z = 14.5/6.245 = 2.322 ≤
			// 2.326: lower = d_(3) = −30. At d_(34) U = 2.5, z =
			// −15/6.234 = −2.406 ≤ −2.326, just below it U = 3, z =
			// −2.322: upper = d_(34) = 60.
			name: "6 by 6 at 98%", x: sorted(20, 23, 29, 45, 61, 79), y: sorted(11, 12, 19, 40, 48, 59), conf: 0.98,
			lower: -30, upper: 60, hl: 10.5,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mannWhitney(c.x, c.y, c.conf)
			if r.lower != c.lower || r.upper != c.upper || r.estimate != c.hl {
				t.Errorf("interval [%g, %g], estimate %g; want [%g, %g], %g", r.lower, r.upper, r.estimate, c.lower, c.upper, c.hl)
			}
		})
	}
}

// The Hodges-Lehmann estimate of x + c against x is c: the pairwise
// differences are symmetric about c.
func TestHodgesLehmannOfAShift(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{5, 50, 500} {
		x := make([]float64, n)
		for i := range x {
			x[i] = math.Exp(rng.NormFloat64())
		}
		y := slices.Clone(x)
		const c = 3.75
		for i := range y {
			y[i] += c
		}
		slices.Sort(x)
		slices.Sort(y)
		r := mannWhitney(y, x, 0.98)
		if math.Abs(r.estimate-c) > 1e-9 {
			t.Errorf("n=%d: estimate %v, want %v", n, r.estimate, c)
		}
		if !(r.lower < c && c < r.upper) {
			t.Errorf("n=%d: interval [%v, %v] misses the shift", n, r.lower, r.upper)
		}
	}
}

// The 98% interval covers the true shift of normal samples about 98% of
// the time. 2000 pairs of 40: the bounds are the nominal rate ± 3.5
// standard errors of the simulation (0.011), plus the normal
// approximation's own slack at this size.
func TestMannWhitneyCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 98))
	const runs, n, shift = 2000, 40, 0.7
	covered := 0
	for range runs {
		x, y := make([]float64, n), make([]float64, n)
		for i := range n {
			x[i] = rng.NormFloat64() + shift
			y[i] = rng.NormFloat64()
		}
		slices.Sort(x)
		slices.Sort(y)
		r := mannWhitney(x, y, 0.98)
		if r.lower <= shift && shift <= r.upper {
			covered++
		}
	}
	rate := float64(covered) / runs
	t.Logf("coverage %.4f", rate)
	if rate < 0.965 || rate > 0.995 {
		t.Errorf("the 98%% interval covered the shift in %.3f of %d samples", rate, runs)
	}
}

func TestClassify(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	lognormal := func(n int, factor float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = 200 * math.Exp(0.5*rng.NormFloat64()) * factor
		}
		return out
	}
	base, slow := lognormal(2000, 1), lognormal(2000, 1.3)
	ones := func(n, k int) []float64 {
		out := make([]float64, n)
		for i := range k {
			out[i] = 1
		}
		return out
	}
	cases := []struct {
		name      string
		ctrl, exp []float64
		dir       direction
		want      label
	}{
		{"30% slower, increase is bad", base, slow, increase, labelHigh},
		{"30% slower, decrease is bad", base, slow, decrease, labelPass},
		{"30% faster, decrease is bad", slow, base, decrease, labelLow},
		{"the same values", base, slices.Clone(base), increase, labelPass},
		{"no data", nil, base, increase, labelNodata},
		// Pass/fail outcomes: 70% against 85% passing is far beyond
		// chance, but every pairwise difference is −1, 0 or 1, the
		// median one is 0, and both ends of the interval sit on the
		// step at 0. The band ±0.25·|HL| is then [0, 0], which an
		// interval [0, 0] does not clear: Kayenta's method passes
		// binary outcomes whatever they are.
		{"pass/fail outcomes, a 15-point drop", ones(1000, 850), ones(1000, 700), decrease, labelPass},
		// The same drop as rates per interval of 50 requests is found.
		{"pass rates per interval", rates(rng, 40, 0.85), rates(rng, 40, 0.70), decrease, labelLow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, r := classify(c.ctrl, c.exp, c.dir, rng)
			if got != c.want {
				t.Errorf("%s, want %s (interval [%g, %g], HL %g)", got, c.want, r.lower, r.upper, r.estimate)
			}
		})
	}
	if _, r := classify(ones(1000, 850), ones(1000, 700), decrease, rng); r.lower != 0 || r.upper != 0 || r.estimate != 0 {
		t.Errorf("pass/fail outcomes: interval [%g, %g], HL %g; want all 0", r.lower, r.upper, r.estimate)
	}
}

func rates(rng *rand.Rand, n int, p float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		k := 0
		for range 50 {
			if rng.Float64() < p {
				k++
			}
		}
		out[i] = float64(k) / 50
	}
	return out
}

func TestScore(t *testing.T) {
	cases := []struct {
		labels []label
		score  float64
		want   string
	}{
		{[]label{labelPass, labelPass, labelPass}, 100, "Pass"},
		{[]label{labelPass, labelHigh, labelPass}, 200.0 / 3, "Fail"},
		{[]label{labelLow, labelHigh, labelPass}, 100.0 / 3, "Fail"},
		{[]label{labelNodata, labelPass, labelPass}, 100, "Pass"},
		{[]label{labelNodata, labelNodata, labelPass}, 0, "Fail"},
	}
	for _, c := range cases {
		s := score(c.labels)
		if math.Abs(s-c.score) > 1e-9 || verdict(s) != c.want {
			t.Errorf("%v: score %g (%s), want %g (%s)", c.labels, s, verdict(s), c.score, c.want)
		}
	}
}

func TestNormalQuantile(t *testing.T) {
	for p, want := range map[float64]float64{0.975: 1.959963984540054, 0.99: 2.3263478740408408, 0.5: 0, 0.01: -2.3263478740408408} {
		if got := normalQuantile(p); math.Abs(got-want) > 1e-12 {
			t.Errorf("Φ⁻¹(%g) = %.16g, want %.16g", p, got, want)
		}
	}
}

// The error bursts add what they are meant to: over many requests the
// canary's error rate is the base rate plus the burst rate.
func TestBurstRate(t *testing.T) {
	m := model{latencyMedian: 200, latencySigma: 0.5, quality: 0.85, errorRate: 0.001, ratio: 1}
	s := scenarios(m, 5, 0.005)[3]
	c := generate(rand.New(rand.NewPCG(9, 9)), m, s, 2_000_000)
	k := 0
	for _, f := range c.failed {
		if f {
			k++
		}
	}
	got := float64(k) / float64(len(c.failed))
	if math.Abs(got-0.006) > 0.0003 {
		t.Errorf("error rate %.5f, want 0.006", got)
	}
}
