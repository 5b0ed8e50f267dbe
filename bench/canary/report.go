package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/gate/canary"
)

// rate is k of n canaries.
type rate struct{ k, n int }

func (r rate) p() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.k) / float64(r.n)
}

// wilson is the 95% Wilson score interval of the rate.
func (r rate) wilson() (lo, hi float64) {
	if r.n == 0 {
		return 0, 1
	}
	const z = 1.959963984540054
	n, p := float64(r.n), r.p()
	centre := (p + z*z/(2*n)) / (1 + z*z/n)
	half := z / (1 + z*z/n) * math.Sqrt(p*(1-p)/n+z*z/(4*n*n))
	return math.Max(0, centre-half), math.Min(1, centre+half)
}

func (r rate) String() string {
	lo, hi := r.wilson()
	return fmt.Sprintf("%s [%s, %s]", pct(r.p()), pctShort(lo), pctShort(hi))
}

func pct(p float64) string      { return fmt.Sprintf("%.1f%%", 100*p) }
func pctShort(p float64) string { return fmt.Sprintf("%.1f", 100*p) }

// judgeSummary is one judge's decisions over a scenario's canaries.
type judgeSummary struct {
	failed        rate
	samples       []int // canary requests at each failure, sorted
	why           map[string]int
	measurements  int // Argo: measurements taken
	failedMeasure int // Argo: failed measurements
}

func (j judgeSummary) mean() float64 {
	if len(j.samples) == 0 {
		return math.NaN()
	}
	s := 0
	for _, x := range j.samples {
		s += x
	}
	return float64(s) / float64(len(j.samples))
}

// percentile is the nearest-rank p-th percentile of the samples at
// failure.
func (j judgeSummary) percentile(p float64) int {
	if len(j.samples) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(j.samples))*p/100)) - 1
	return j.samples[max(0, min(i, len(j.samples)-1))]
}

func (j judgeSummary) whyString() string {
	if len(j.why) == 0 {
		return "–"
	}
	keys := make([]string, 0, len(j.why))
	for k := range j.why {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if j.why[a] != j.why[b] {
			return j.why[b] - j.why[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, j.why[k]))
	}
	return strings.Join(parts, ", ")
}

type scenarioSummary struct {
	sc            scenario
	airlock, argo judgeSummary
	// airlockBy[i] is the canaries Airlock failed within grid[i] canary
	// requests.
	airlockBy []rate
	// kayenta[feed][i] is the canaries Kayenta failed at window grid[i];
	// kayentaFlags[feed][i][m] how often metric m was labelled bad.
	kayenta      [kayentaFeeds][]rate
	kayentaFlags [kayentaFeeds][][3]int
}

func summarize(c config, scens []scenario, results [][]runResult) []scenarioSummary {
	var out []scenarioSummary
	for si, sc := range scens {
		s := scenarioSummary{sc: sc,
			airlock: judgeSummary{why: map[string]int{}}, argo: judgeSummary{why: map[string]int{}}}
		for f := range kayentaFeeds {
			s.kayenta[f] = make([]rate, len(c.st.grid))
			s.kayentaFlags[f] = make([][3]int, len(c.st.grid))
		}
		s.airlockBy = make([]rate, len(c.st.grid))
		for _, r := range results[si] {
			add := func(j *judgeSummary, o outcome) {
				j.failed.n++
				if o.failed {
					j.failed.k++
					j.samples = append(j.samples, o.samples)
					j.why[o.why]++
				}
			}
			add(&s.airlock, r.airlock)
			add(&s.argo, r.argo)
			s.argo.measurements += r.argoLooks
			if r.argo.failed {
				s.argo.failedMeasure++
			}
			for i, n := range c.st.grid {
				s.airlockBy[i].n++
				if r.airlock.failed && r.airlock.samples <= n {
					s.airlockBy[i].k++
				}
				for f := range kayentaFeeds {
					v := r.kayenta[f][i]
					s.kayenta[f][i].n++
					if v.failed {
						s.kayenta[f][i].k++
					}
					for m := range 3 {
						if v.flagged&(1<<m) != 0 {
							s.kayentaFlags[f][i][m]++
						}
					}
				}
			}
		}
		slices.Sort(s.airlock.samples)
		slices.Sort(s.argo.samples)
		out = append(out, s)
	}
	return out
}

