package evals

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestComparePairedOneSample(t *testing.T) {
	var base, cand []Sample
	for i := range 40 {
		id := fmt.Sprintf("i%02d", i)
		base = append(base, sample(id, 0, i < 30))
		cand = append(cand, sample(id, 0, i < 30 && i >= 8 || i == 35)) // 8 regress, 1 fixed
	}
	r, err := ComparePaired(base, cand, CompareOptions{Margin: 0.05}, 4000, 3)
	if err != nil {
		t.Fatal(err)
	}
	// With one sample per item it is Compare, plus the item outcomes.
	ir := func(ss []Sample) []ItemResult {
		out := make([]ItemResult, len(ss))
		for i, s := range ss {
			out[i] = s.ItemResult
		}
		return out
	}
	c, _ := Compare(ir(base), ir(cand), CompareOptions{Margin: 0.05})
	if r.PValue != c.PValue || r.Verdict != c.Verdict || !slices.Equal(r.Regressed, c.Regressed) || r.SampleNote != "" {
		t.Errorf("paired %+v, compare %+v", r.Comparison, c)
	}
	if r.Wins != 1 || r.Losses != 8 || len(r.Items) != 40 || r.Items[0].Outcome != Loss || r.Items[35].Outcome != Win {
		t.Errorf("wins %d losses %d items %+v", r.Wins, r.Losses, r.Items[:2])
	}
	near(t, "bootstrap delta", r.Bootstrap.Delta, -7.0/40, 1e-12)
	if !(r.Bootstrap.CI.Lo < r.Bootstrap.Delta && r.Bootstrap.Delta < r.Bootstrap.CI.Hi && r.Bootstrap.CI.Hi < 0) {
		t.Errorf("bootstrap %+v", r.Bootstrap)
	}
	// McNemar: 8 against 1 is p = 2·P(X ≤ 1), X ~ Bin(9, ½) = 20/512.
	near(t, "p", r.PValue, 20.0/512, 1e-12)

	// All ties: nothing flipped, both intervals are the point 0.
	same, err := ComparePaired(base, base, CompareOptions{Margin: 0.05}, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if same.PValue != 1 || same.Wins+same.Losses != 0 || same.Bootstrap.CI != (Interval{0, 0}) || same.Verdict != InsufficientEvidence {
		t.Errorf("all ties: %+v", same)
	}
	if _, err := ComparePaired(base[:2], []Sample{sample("other", 0, true)}, CompareOptions{Margin: 0.05}, 10, 1); err == nil {
		t.Error("no common item accepted")
	}
}

func TestComparePairedSeveralSamples(t *testing.T) {
	// Item a: 3/4 → 1/4 (loss; majority flips), b: 2/4 → 3/4 (win; both
	// pass by majority), c: 0/4 → 0/4 (tie).
	mk := func(id string, n, c int) []Sample {
		var out []Sample
		for i := range n {
			out = append(out, sample(id, i, i < c))
		}
		return out
	}
	base := slices.Concat(mk("a", 4, 3), mk("b", 4, 2), mk("c", 4, 0))
	cand := slices.Concat(mk("a", 4, 1), mk("b", 4, 3), mk("c", 4, 0))
	r, err := ComparePaired(base, cand, CompareOptions{Margin: 0.1}, 2000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worse != 1 || r.Better != 0 || r.Wins != 1 || r.Losses != 1 || r.SampleNote == "" {
		t.Errorf("%+v", r)
	}
	near(t, "share difference", r.Bootstrap.Delta, ((0.25+0.75+0)-(0.75+0.5+0))/3, 1e-12)
}

// The paired bootstrap against its exact distribution: with d = the
// per-item differences, a resample's mean difference is the mean of n
// draws from d, so P(mean ≤ 0) can be enumerated over the multinomial
// counts. A second implementation, not the same code.
func TestPairedBootstrapExactDistribution(t *testing.T) {
	base := []float64{1, 0, 1, 1, 0}
	cand := []float64{0, 1, 1, 0, 0} // d = −1, +1, 0, −1, 0
	n := len(base)
	// Exact: counts (k−, k+, k0) of draws of −1, +1 and 0, probabilities
	// 2/5, 1/5, 2/5; the mean is ≤ 0 when k+ ≤ k−.
	fact := func(k int) float64 { return math.Gamma(float64(k) + 1) }
	exact := 0.0
	for km := 0; km <= n; km++ {
		for kp := 0; kp+km <= n; kp++ {
			k0 := n - km - kp
			p := fact(n) / (fact(km) * fact(kp) * fact(k0)) * math.Pow(0.4, float64(km)) * math.Pow(0.2, float64(kp)) * math.Pow(0.4, float64(k0))
			if kp <= km {
				exact += p
			}
		}
	}
	const b = 200000
	r, err := PairedBootstrap(base, cand, Mean, b, 11, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	se := math.Sqrt(exact * (1 - exact) / b)
	if math.Abs(r.PAtMost0-exact) > 4*se {
		t.Errorf("P(Δ ≤ 0) = %.5f, exact %.5f (±%.5f)", r.PAtMost0, exact, 4*se)
	}
	// The interval's ends are resample means: multiples of 1/n.
	for _, v := range []float64{r.CI.Lo, r.CI.Hi} {
		if k := v * float64(n); math.Abs(k-math.Round(k)) > 1e-9 {
			t.Errorf("end %v is not a multiple of 1/%d", v, n)
		}
	}
}
