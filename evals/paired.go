package evals

import (
	"fmt"
	"slices"
)

// Outcome is one item's result in a paired comparison.
type Outcome string

const (
	Win  Outcome = "win"  // the candidate passed more of the item's samples
	Loss Outcome = "loss" // the candidate passed fewer
	Tie  Outcome = "tie"
)

// PairedItem is one item in both arms: each arm's share of passed
// samples (0 or 1 with one sample) and the outcome.
type PairedItem struct {
	ID        string  `json:"id"`
	Baseline  float64 `json:"baseline"`
	Candidate float64 `json:"candidate"`
	Outcome   Outcome `json:"outcome"`
}

// PairedReport is Compare on the items, with the paired bootstrap of the
// difference in mean pass share and the outcome of every item.
type PairedReport struct {
	Comparison
	Margin     float64      `json:"margin"`
	Alpha      float64      `json:"alpha"`
	Wins       int          `json:"wins"`
	Losses     int          `json:"losses"`
	Bootstrap  Bootstrap    `json:"bootstrap"`
	Resamples  int          `json:"bootstrap_resamples"`
	Items      []PairedItem `json:"items"`
	SampleNote string       `json:"sample_note,omitempty"`
}

// ComparePaired compares a candidate's samples with a baseline's on the
// same items (canary-evals.md §3.3). An item passes, for the exact
// McNemar test and the non-inferiority verdict, when at least half of its
// samples pass; the paired bootstrap and win/loss/tie use the share of
// passed samples, so nothing is lost with several samples per item.
func ComparePaired(baseline, candidate []Sample, o CompareOptions, resamples int, seed uint64) (PairedReport, error) {
	bg, err := groupSamples(baseline)
	if err != nil {
		return PairedReport{}, fmt.Errorf("baseline: %w", err)
	}
	cg, err := groupSamples(candidate)
	if err != nil {
		return PairedReport{}, fmt.Errorf("candidate: %w", err)
	}
	pass := func(s *Sample) bool { return s.Pass && s.Error == "" }
	collapse := func(gs []*itemGroup) ([]ItemResult, map[string]float64, bool) {
		out := make([]ItemResult, 0, len(gs))
		share := make(map[string]float64, len(gs))
		multi := false
		for _, g := range gs {
			v := g.share(pass)
			share[g.id] = v
			out = append(out, ItemResult{ID: g.id, Tags: g.tags, Pass: v >= 0.5})
			multi = multi || len(g.samples) > 1
		}
		return out, share, multi
	}
	bi, bs, bm := collapse(bg)
	ci, cs, cm := collapse(cg)
	c, err := Compare(bi, ci, o)
	if err != nil {
		return PairedReport{}, err
	}
	alpha := o.Alpha
	if alpha == 0 {
		alpha = 0.05
	}
	r := PairedReport{Comparison: c, Margin: o.Margin, Alpha: alpha, Resamples: resamples}
	if bm || cm {
		r.SampleNote = "items have several samples: an item passes the McNemar test when at least half its samples pass; the bootstrap and win/loss use each item's share"
	}
	var xs, ys []float64
	for _, g := range cg {
		b, ok := bs[g.id]
		if !ok {
			continue
		}
		v := cs[g.id]
		it := PairedItem{ID: g.id, Baseline: b, Candidate: v, Outcome: Tie}
		switch {
		case v > b:
			it.Outcome = Win
			r.Wins++
		case v < b:
			it.Outcome = Loss
			r.Losses++
		}
		r.Items = append(r.Items, it)
		xs = append(xs, b)
		ys = append(ys, v)
	}
	slices.SortFunc(r.Items, func(a, b PairedItem) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	if len(xs) > 0 && resamples > 0 {
		b, err := PairedBootstrapMean(xs, ys, resamples, seed, 1-2*alpha)
		if err != nil {
			return r, err
		}
		r.Bootstrap = b
	}
	return r, nil
}
