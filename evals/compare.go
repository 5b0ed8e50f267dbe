package evals

import (
	"fmt"
	"slices"
)

// Verdict is the outcome of a paired comparison.
type Verdict string

const (
	// NonInferior: the candidate is shown at most Margin worse.
	NonInferior Verdict = "non-inferior"
	// Inferior: the candidate is shown worse by more than Margin.
	Inferior Verdict = "inferior"
	// Inconclusive: enough items, but neither shown.
	Inconclusive Verdict = "inconclusive"
	// InsufficientEvidence: fewer paired items than the margin needs;
	// never a pass.
	InsufficientEvidence Verdict = "insufficient-evidence"
)

// CompareOptions are the terms of a comparison. The zero value is not
// usable: a margin must be chosen.
type CompareOptions struct {
	// Margin is the regression in pass rate allowed (0.02 for 2pp).
	Margin float64
	// Alpha is the one-sided level of the non-inferiority test; zero
	// means 0.05.
	Alpha float64
	// Power is the power the minimum sample size is computed for; zero
	// means 0.8.
	Power float64
	// Discordance is the share of items expected to flip either way,
	// for the minimum sample size; zero means the observed share, or
	// 0.1 when nothing flipped.
	Discordance float64
}

// Comparison is a candidate against a baseline on the same items.
type Comparison struct {
	Paired
	Ties int `json:"ties"`
	// Delta is the candidate's pass rate minus the baseline's; SE its
	// standard error; CI the two-sided interval at 1−2α.
	Delta   float64  `json:"delta"`
	SE      float64  `json:"se"`
	CI      Interval `json:"ci"`
	PValue  float64  `json:"p_value"` // exact McNemar, two-sided
	MinN    int      `json:"min_items"`
	Verdict Verdict  `json:"verdict"`
	// Regressed and Fixed are the items that flipped: passed by the
	// baseline and failed by the candidate, and the other way.
	Regressed []string `json:"regressed"`
	Fixed     []string `json:"fixed"`
	// Missing are items only one side has; they are left out.
	Missing []string `json:"missing,omitempty"`
}

// Compare pairs results by item ID and tests non-inferiority of the
// candidate (canary-evals.md §3.3). Below the sample size the margin
// needs, the verdict is InsufficientEvidence, never NonInferior; a loss
// beyond the margin that the items already show is Inferior at any size.
func Compare(baseline, candidate []ItemResult, o CompareOptions) (Comparison, error) {
	if !(o.Margin > 0 && o.Margin < 1) {
		return Comparison{}, fmt.Errorf("compare: margin %v: want a regression allowance between 0 and 1, such as 0.02", o.Margin)
	}
	alpha, power := o.Alpha, o.Power
	if alpha == 0 {
		alpha = 0.05
	}
	if power == 0 {
		power = 0.8
	}
	base := map[string]bool{}
	for _, r := range baseline {
		base[r.ID] = r.Pass
	}
	var c Comparison
	seen := map[string]bool{}
	for _, r := range candidate {
		seen[r.ID] = true
		b, ok := base[r.ID]
		if !ok {
			c.Missing = append(c.Missing, r.ID)
			continue
		}
		c.N++
		switch {
		case b && !r.Pass:
			c.Worse++
			c.Regressed = append(c.Regressed, r.ID)
		case !b && r.Pass:
			c.Better++
			c.Fixed = append(c.Fixed, r.ID)
		default:
			c.Ties++
		}
	}
	for _, r := range baseline {
		if !seen[r.ID] {
			c.Missing = append(c.Missing, r.ID)
		}
	}
	if c.N == 0 {
		return c, fmt.Errorf("compare: the baseline and the candidate have no item in common (%d items in one arm only)", len(c.Missing))
	}
	slices.Sort(c.Regressed)
	slices.Sort(c.Fixed)
	slices.Sort(c.Missing)
	c.Delta, c.SE = c.Diff()
	z := NormalQuantile(1 - alpha)
	c.CI = Interval{c.Delta - z*c.SE, c.Delta + z*c.SE}
	c.PValue = McNemarExact(c.Worse, c.Better)
	psi := o.Discordance
	if psi == 0 && c.N > 0 {
		psi = float64(c.Worse+c.Better) / float64(c.N)
	}
	if psi < 0.1 {
		psi = max(psi, 0.1, o.Margin*o.Margin)
	}
	minN, err := PairedSampleSize(psi, o.Margin, 2*alpha, power)
	if err != nil {
		return c, err
	}
	c.MinN = minN
	switch {
	case c.N > 0 && c.CI.Hi < -o.Margin:
		c.Verdict = Inferior // a loss shown is reported whatever the sample size
	case c.N < minN:
		c.Verdict = InsufficientEvidence
	case c.CI.Lo > -o.Margin:
		c.Verdict = NonInferior
	default:
		c.Verdict = Inconclusive
	}
	return c, nil
}