// headline is a regression scenario's comparison of samples.
type headline struct {
	s *scenarioSummary
	// feed and window are Kayenta's quality feed and window most
	// favourable to it: the smallest window whose detection reaches
	// threshold (window -1: none on the grid).
	feed, window int
	threshold    float64
	reachedOwn   bool // threshold is Airlock's own detection rate
	ratio        float64
	faOK         bool
	result       string
}

func compare(c config, s, none *scenarioSummary) headline {
	h := headline{s: s, window: -1}
	dA := s.airlock.failed.p()
	find := func(th float64) (feed, window int) {
		feed, window = 0, -1
		for f := range kayentaFeeds {
			for i := range c.st.grid {
				if !admissible(c, none, f, i) {
					continue
				}
				if s.kayenta[f][i].p() >= th && s.kayenta[f][i].n > 0 {
					if window < 0 || i < window {
						feed, window = f, i
					}
					break
				}
			}
		}
		return feed, window
	}
	h.threshold, h.reachedOwn = dA, true
	h.feed, h.window = find(dA)
	if h.window < 0 && c.fallback < dA {
		h.threshold, h.reachedOwn = c.fallback, false
		h.feed, h.window = find(c.fallback)
	}
	mean := s.airlock.mean()
	h.faOK = none.airlock.failed.p() <= c.targetFA
	switch {
	case s.airlock.failed.k == 0:
		h.result = "MISSED: Airlock detected none"
	case h.window >= 0:
		h.ratio = mean / float64(c.st.grid[h.window])
		h.faOK = h.faOK && none.kayenta[h.feed][h.window].p() <= c.targetFA
		h.result = fmt.Sprintf("ratio %.2f: ", h.ratio)
		if h.ratio <= c.targetRatio && h.faOK {
			h.result += "met"
		} else {
			h.result += "MISSED"
		}
	default:
		bound := mean / float64(maxGrid(c.st.grid))
		h.ratio = bound
		h.result = fmt.Sprintf("Kayenta's detection does not reach %s on the grid: ratio < %.2f: ", pct(h.threshold), bound)
		if bound <= c.targetRatio && h.faOK {
			h.result += "met"
		} else {
			h.result += "not shown"
		}
	}
	if !h.faOK {
		h.result += " (a false-alarm rate is above the target)"
	}
	return h
}

// admissible says whether Kayenta's window i with quality feed f keeps
// false alarms within the target: only those are compared, at the same
// false-alarm rate as Airlock.
func admissible(c config, none *scenarioSummary, f, i int) bool {
	return none.kayenta[f][i].p() <= c.targetFA
}

func feedName(f int) string {
	if f == qualityPerRequest {
		return "quality per request"
	}
	return "quality per interval"
}

