package evals

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.6f, want %.6f (±%g)", name, got, want, tol)
	}
}

// Published Wilson intervals: Newcombe, "Two-sided confidence intervals
// for the single proportion", Statistics in Medicine 17 (1998), table I
// (81/263, 15/148, 0/20, 1/29), and the 0/10 and 10/10 bounds tabulated
// widely.
func TestWilsonPublished(t *testing.T) {
	for _, tc := range []struct {
		x, n   int
		lo, hi float64
	}{
		{81, 263, 0.2553, 0.3662},
		{15, 148, 0.0624, 0.1605},
		{0, 20, 0, 0.1611},
		{1, 29, 0.0061, 0.1718},
		{0, 10, 0, 0.2775},
		{10, 10, 0.7225, 1},
	} {
		ci := Wilson(tc.x, tc.n, 0.95)
		near(t, "lower", ci.Lo, tc.lo, 6e-5)
		near(t, "upper", ci.Hi, tc.hi, 6e-5)
	}
	// n = 1, and nothing known.
	if ci := Wilson(1, 1, 0.95); ci.Lo <= 0 || ci.Hi != 1 {
		t.Errorf("1/1: %+v", ci)
	}
	if ci := Wilson(0, 0, 0.95); ci != (Interval{0, 1}) {
		t.Errorf("0/0: %+v", ci)
	}
	// The reference's worked width: p̂ = 0.90, n = 100 gives ±6.0pp.
	ci := Wilson(90, 100, 0.95)
	near(t, "half width at 90/100", (ci.Hi-ci.Lo)/2, 0.060, 0.0015)
}

func TestZeroEventsUpper(t *testing.T) {
	// 300 clean samples bound the rate below 1% at 95%; the rule of three.
	if u := ZeroEventsUpper(300, 0.95); u >= 0.01 || math.Abs(u-3.0/300)/(3.0/300) > 0.01 {
		t.Errorf("n=300: %v, want just under 3/300", u)
	}
	near(t, "n=1", ZeroEventsUpper(1, 0.95), 0.95, 1e-12)
	near(t, "n=0", ZeroEventsUpper(0, 0.95), 1, 0)
}

// binom is C(n, k) exactly.
func binom(n, k int) *big.Int { return new(big.Int).Binomial(int64(n), int64(k)) }

// TestPassAtKAgainstExact compares the product form with the exact
// rational 1 − C(n−c, k)/C(n, k), computed a second way.
func TestPassAtKAgainstExact(t *testing.T) {
	got, err := PassAtK(10, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "n=10 c=3 k=2", got, 0.5333333, 1e-6) // the reference's example
	for n := 1; n <= 30; n++ {
		for c := 0; c <= n; c++ {
			for k := 1; k <= n; k++ {
				got, err := PassAtK(n, c, k)
				if err != nil {
					t.Fatal(err)
				}
				want := 1.0
				if n-c >= k {
					r := new(big.Rat).SetFrac(binom(n-c, k), binom(n, k))
					f, _ := r.Float64()
					want = 1 - f
				}
				if math.Abs(got-want) > 1e-12 {
					t.Fatalf("pass@%d n=%d c=%d: %v, exact %v", k, n, c, got, want)
				}
			}
		}
	}
	for _, bad := range [][3]int{{0, 0, 1}, {5, 6, 1}, {5, 2, 0}, {5, 2, 6}, {5, -1, 1}} {
		if _, err := PassAtK(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("PassAtK%v accepted", bad)
		}
	}
}

// TestMcNemarAgainstExact compares with 2·Σ_{i≤min} C(n,i)/2^n summed as
// exact rationals, including the edge cases: no discordant items, all
// one way, ties.
func TestMcNemarAgainstExact(t *testing.T) {
	near(t, "b=10 c=2", McNemarExact(10, 2), 158.0/4096, 1e-12)
	near(t, "b=0 c=0", McNemarExact(0, 0), 1, 0)
	near(t, "tie", McNemarExact(7, 7), 1, 0)
	for b := 0; b <= 60; b++ {
		for c := 0; c <= 60; c++ {
			n := b + c
			sum := new(big.Rat)
			for i := 0; i <= min(b, c); i++ {
				sum.Add(sum, new(big.Rat).SetFrac(binom(n, i), new(big.Int).Lsh(big.NewInt(1), uint(n))))
			}
			want, _ := new(big.Rat).Mul(sum, big.NewRat(2, 1)).Float64()
			want = min(1, want)
			if got := McNemarExact(b, c); math.Abs(got-want) > 1e-9*math.Max(1, want) {
				t.Fatalf("b=%d c=%d: %v, exact %v", b, c, got, want)
			}
		}
	}
	if p := McNemarExact(0, 12); p > 0.001 || p != McNemarExact(12, 0) {
		t.Errorf("all discordant one way: %v", p)
	}
}

