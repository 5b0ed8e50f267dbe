package evals

import (
	"fmt"
	"slices"
	"testing"
)

func results(pass ...bool) []ItemResult {
	out := make([]ItemResult, len(pass))
	for i, p := range pass {
		out[i] = ItemResult{ID: fmt.Sprintf("i%03d", i), Pass: p}
	}
	return out
}

func TestCompare(t *testing.T) {
	// 1000 items; the baseline passes 900; the candidate regresses 60
	// of them and fixes 10.
	n := 1000
	base, cand := make([]bool, n), make([]bool, n)
	for i := range n {
		base[i] = i < 900
		cand[i] = base[i]
	}
	for i := range 60 {
		cand[i] = false
	}
	for i := 900; i < 910; i++ {
		cand[i] = true
	}
	c, err := Compare(results(base...), results(cand...), CompareOptions{Margin: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 1000 || c.Worse != 60 || c.Better != 10 || c.Ties != 930 || len(c.Regressed) != 60 || c.Fixed[0] != "i900" {
		t.Fatalf("counts %+v", c.Paired)
	}
	if c.Verdict != Inferior || c.PValue > 1e-6 || c.Delta != -0.05 {
		t.Errorf("a 5pp paired loss: verdict %s, p %g, delta %v", c.Verdict, c.PValue, c.Delta)
	}

	// The same candidate as the baseline: non-inferior, p = 1 (1000
	// items are enough for a 5pp margin; a 2pp one needs about 1,550).
	same, _ := Compare(results(base...), results(base...), CompareOptions{Margin: 0.05})
	if same.Verdict != NonInferior || same.PValue != 1 || len(same.Regressed) != 0 {
		t.Errorf("identical: %+v", same)
	}
	if two, _ := Compare(results(base...), results(base...), CompareOptions{Margin: 0.02}); two.Verdict != InsufficientEvidence || two.MinN < 1500 {
		t.Errorf("identical, 2pp margin: %s with min %d items", two.Verdict, two.MinN)
	}

	// Ten items cannot show anything about a 2pp margin.
	small, _ := Compare(results(true, true, true, true, true, true, true, true, true, true),
		results(true, true, true, true, true, true, true, true, true, true), CompareOptions{Margin: 0.02})
	if small.Verdict != InsufficientEvidence || small.MinN <= 10 {
		t.Errorf("10 items: verdict %s, min %d", small.Verdict, small.MinN)
	}

	// Items only one side has are reported and left out.
	b := results(true, false, true)
	cnd := results(true, false)
	cnd = append(cnd, ItemResult{ID: "new", Pass: true})
	m, _ := Compare(b, cnd, CompareOptions{Margin: 0.5})
	if m.N != 2 || !slices.Equal(m.Missing, []string{"i002", "new"}) {
		t.Errorf("missing %v, n %d", m.Missing, m.N)
	}
	if _, err := Compare(b, cnd, CompareOptions{}); err == nil {
		t.Error("no margin accepted")
	}
}