func report(c config, rep []scenarioSummary, elapsed time.Duration, t timing) string {
	var b strings.Builder
	none := &rep[0]
	grid := c.st.grid
	fmt.Fprintf(&b, "# canary: Airlock's sequential judge against Kayenta's fixed-window Mann-Whitney and Argo's thresholds\n\n")
	fmt.Fprintf(&b, "Command: `%s`; %s/%s, %d CPUs, %s. %d simulated canaries per scenario (seed %d), "+
		"every judge on the same canaries, in %s on %d workers.\n\n",
		strings.TrimSpace("go run ./bench/canary "+strings.Join(os.Args[1:], " ")), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(),
		c.runs, c.seed, elapsed.Round(100*time.Millisecond), c.workers)

	// Targets.
	fmt.Fprintf(&b, "## Targets\n\n")
	fmt.Fprintf(&b, "| target | scenario | Airlock | Kayenta (fixed window) | result |\n|---|---|---|---|---|\n")
	worst, worstAt, worstFeed := -1.0, 0, 0
	for f := range kayentaFeeds {
		for i := range grid {
			if p := none.kayenta[f][i].p(); p > worst {
				worst, worstAt, worstFeed = p, i, f
			}
		}
	}
	faResult := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	var over []string
	for f := range kayentaFeeds {
		for i := range grid {
			if !admissible(c, none, f, i) {
				over = append(over, fmt.Sprintf("N=%d with %s (%s)", grid[i], feedName(f), none.kayenta[f][i]))
			}
		}
	}
	kayFA := fmt.Sprintf("at most %s at any window (%s at N=%d, %s)", pct(worst), none.kayenta[worstFeed][worstAt], grid[worstAt], feedName(worstFeed))
	kayResult := "Kayenta met at every window"
	if len(over) > 0 {
		kayFA += "; above the target: " + strings.Join(over, ", ") + ", left out of the comparisons below"
		kayResult = "Kayenta MISSED at " + fmt.Sprint(len(over)) + " of its " + fmt.Sprint(kayentaFeeds*len(grid)) + " windows and feeds"
	}
	fmt.Fprintf(&b, "| false alarms ≤ %s | %s | %s | %s | Airlock %s; %s |\n",
		pct(c.targetFA), none.sc.name, none.airlock.failed, kayFA, faResult(none.airlock.failed.p() <= c.targetFA), kayResult)
	var heads []headline
	for i := range rep[1:] {
		s := &rep[i+1]
		h := compare(c, s, none)
		heads = append(heads, h)
		air := fmt.Sprintf("detects %s; mean %.0f canary requests (p50 %d, p90 %d)", s.airlock.failed, s.airlock.mean(),
			s.airlock.percentile(50), s.airlock.percentile(90))
		var kay string
		if h.window >= 0 {
			reach := "Airlock's detection"
			if !h.reachedOwn {
				reach = pct(h.threshold) + " (not Airlock's, which no window reaches)"
			}
			kay = fmt.Sprintf("N=%d is the smallest window reaching %s: %s (%s; false alarms %s)", grid[h.window], reach,
				s.kayenta[h.feed][h.window], feedName(h.feed), pct(none.kayenta[h.feed][h.window].p()))
		} else {
			best, bestAt, bestFeed := -1.0, 0, 0
			for f := range kayentaFeeds {
				for i := range grid {
					if p := s.kayenta[f][i].p(); p > best && admissible(c, none, f, i) {
						best, bestAt, bestFeed = p, i, f
					}
				}
			}
			kay = fmt.Sprintf("not reached on the grid: at most %s (N=%d, %s; failed on: %s)", s.kayenta[bestFeed][bestAt], grid[bestAt],
				feedName(bestFeed), flagString(s.kayentaFlags[bestFeed][bestAt]))
		}
		fmt.Fprintf(&b, "| Airlock's samples at detection ≤ %.1f × Kayenta's window at the same detection, false alarms ≤ %s | %s | %s | %s | %s |\n",
			c.targetRatio, pct(c.targetFA), s.sc.name, air, kay, h.result)
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Samples are canary requests used at the decision (the baseline served %g per canary request over the same time). "+
		"Kayenta judges once, at the end of its window, so every run uses all N; the comparison takes the smallest window on the grid "+
		"whose detection rate reaches Airlock's (or %s when none does), with the quality feed more favourable to Kayenta.\n\n",
		c.m.ratio, pct(c.fallback))

	// Per scenario.
	fmt.Fprintf(&b, "## Every judge per scenario\n\n")
	fmt.Fprintf(&b, "| scenario | judge | canaries failed [95%% Wilson] | canary requests at detection: mean | p50 | p90 | failed on |\n|---|---|---|---|---|---|---|\n")
	for i := range rep {
		s := &rep[i]
		row := func(name string, j judgeSummary) {
			m := "–"
			if len(j.samples) > 0 {
				m = fmt.Sprintf("%.0f", j.mean())
			}
			p50, p90 := "–", "–"
			if len(j.samples) > 0 {
				p50, p90 = fmt.Sprint(j.percentile(50)), fmt.Sprint(j.percentile(90))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", s.sc.name, name, j.failed, m, p50, p90, j.whyString())
		}
		row(fmt.Sprintf("Airlock (sequential, looks every %d, max %d)", c.st.look, c.st.max), s.airlock)
		if i == 0 {
			f, w := worstFeed, worstAt
			fmt.Fprintf(&b, "| %s | Kayenta, N=%d (%s; its worst window) | %s | %d (fixed) | %d | %d | %s |\n",
				s.sc.name, grid[w], feedName(f), s.kayenta[f][w], grid[w], grid[w], grid[w], flagString(s.kayentaFlags[f][w]))
		} else if h := heads[i-1]; h.window >= 0 {
			f, w := h.feed, h.window
			fmt.Fprintf(&b, "| %s | Kayenta, N=%d (%s) | %s | %d (fixed) | %d | %d | %s |\n",
				s.sc.name, grid[w], feedName(f), s.kayenta[f][w], grid[w], grid[w], grid[w], flagString(s.kayentaFlags[f][w]))
		}
		row(fmt.Sprintf("Argo (a measurement every %d, failureLimit %d)", c.st.argoInterval, c.st.argoFailureLimit), s.argo)
	}
	fmt.Fprintln(&b)
	if none.argo.measurements > 0 {
		fmt.Fprintf(&b, "Argo without a regression: %d of %d measurements failed (%s per measurement), and with failureLimit %d "+
			"the first one fails the canary; nothing in its checks accounts for taking up to %d measurements.\n\n",
			none.argo.failedMeasure, none.argo.measurements, pct(float64(none.argo.failedMeasure)/float64(none.argo.measurements)),
			c.st.argoFailureLimit, c.st.max/c.st.argoInterval)
	}

	// Kayenta's sweep.
	fmt.Fprintf(&b, "## Kayenta's fixed windows\n\n")
	fmt.Fprintf(&b, "Canaries failed at each window N, with quality fed per request · per interval of %d; beside each regression, "+
		"the canaries Airlock had failed within N canary requests (it stops at %d).\n\n", c.st.interval, c.st.max)
	fmt.Fprintf(&b, "| N |")
	for i, s := range rep {
		fmt.Fprintf(&b, " %s: Kayenta |", s.sc.name)
		if i > 0 {
			fmt.Fprintf(&b, " %s: Airlock ≤ N |", s.sc.name)
		}
	}
	fmt.Fprintf(&b, "\n|---|")
	for i := range rep {
		fmt.Fprintf(&b, "---|")
		if i > 0 {
			fmt.Fprintf(&b, "---|")
		}
	}
	fmt.Fprintln(&b)
	for gi, n := range grid {
		fmt.Fprintf(&b, "| %d |", n)
		for i, s := range rep {
			fmt.Fprintf(&b, " %s · %s |", pct(s.kayenta[qualityPerRequest][gi].p()), pct(s.kayenta[qualityPerInterval][gi].p()))
			if i > 0 {
				fmt.Fprintf(&b, " %s |", pct(s.airlockBy[gi].p()))
			}
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Which metric Kayenta labelled bad, at the largest window (N=%d; latency, quality per request · per interval, errors): ", grid[len(grid)-1])
	var parts []string
	for _, s := range rep {
		last := len(grid) - 1
		fr, fi := s.kayentaFlags[qualityPerRequest][last], s.kayentaFlags[qualityPerInterval][last]
		parts = append(parts, fmt.Sprintf("%s: %d, %d · %d, %d", s.sc.name, fr[0], fr[1], fi[1], fr[2]))
	}
	fmt.Fprintf(&b, "%s.\n\n", strings.Join(parts, "; "))

	fmt.Fprintf(&b, "How Kayenta's method meets this data: (1) on pass/fail outcomes every pairwise difference is −1, 0 or 1, "+
		"so the Hodges-Lehmann estimate is 0 and both ends of the interval sit on the step of z(μ) at 0; the band ±0.25·|HL| is then "+
		"[0, 0], which the interval never clears, so quality fed per request is never labelled bad, whatever the drop (a numeric solver "+
		"stopping a tolerance away from that step would decide by which side it stopped on; the roots here are exact). "+
		"(2) Rare errors as per-interval rates are mostly 0 on both sides: the estimate is again 0 and the interval again sits on the "+
		"step at 0 (spinnaker/spinnaker#5622). (3) With 2 intervals per cohort (N=%d) the normal approximation cannot reach 98%%, "+
		"so the interval is the whole range [min(canary) − max(baseline), max(canary) − min(baseline)] (R's and Kayenta's rule), which "+
		"clears the band whenever every canary interval is on one side of every baseline one: 1 time in 6 without ties.\n\n",
		2*c.st.interval)

	// Model.
	m := c.m
	fmt.Fprintf(&b, "## Model\n\n")
	fmt.Fprintf(&b, "- Traffic: each canary is a stream of requests split between baseline and canary, %g baseline request(s) per canary request over the same time. "+
		"Each request has a latency (lognormal, median %g ms, σ_log %g: mean %.1f ms, a TTFT-like spread), a quality outcome "+
		"(pass with probability %g on the baseline) and an error outcome (%g on the baseline), all independent. "+
		"Seeded PCG streams, one per canary (from -seed, the scenario and the run index), so results do not depend on scheduling.\n",
		m.ratio, m.latencyMedian, m.latencySigma, m.latencyMean(), m.quality, m.errorRate)
	burst := rep[len(rep)-1].sc
	fmt.Fprintf(&b, "- Scenarios, on the canary only: none; every latency ×1.2; pass rate %.2f → %.2f; error bursts: outside a burst each request "+
		"starts one with probability %.6f, and a burst is %d consecutive failed requests, which adds %g to the error rate on average "+
		"(%.3g → %.3g); requests outside bursts keep the base rate.\n",
		m.quality, m.quality-0.05, burst.burstStart(m.errorRate), burst.burstLen, burst.burstErrors, m.errorRate, m.errorRate+burst.burstErrors)
	fmt.Fprintf(&b, "- Airlock: `canary.Judge` (gate/canary) on three metrics at alpha %g family-wise (Judge gives each test %.4g): latency "+
		"(mean test, lower is better, tolerance %g%% of the baseline's mean, min samples %d), quality (proportion test of passes, higher is better, "+
		"tolerance %g absolute, min %d requests), errors (count test, tolerance 0, min %d requests). Observations are cumulative, as a provider "+
		"returns them (N, mean and variance kept as running sums; events and requests). It looks every %d canary requests; the first look "+
		"that says Fail rolls the canary back, and a canary not failed by %d canary requests passes.\n",
		c.st.alpha, c.st.alpha/3, 100*c.st.latencyTolerance, canary.DefaultMinMean, c.st.qualityTolerance, canary.DefaultMinCount, canary.DefaultMinCount, c.st.look, c.st.max)
	fmt.Fprintf(&b, "- Kayenta: NetflixACAJudge's method (reimplemented from its description in bench/canary/kayenta.go): per metric the "+
		"two-sided Wilcoxon rank-sum confidence interval at 98%% for the shift canary − baseline (normal approximation with tie and continuity "+
		"corrections, roots of z(μ) by bisection on a sorted merge) and the Hodges-Lehmann estimate; High when the interval lies above "+
		"+0.25·|HL| and the mean ratio is ≥ 1 (latency and errors: increase is bad), Low when it lies below −0.25·|HL| and the ratio is ≤ 1 "+
		"(quality: decrease is bad); no critical metrics; one metric per group of equal weight, summary score against pass 90 (marginal 75 "+
		"counts as a failure for promotion), so one bad metric fails the canary. It reads time series: latency is fed as every request's "+
		"value (the case most favourable to it), errors as the error rate of each interval of %d requests per cohort (a Prometheus query "+
		"per interval), and quality both ways: each request's pass (1) or fail (0), as the issue asked, and the pass rate per interval of %d. "+
		"It judges once, at the end of a window of N canary requests, for N in %v.\n",
		c.st.interval, c.st.interval, grid)
	fmt.Fprintf(&b, "- Argo: a measurement of the canary alone every %d canary requests, up to %d: mean latency ≤ %.1f ms (%g × the baseline's true mean), "+
		"pass rate ≥ %g, error rate ≤ %g, hand-written from the baseline's known values; failureLimit %d (Argo's default: the first failed "+
		"measurement fails the metric, and a failed metric fails the run).\n",
		c.st.argoInterval, c.st.max, c.st.argoLatency, c.argoLatency, c.st.argoQuality, c.st.argoErrors, c.st.argoFailureLimit)
	fmt.Fprintf(&b, "- Time in the judges, summed over workers: Airlock %s (%d looks, %.1f µs per look), Kayenta %s, Argo %s; drawing the requests %s.\n",
		t.airlock.Round(time.Millisecond), t.airlockLooks, float64(t.airlock.Microseconds())/math.Max(1, float64(t.airlockLooks)),
		t.kayenta.Round(time.Millisecond), t.argo.Round(time.Millisecond), t.generate.Round(time.Millisecond))
	return b.String()
}

func flagString(f [3]int) string {
	var parts []string
	for m, n := range f {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", metricName(m), n))
		}
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}
