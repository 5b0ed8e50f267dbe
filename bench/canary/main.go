// Command canary simulates canaries and judges each with Airlock's
// sequential judge (gate/canary.Judge), with Kayenta's fixed-window
// Mann-Whitney judge and with Argo Rollouts' single-threshold checks, in
// the same run and on the same simulated requests. The target (DESIGN.md
// §10 and the canary-judge issue): false alarms at most 5%, and detection
// of a 20% latency regression or a 5-point quality drop with half the
// canary samples of the fixed-window judge.
//
// Each canary is a stream of requests split between the baseline and the
// canary (1:1 by default, -ratio); each request has a lognormal latency, a
// pass/fail quality outcome and an error outcome. Four scenarios: no
// regression, every canary latency ×1.2, the canary's pass rate 5 points
// lower, and error bursts adding 0.5 points to the canary's error rate.
//
//   - Airlock: canary.Judge on cumulative observations of latency (mean
//     test, 10% tolerance), quality (proportion test, 0.02 tolerance) and
//     errors (count test, no tolerance), at alpha 0.05, every -look canary
//     requests up to -max; the first Fail rolls back, and a canary that
//     never fails passes at -max.
//   - Kayenta (NetflixACAJudge's method, reimplemented in kayenta.go): one
//     judgement at the end of a fixed window of N canary requests, for each
//     N of -grid; latency fed per request, errors as per-interval rates, and
//     quality both ways (per request, as the issue asked; per interval,
//     what a Prometheus query per interval gives).
//   - Argo: one measurement of the canary alone every -argo-interval
//     requests against fixed thresholds, failureLimit 0, up to -max.
//
// Usage (from the repository root):
//
//	go run ./bench/canary                                  # 1000 canaries per scenario
//	go run ./bench/canary -runs 100 -out bench/results/canary-smoke.md
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/registry/regtest"
)

type config struct {
	runs, workers int
	seed          uint64
	out           string
	m             model
	st            settings
	burstLen      int
	burstErrors   float64
	argoLatency   float64 // the latency threshold as a multiple of the baseline's true mean
	targetFA      float64
	targetRatio   float64
	fallback      float64 // the detection rate compared at when Kayenta never reaches Airlock's
}