func TestPairedDiffAndNonInferiority(t *testing.T) {
	p := Paired{N: 1000, Worse: 30, Better: 20}
	d, se := p.Diff()
	near(t, "delta", d, -0.01, 1e-12)
	near(t, "se", se, math.Sqrt((0.05-0.0001)/1000), 1e-12)
	if !p.NonInferior(0.03, 0.05) {
		t.Error("a 1pp loss with SE 0.7pp is within a 3pp margin")
	}
	if p.NonInferior(0.01, 0.05) {
		t.Error("a 1pp loss is not shown within a 1pp margin")
	}
	if (Paired{N: 0}).NonInferior(0.5, 0.05) {
		t.Error("no items cannot show non-inferiority")
	}
}

func TestPairedSampleSize(t *testing.T) {
	n, err := PairedSampleSize(0.10, 0.03, 0.05, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	if n < 860 || n > 880 {
		t.Errorf("ψ=0.10 δ=3pp: %d items, the reference says about 870", n)
	}
	for _, bad := range [][4]float64{{0.1, 0, 0.05, 0.8}, {0.0001, 0.03, 0.05, 0.8}, {0.1, 0.03, 0, 0.8}, {0.1, 0.03, 0.05, 1}} {
		if _, err := PairedSampleSize(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestPairedBootstrap(t *testing.T) {
	base := []float64{1, 0, 1, 1, 0, 1, 1, 1}
	same, err := PairedBootstrap(base, base, Mean, 2000, 1, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if same.CI != (Interval{0, 0}) || same.PAtMost0 != 1 || same.Delta != 0 {
		t.Errorf("identical arms: %+v (pairing resamples both arms alike, so every difference is 0)", same)
	}
	shifted := make([]float64, len(base))
	for i := range base {
		shifted[i] = base[i] + 1
	}
	if r, _ := PairedBootstrap(base, shifted, Mean, 2000, 1, 0.95); r.CI != (Interval{1, 1}) || r.PAtMost0 != 0 {
		t.Errorf("shifted by 1: %+v", r)
	}

	// Normal paired differences: the interval is close to the analytic
	// d̄ ± 1.96·sd/√n, and repeats with the seed.
	rng := rand.New(rand.NewPCG(7, 7))
	n := 400
	a, b := make([]float64, n), make([]float64, n)
	for i := range n {
		a[i] = rng.NormFloat64()
		b[i] = a[i] + 0.2 + 0.5*rng.NormFloat64()
	}
	r, err := PairedBootstrap(a, b, Mean, 10000, 42, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	d := make([]float64, n)
	for i := range d {
		d[i] = b[i] - a[i]
	}
	m := Mean(d)
	var ss float64
	for _, x := range d {
		ss += (x - m) * (x - m)
	}
	half := 1.96 * math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
	near(t, "lower", r.CI.Lo, m-half, 0.1*half)
	near(t, "upper", r.CI.Hi, m+half, 0.1*half)
	if again, _ := PairedBootstrap(a, b, Mean, 10000, 42, 0.95); again != r {
		t.Error("same seed, different result")
	}
	if _, err := PairedBootstrap(a, b[:3], Mean, 10, 1, 0.95); err == nil {
		t.Error("unpaired lengths accepted")
	}
	if _, err := PairedBootstrap(nil, nil, Mean, 10, 1, 0.95); err == nil {
		t.Error("no items accepted")
	}
}

// The mean specialisation draws the same resamples as the general one.
func TestPairedBootstrapMeanIsTheGeneralOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	a, b := make([]float64, 300), make([]float64, 300)
	for i := range a {
		a[i] = float64(rng.IntN(2))
		b[i] = float64(rng.IntN(3)) / 2
	}
	g, err := PairedBootstrap(a, b, Mean, 3000, 9, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	m, err := PairedBootstrapMean(a, b, 3000, 9, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "delta", m.Delta, g.Delta, 1e-12)
	near(t, "lower", m.CI.Lo, g.CI.Lo, 1e-12)
	near(t, "upper", m.CI.Hi, g.CI.Hi, 1e-12)
	if m.PAtMost0 != g.PAtMost0 {
		t.Errorf("P(≤0) %v vs %v", m.PAtMost0, g.PAtMost0)
	}
	if _, err := PairedBootstrapMean(a, b[:2], 10, 1, 0.9); err == nil {
		t.Error("unpaired lengths accepted")
	}
}
