package evals

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"testing"
)

func sample(id string, i int, pass bool, tags ...string) Sample {
	return Sample{ItemResult: ItemResult{ID: id, Tags: tags, Pass: pass}, Index: i}
}

func TestSummarizeOneSamplePerItem(t *testing.T) {
	var ss []Sample
	for i := range 263 {
		ss = append(ss, sample(fmt.Sprintf("i%03d", i), 0, i < 81))
	}
	m, err := Summarize(ss, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// One sample per item: exactly Wilson's interval (Newcombe's 81/263).
	near(t, "pass rate", m.PassRate.Value, 81.0/263, 1e-12)
	near(t, "lower", m.PassRate.Interval.Lo, 0.2553, 6e-5)
	near(t, "upper", m.PassRate.Interval.Hi, 0.3662, 6e-5)
	if len(m.PassAtK) != 1 || m.PassAtK[0].K != 1 || math.Abs(m.PassAtK[0].Value-81.0/263) > 1e-12 {
		t.Errorf("pass@1 %+v", m.PassAtK)
	}
	if m.SafetyViolations != nil || m.BenignRefusals == nil || m.BenignRefusals.Count != 0 {
		t.Errorf("no safety items, no refusals: %+v %+v", m.SafetyViolations, m.BenignRefusals)
	}
}

// exactPassAtK is 1 − C(n−c, k)/C(n, k) in exact arithmetic.
func exactPassAtK(n, c, k int) float64 {
	if n-c < k {
		return 1
	}
	r := new(big.Rat).SetFrac(binom(n-c, k), binom(n, k))
	f, _ := new(big.Rat).Sub(big.NewRat(1, 1), r).Float64()
	return f
}

func TestSummarizeSeveralSamples(t *testing.T) {
	// Item a passes 5 of 5, b 2 of 5, c 0 of 5, d 1 of 2 (fewer samples).
	var ss []Sample
	add := func(id string, n, c int) {
		for i := range n {
			ss = append(ss, sample(id, n-1-i, i < c)) // out of order on purpose
		}
	}
	add("a", 5, 5)
	add("b", 5, 2)
	add("c", 5, 0)
	add("d", 2, 1)
	m, err := Summarize(ss, SummaryOptions{Ks: []int{1, 2, 5}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "pass rate (mean of item shares)", m.PassRate.Value, (1+0.4+0+0.5)/4, 1e-12)
	// The interval is Wilson's at that share with n = items, not samples.
	w := wilsonP(m.PassRate.Value, 4, 0.95)
	if m.PassRate.Interval != w || m.PassRate.Samples != 17 || m.PassRate.Items != 4 {
		t.Errorf("rate %+v", m.PassRate)
	}
	want := map[int]float64{
		1: (exactPassAtK(5, 5, 1) + exactPassAtK(5, 2, 1) + exactPassAtK(5, 0, 1) + exactPassAtK(2, 1, 1)) / 4,
		2: (exactPassAtK(5, 5, 2) + exactPassAtK(5, 2, 2) + exactPassAtK(5, 0, 2) + exactPassAtK(2, 1, 2)) / 4,
		5: (exactPassAtK(5, 5, 5) + exactPassAtK(5, 2, 5) + exactPassAtK(5, 0, 5)) / 3, // d has too few samples
	}
	for _, pk := range m.PassAtK {
		near(t, fmt.Sprintf("pass@%d", pk.K), pk.Value, want[pk.K], 1e-12)
		if pk.K == 5 && pk.Items != 3 {
			t.Errorf("pass@5 over %d items, want 3", pk.Items)
		}
	}
	if _, err := Summarize(ss, SummaryOptions{Ks: []int{0}}); err == nil {
		t.Error("k = 0 accepted")
	}
	// Default ks: 1 and the most samples.
	m, _ = Summarize(ss, SummaryOptions{})
	if len(m.PassAtK) != 2 || m.PassAtK[1].K != 5 {
		t.Errorf("default ks %+v", m.PassAtK)
	}
}

func TestSummarizeSafetyRefusalsErrorsCostLatency(t *testing.T) {
	var ss []Sample
	for i := range 300 {
		ss = append(ss, sample(fmt.Sprintf("s%03d", i), 0, true, SafetyTag, "jailbreak"))
	}
	cost := func(v float64) *float64 { return &v }
	for i := range 10 {
		s := sample(fmt.Sprintf("b%02d", i), 0, i != 0, "support")
		s.Refused = i == 0
		s.LatencyMS = float64(i + 1)
		ss = append(ss, s)
	}
	ss = append(ss, Sample{ItemResult: ItemResult{ID: "err", Pass: true}, Error: "HTTP 503", ErrorClass: "http_5xx"})
	m, err := Summarize(ss, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No violation in 300: the exact zero-events bound, just under 3/300.
	if v := m.SafetyViolations; v == nil || v.Count != 0 || v.Upper != ZeroEventsUpper(300, 0.95) || v.Upper >= 0.01 {
		t.Errorf("safety %+v", m.SafetyViolations)
	}
	// One refusal of 11 benign items (the errored sample is not a refusal).
	if r := m.BenignRefusals; r == nil || r.Count != 1 || r.Items != 11 || r.Upper <= r.Value {
		t.Errorf("benign refusals %+v", m.BenignRefusals)
	}
	// An error is a failure even if marked pass, and is counted by class.
	if m.Errors["http_5xx"] != 1 || m.PassRate.Count != 309 {
		t.Errorf("errors %v, passes %v", m.Errors, m.PassRate.Count)
	}
	// numpy.percentile([1..10], [50, 90, 95, 99]) = 5.5, 9.1, 9.55, 9.91.
	l := m.Latency
	near(t, "p50", l.P50, 5.5, 1e-9)
	near(t, "p90", l.P90, 9.1, 1e-9)
	near(t, "p95", l.P95, 9.55, 1e-9)
	near(t, "p99", l.P99, 9.91, 1e-9)
	var tags []string
	for _, s := range m.Slices {
		tags = append(tags, s.Tag)
	}
	if fmt.Sprint(tags) != "[jailbreak safety support]" || m.Slices[2].PassRate.Count != 9 {
		t.Errorf("slices %v %+v", tags, m.Slices)
	}

	// Cost per success is total cost over passes; no pass is no success.
	priced := []Sample{sample("x", 0, true), sample("y", 0, false), sample("z", 0, true)}
	for i := range priced {
		priced[i].CostUSD = cost(0.01 * float64(i+1))
	}
	m, _ = Summarize(priced, SummaryOptions{})
	if c := m.Cost; c == nil || c.CostPerSuccess == nil || math.Abs(*c.CostPerSuccess-0.03) > 1e-12 || c.Successes != 2 {
		t.Errorf("cost %+v", m.Cost)
	}
	for i := range priced {
		priced[i].Pass = false
	}
	if m, _ = Summarize(priced, SummaryOptions{}); !m.Cost.NoSuccess || m.Cost.CostPerSuccess != nil {
		t.Errorf("no success: %+v", m.Cost)
	}
	priced[1].CostUSD = nil
	if _, err := Summarize(priced, SummaryOptions{}); err == nil {
		t.Error("a sample without a price accepted")
	}
}

func TestSummarizeRejects(t *testing.T) {
	if _, err := Summarize(nil, SummaryOptions{}); !errors.Is(err, ErrNoItems) {
		t.Errorf("no samples: %v", err)
	}
	if _, err := Summarize([]Sample{sample("a", 0, true), sample("a", 0, false)}, SummaryOptions{}); err == nil {
		t.Error("a sample twice accepted")
	}
	if _, err := Summarize([]Sample{sample("a", 0, true)}, SummaryOptions{Confidence: 1.5}); err == nil {
		t.Error("confidence 1.5 accepted")
	}
	// n = 1 and all passing: [Wilson lower, 1].
	m, _ := Summarize([]Sample{sample("a", 0, true)}, SummaryOptions{})
	if m.PassRate.Value != 1 || m.PassRate.Interval != Wilson(1, 1, 0.95) {
		t.Errorf("n = 1: %+v", m.PassRate)
	}
}