func main() {
	var c config
	var grid string
	flag.IntVar(&c.runs, "runs", 1000, "simulated canaries per scenario")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the simulation (each canary's PCG stream is seeded from it, the scenario and the run index)")
	flag.IntVar(&c.workers, "workers", runtime.NumCPU(), "canaries simulated in parallel")
	flag.StringVar(&c.out, "out", "bench/results/canary.md", "write the markdown report here (relative to the repository root)")
	flag.Float64Var(&c.m.ratio, "ratio", 1, "baseline requests per canary request")
	flag.Float64Var(&c.m.latencyMedian, "latency-median", 200, "median latency, ms")
	flag.Float64Var(&c.m.latencySigma, "latency-sigma", 0.5, "σ of log latency")
	flag.Float64Var(&c.m.quality, "quality", 0.85, "the baseline's quality pass rate")
	flag.Float64Var(&c.m.errorRate, "errors", 0.001, "the baseline's error rate")
	flag.IntVar(&c.burstLen, "burst", 5, "consecutive failed canary requests per error burst")
	flag.Float64Var(&c.burstErrors, "burst-errors", 0.005, "error rate the bursts add to the canary's")
	flag.Float64Var(&c.st.alpha, "alpha", 0.05, "Airlock: family-wise false-alarm rate")
	flag.IntVar(&c.st.look, "look", 25, "Airlock: canary requests between looks")
	flag.IntVar(&c.st.max, "max", 4000, "Airlock and Argo: the canary's maximum requests (passed there without a failure)")
	flag.Float64Var(&c.st.latencyTolerance, "latency-tolerance", 0, "Airlock: the latency metric's tolerance, relative (0: the null hypothesis Kayenta's judge tests, no regression)")
	flag.Float64Var(&c.st.qualityTolerance, "quality-tolerance", 0, "Airlock: the quality metric's tolerance, absolute (0: no regression, as Kayenta)")
	flag.StringVar(&grid, "grid", "100,150,200,300,400,600,800,1200,1600,2400,3200,4800,6400", "Kayenta: fixed windows, canary requests")
	flag.IntVar(&c.st.interval, "interval", 50, "Kayenta: requests per cohort in each interval of the per-interval metrics")
	flag.IntVar(&c.st.argoInterval, "argo-interval", 100, "Argo: canary requests per measurement")
	flag.Float64Var(&c.argoLatency, "argo-latency", 1.15, "Argo: the mean-latency threshold, times the baseline's true mean")
	flag.Float64Var(&c.st.argoQuality, "argo-quality", 0.80, "Argo: the pass-rate threshold (a measurement below it fails)")
	flag.Float64Var(&c.st.argoErrors, "argo-errors", 0.01, "Argo: the error-rate threshold (a measurement above it fails)")
	flag.IntVar(&c.st.argoFailureLimit, "argo-failure-limit", 0, "Argo: failureLimit (the metric fails when its failed measurements exceed it)")
	flag.Float64Var(&c.targetFA, "target-false-alarms", 0.05, "the false-alarm target")
	flag.Float64Var(&c.targetRatio, "target-ratio", 0.5, "the samples target: Airlock's mean samples at detection over Kayenta's window")
	flag.Float64Var(&c.fallback, "fallback-detection", 0.9, "the detection rate compared at when no Kayenta window reaches Airlock's")
	flag.Parse()
	var err error
	if c.st.grid, err = parseGrid(grid); err != nil {
		fail(2, err)
	}
	c.st.argoLatency = c.argoLatency * c.m.latencyMean()
	if err := c.check(); err != nil {
		fail(2, err)
	}
	if err := run(c); err != nil {
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "bench/canary:", err)
	os.Exit(code)
}

func parseGrid(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-grid: %q is not a positive number of requests", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (c config) check() error {
	switch {
	case c.runs < 1 || c.workers < 1:
		return fmt.Errorf("-runs and -workers must be positive")
	case c.m.ratio <= 0 || c.m.latencyMedian <= 0 || c.m.latencySigma <= 0:
		return fmt.Errorf("-ratio, -latency-median and -latency-sigma must be positive")
	case c.m.quality-0.05 <= 0 || c.m.quality >= 1 || c.m.errorRate < 0 || c.m.errorRate+c.burstErrors >= 1:
		return fmt.Errorf("-quality must be in (0.05, 1), -errors and -burst-errors small rates")
	case c.burstLen < 1:
		return fmt.Errorf("-burst must be positive")
	case !(c.st.alpha > 0 && c.st.alpha < 0.5):
		return fmt.Errorf("-alpha must be in (0, 0.5)")
	case c.st.look < 1 || c.st.max < c.st.look || c.st.interval < 1 || c.st.argoInterval < 1 || c.st.argoInterval > c.st.max:
		return fmt.Errorf("-look, -interval and -argo-interval must be positive, and -max at least -look and -argo-interval")
	}
	return nil
}

// runResult is every judge's decision on one simulated canary.
type runResult struct {
	airlock, argo outcome
	argoLooks     int
	kayenta       [kayentaFeeds][]kayentaVerdict
}

// timing is the time spent in each judge, summed over the workers.
type timing struct {
	generate, airlock, kayenta, argo time.Duration
	airlockLooks                     int
}

func run(c config) error {
	root, err := regtest.RepoRoot()
	if err != nil {
		return err
	}
	scens := scenarios(c.m, c.burstLen, c.burstErrors)
	n := max(c.st.max, maxGrid(c.st.grid))
	results := make([][]runResult, len(scens))
	for i := range results {
		results[i] = make([]runResult, c.runs)
	}
	benchkit.Logf("%d canaries × %d scenarios on %d workers; Kayenta windows %v", c.runs, len(scens), c.workers, c.st.grid)
	start := time.Now()
	jobs := make(chan [2]int)
	var wg sync.WaitGroup
	timings := make([]timing, c.workers)
	for w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &timings[w]
			for j := range jobs {
				si, ri := j[0], j[1]
				t0 := time.Now()
				cr := newCanaryRun(c.seed, si, ri, c.m, scens[si], n)
				t1 := time.Now()
				res := runResult{airlock: judgeAirlock(cr, c.m, c.st)}
				t2 := time.Now()
				noise := rand.New(rand.NewPCG(c.seed^0x5851f42d4c957f2d, uint64(si)<<32|uint64(ri)))
				res.kayenta = judgeKayenta(cr, c.m, c.st, noise)
				t3 := time.Now()
				res.argo = judgeArgo(cr, c.st)
				res.argoLooks = res.argo.samples / c.st.argoInterval
				t4 := time.Now()
				t.generate += t1.Sub(t0)
				t.airlock += t2.Sub(t1)
				t.kayenta += t3.Sub(t2)
				t.argo += t4.Sub(t3)
				t.airlockLooks += res.airlock.samples / c.st.look
				results[si][ri] = res
			}
		}()
	}
	for si := range scens {
		benchkit.Logf("scenario: %s", scens[si].name)
		for ri := range c.runs {
			jobs <- [2]int{si, ri}
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	var total timing
	for _, t := range timings {
		total.generate += t.generate
		total.airlock += t.airlock
		total.kayenta += t.kayenta
		total.argo += t.argo
		total.airlockLooks += t.airlockLooks
	}
	benchkit.Logf("done in %s", elapsed.Round(time.Millisecond))
	rep := summarize(c, scens, results)
	text := report(c, rep, elapsed, total)
	fmt.Print(text)
	return benchkit.WriteReport(root, c.out, text)
}
