// Command gate measures the policy gate's decision latency. The target
// (the gate issue) is a decision under 1 ms at the 99th percentile with a
// prepared query, on an input with 200 metrics.
//
// The input is policies/testdata/base.yaml (a release that passes every
// built-in policy) plus -metrics entries in metrics and as many matching
// limits in slo.metrics, so that the metric_limits policy checks every one.
// Airlock's engine (gate/rego) prepares the built-in policies once and
// decides -decisions times, one by one, through DecideJSON, after a
// warm-up; each decision is timed. Two references decide the same input:
//
//   - in process, unprepared: rego.New (parse and compile) and one
//     DecideJSON per decision, what an embedder that does not keep the
//     prepared query pays (-unprepared-runs decisions);
//   - the opa eval CLI of the OPA module in go.mod (built once into a
//     temporary directory), on the same policies and input
//     (-opa-runs runs), process start and policy loading included.
//
// Every side must pass the input (no deny) before anything is timed.
//
// Usage (from the repository root):
//
//	go run ./bench/gate                          # 20000 decisions, 30 opa eval runs
//	go run ./bench/gate -decisions 2000 -opa-runs 3 -unprepared-runs 20 -out bench/results/gate-smoke.md
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/rego"
	"github.com/airlock-dev/airlock/policies"
	"github.com/airlock-dev/airlock/registry/regtest"
)

// decisionTime is the clock base.yaml is decided at: its evidence is
// fresh and its approval unexpired then.
var decisionTime = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const opaModule = "github.com/open-policy-agent/opa"

type config struct {
	decisions, warmup, unprepared, opaRuns, metrics int
	target                                          time.Duration
	opaBin, out                                     string
	limits                                          int
	gcLimit                                         int64
}

func main() {
	var c config
	flag.IntVar(&c.decisions, "decisions", 20000, "timed decisions with the prepared engine")
	flag.IntVar(&c.warmup, "warmup", 500, "untimed decisions before them")
	flag.IntVar(&c.unprepared, "unprepared-runs", 200, "timed decisions that prepare the policies each time (in process)")
	flag.IntVar(&c.opaRuns, "opa-runs", 30, "timed runs of opa eval (0: skip the CLI reference)")
	flag.IntVar(&c.metrics, "metrics", 200, "metrics added to the input")
	flag.IntVar(&c.limits, "limits", -1, "how many of those metrics carry a limit in slo.metrics (default: all)")
	flag.DurationVar(&c.target, "target", time.Millisecond, "the p99 target the report checks the prepared engine against")
	flag.StringVar(&c.opaBin, "opa", "", "an opa binary to use instead of building "+opaModule+" from go.mod")
	flag.StringVar(&c.out, "out", "bench/results/gate.md", "write the markdown report here (relative to the repository root)")
	flag.Int64Var(&c.gcLimit, "gc-limit", 256<<20, "memory limit in bytes of the server GC configuration (GOGC=off, GOMEMLIMIT=this); 0 skips that run")
	flag.Parse()
	if c.decisions < 1 || c.unprepared < 1 || c.warmup < 0 || c.opaRuns < 0 || c.metrics < 0 {
		fmt.Fprintln(os.Stderr, "bench/gate: -decisions and -unprepared-runs must be positive, -warmup, -opa-runs and -metrics not negative")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/gate:", err)
		os.Exit(1)
	}
}

// stats summarise one side's per-decision durations.
type stats struct {
	n                        int
	p50, p90, p99, max, mean time.Duration
	total                    time.Duration
	// Over the timed decisions, for the prepared runs: bytes allocated
	// per decision, and GC cycles that completed per 1000 decisions.
	bytesPer, gcPer1000 float64
}

// gcCounters reads the runtime's cumulative allocation and GC cycle
// counts.
func gcCounters() (bytes, cycles uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

func summarize(ds []time.Duration) stats {
	s := slices.Clone(ds)
	slices.Sort(s)
	var total time.Duration
	for _, d := range s {
		total += d
	}
	return stats{n: len(s), p50: benchkit.Median(s), p90: percentile(s, 90), p99: percentile(s, 99),
		max: s[len(s)-1], mean: total / time.Duration(len(s)), total: total}
}

// percentile is the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (s stats) perSecond() float64 {
	if s.total <= 0 {
		return 0
	}
	return float64(s.n) / s.total.Seconds()
}

// input is base.yaml with n metrics and their limits, as a JSON-ready
// document.
func input(root string, n, nlimits int) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(root, "policies", "testdata", "base.yaml"))
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("base.yaml: %w", err)
	}
	metrics, ok1 := doc["metrics"].(map[string]any)
	slo, ok2 := doc["slo"].(map[string]any)
	if !ok1 || !ok2 {
		return nil, errors.New("base.yaml: metrics or slo is not a mapping")
	}
	limits, ok := slo["metrics"].(map[string]any)
	if !ok {
		limits = map[string]any{}
		slo["metrics"] = limits
	}
	for i := range n {
		name := fmt.Sprintf("bench.custom_%03d", i)
		v := float64(i) + 0.5
		metrics[name] = v
		if nlimits < 0 || i < nlimits {
			limits[name] = map[string]any{"max": v + 1}
		}
	}
	return doc, nil
}

// shiftTimes moves every RFC 3339 timestamp in doc by d, so that a
// decision taken d after decisionTime sees the same ages and expiries.
func shiftTimes(v any, d time.Duration) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = shiftTimes(e, d)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = shiftTimes(e, d)
		}
		return out
	case string:
		if t, err := time.Parse(time.RFC3339, x); err == nil {
			return t.Add(d).UTC().Format(time.RFC3339)
		}
	case time.Time:
		return x.Add(d).UTC().Format(time.RFC3339)
	}
	return v
}

func reasons(rs []gate.Reason) string {
	var ss []string
	for _, r := range rs {
		ss = append(ss, r.Policy+": "+r.Msg)
	}
	return strings.Join(ss, "; ")
}

// checkPass fails unless d passed.
func checkPass(d *gate.Decision, what string) error {
	if d.Outcome != gate.Pass {
		return fmt.Errorf("%s: outcome %s, want pass (%s)", what, d.Outcome, reasons(d.Deny))
	}
	return nil
}

// buildOPA builds the opa CLI of go.mod's OPA module into dir. It builds
// against copies of go.mod and go.sum (-modfile), so that sums the CLI's
// own dependencies need are recorded there and the repository's files
// are left alone.
func buildOPA(root, dir string) (string, error) {
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "opa")
	cmd := exec.Command("go", "build", "-mod=mod", "-modfile="+filepath.Join(dir, "go.mod"), "-o", bin, opaModule)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", opaModule, err, benchkit.Tail(string(out), 20))
	}
	return bin, nil
}

func opaVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// checkOPA reads opa eval's JSON output of data.airlock.gate and fails
// unless every policy is there with an empty deny set.
func checkOPA(out []byte, want []string) error {
	var r struct {
		Result []struct {
			Expressions []struct {
				Value map[string]struct {
					Deny []any `json:"deny"`
				} `json:"value"`
			} `json:"expressions"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("opa eval output: %w: %s", err, benchkit.Tail(string(out), 5))
	}
	if len(r.Result) != 1 || len(r.Result[0].Expressions) != 1 {
		return fmt.Errorf("opa eval: want one result of one expression: %s", benchkit.Tail(string(out), 5))
	}
	tree := r.Result[0].Expressions[0].Value
	var denies []string
	for _, p := range want {
		pkg, ok := tree[p]
		if !ok {
			return fmt.Errorf("opa eval: policy %s missing from data.%s", p, rego.Root)
		}
		for _, d := range pkg.Deny {
			b, _ := json.Marshal(d)
			denies = append(denies, p+": "+string(b))
		}
	}
	if len(denies) > 0 {
		return fmt.Errorf("opa eval denies the input the engine passes: %s", strings.Join(denies, "; "))
	}
	return nil
}

// runOPA times runs of opa eval on the modules and the input doc.
func runOPA(ctx context.Context, c config, root string, modules []rego.Module, doc map[string]any, policyNames []string) (stats, string, error) {
	dir, err := os.MkdirTemp("", "bench-gate-")
	if err != nil {
		return stats{}, "", err
	}
	defer os.RemoveAll(dir)
	bin := c.opaBin
	if bin == "" {
		benchkit.Logf("building the opa CLI (%s, go.mod's version)", opaModule)
		if bin, err = buildOPA(root, dir); err != nil {
			return stats{}, "", err
		}
	}
	version := opaVersion(bin)
	pdir := filepath.Join(dir, "policies")
	if err := os.Mkdir(pdir, 0o755); err != nil {
		return stats{}, "", err
	}
	for _, m := range modules {
		if m.IsTest() {
			continue
		}
		p := filepath.Join(pdir, filepath.FromSlash(m.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return stats{}, "", err
		}
		if err := os.WriteFile(p, m.Source, 0o644); err != nil {
			return stats{}, "", err
		}
	}
	// opa eval decides at the wall clock (time.now_ns), not decisionTime:
	// move the input's timestamps by the difference so that ages and
	// expiries are those the engine sees.
	shifted := shiftTimes(doc, time.Since(decisionTime))
	raw, err := json.Marshal(shifted)
	if err != nil {
		return stats{}, "", err
	}
	in := filepath.Join(dir, "input.json")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		return stats{}, "", err
	}
	args := []string{"eval", "-d", pdir, "-i", in, "--format", "json", "--strict-builtin-errors", "data." + rego.Root}
	benchkit.Logf("opa %s: %d runs of opa %s", version, c.opaRuns, strings.Join(args, " "))
	ds := make([]time.Duration, 0, c.opaRuns)
	for i := range c.opaRuns {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return stats{}, "", fmt.Errorf("opa eval: %w\n%s", err, benchkit.Tail(stderr.String(), 20))
		}
		if i == 0 {
			if err := checkOPA(stdout.Bytes(), policyNames); err != nil {
				return stats{}, "", err
			}
		}
		ds = append(ds, d)
	}
	return summarize(ds), version, nil
}

func run(c config) error {
	ctx := context.Background()
	root, err := regtest.RepoRoot()
	if err != nil {
		return err
	}
	modules, err := rego.LoadFS(policies.FS, true)
	if err != nil {
		return err
	}
	doc, err := input(root, c.metrics, c.limits)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding the input: %w", err)
	}
	opts := rego.Options{Now: func() time.Time { return decisionTime }}

	start := time.Now()
	eng, err := rego.New(ctx, modules, opts)
	if err != nil {
		return err
	}
	prepare := time.Since(start)
	if err := checkPass(eng.DecideJSON(ctx, raw), "prepared engine"); err != nil {
		return err
	}
	benchkit.Logf("input: %d bytes, %d metrics with limits; %d policies prepared in %s",
		len(raw), c.metrics, len(eng.Policies()), prepare.Round(time.Microsecond))

	// Prepared: the target, with the runtime's GC settings as given
	// (Go's defaults unless GOGC or GOMEMLIMIT are set)...
	prepared, err := decideMany(ctx, eng, raw, c.warmup, c.decisions)
	if err != nil {
		return err
	}
	benchkit.Logf("prepared: %d decisions, p50 %s, p99 %s, %.0f GC cycles per 1000", prepared.n, prepared.p50, prepared.p99, prepared.gcPer1000)

	// ...and as a server that hosts the engine runs: the collector held
	// off until the heap reaches a memory limit (GOGC=off,
	// GOMEMLIMIT=-gc-limit). The warm-up runs until a cycle has completed
	// at that limit, so that the heap has been touched once.
	var server stats
	if c.gcLimit > 0 {
		oldPercent := debug.SetGCPercent(-1)
		oldLimit := debug.SetMemoryLimit(c.gcLimit)
		_, cycles := gcCounters()
		warm := 0
		for ; warm < 1_000_000; warm++ {
			if _, now := gcCounters(); now > cycles+1 {
				break
			}
			eng.DecideJSON(ctx, raw)
		}
		server, err = decideMany(ctx, eng, raw, 0, c.decisions)
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
		if err != nil {
			return err
		}
		benchkit.Logf("prepared, server GC: %d warm-up decisions; %d decisions, p50 %s, p99 %s, %.1f GC cycles per 1000",
			warm, server.n, server.p50, server.p99, server.gcPer1000)
	}

	// In process, unprepared: parse, compile and decide each time.
	runtime.GC()
	ds := make([]time.Duration, c.unprepared)
	for i := range ds {
		t := time.Now()
		e, err := rego.New(ctx, modules, opts)
		if err != nil {
			return err
		}
		d := e.DecideJSON(ctx, raw)
		ds[i] = time.Since(t)
		if d.Outcome != gate.Pass {
			return checkPass(d, fmt.Sprintf("unprepared engine, decision %d", i))
		}
	}
	unprepared := summarize(ds)
	benchkit.Logf("unprepared: %d decisions, p50 %s, p99 %s", unprepared.n, unprepared.p50, unprepared.p99)

	var cli stats
	opaVer := ""
	if c.opaRuns > 0 {
		if cli, opaVer, err = runOPA(ctx, c, root, modules, doc, eng.Policies()); err != nil {
			return err
		}
		benchkit.Logf("opa eval: %d runs, p50 %s, p99 %s", cli.n, cli.p50, cli.p99)
	}
	return report(c, root, len(raw), prepare, len(eng.Policies()), prepared, server, unprepared, cli, opaVer)
}

// decideMany times n prepared decisions after warmup untimed ones.
func decideMany(ctx context.Context, eng *rego.Engine, raw []byte, warmup, n int) (stats, error) {
	for range warmup {
		eng.DecideJSON(ctx, raw)
	}
	runtime.GC()
	ds := make([]time.Duration, n)
	b0, c0 := gcCounters()
	for i := range ds {
		t := time.Now()
		d := eng.DecideJSON(ctx, raw)
		ds[i] = time.Since(t)
		if d.Outcome != gate.Pass {
			return stats{}, checkPass(d, fmt.Sprintf("prepared engine, decision %d", i))
		}
	}
	b1, c1 := gcCounters()
	s := summarize(ds)
	s.bytesPer = float64(b1-b0) / float64(n)
	s.gcPer1000 = float64(c1-c0) * 1000 / float64(n)
	return s, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func report(c config, root string, size int, prepare time.Duration, npol int, prepared, server, unprepared, cli stats, opaVer string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# gate: one decision on an input with %d metrics\n\n", c.metrics)
	fmt.Fprintf(&b, "Command: `go run ./bench/gate %s`; %s/%s, %d CPUs, %s.\n\n",
		strings.Join(os.Args[1:], " "), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "Input: policies/testdata/base.yaml with %d metrics added, %d of them with a limit in slo.metrics (besides the base's own; %d bytes of JSON); "+
		"%d built-in policies, prepared once in %s; decided at %s. Every side passes the input (no deny).\n\n",
		c.metrics, nlimits(c), size, npol, ms(prepare), decisionTime.Format(time.RFC3339))
	fmt.Fprintf(&b, "| path | decisions | p50 | p90 | p99 | max | mean | decisions/s | p50 vs prepared |\n|---|---|---|---|---|---|---|---|---|\n")
	row := func(name string, s stats) {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %.0f | %.1f× |\n", name, s.n, ms(s.p50), ms(s.p90), ms(s.p99),
			ms(s.max), ms(s.mean), s.perSecond(), float64(s.p50)/float64(prepared.p50))
	}
	row(fmt.Sprintf("airlock, prepared (DecideJSON; %d warm-up), %s", c.warmup, gcSetting()), prepared)
	if server.n > 0 {
		row(fmt.Sprintf("airlock, prepared, server GC (GOGC=off, GOMEMLIMIT=%d MiB)", c.gcLimit>>20), server)
	}
	row("airlock in process, unprepared (rego.New + DecideJSON)", unprepared)
	if cli.n > 0 {
		row(fmt.Sprintf("opa eval CLI %s (process per decision)", opaVer), cli)
	}
	fmt.Fprintln(&b)
	verdict := func(s stats) string {
		if s.p99 < c.target {
			return "meets"
		}
		return "MISSES"
	}
	fmt.Fprintf(&b, "Prepared, %s: p99 %s %s the target of p99 < %s (%.2f of it); %.0f kB allocated per decision, %.1f GC cycles completed per 1000 decisions.\n",
		gcSetting(), ms(prepared.p99), verdict(prepared), c.target, float64(prepared.p99)/float64(c.target), prepared.bytesPer/1024, prepared.gcPer1000)
	if server.n > 0 {
		fmt.Fprintf(&b, "Prepared, server GC: p99 %s %s the target (%.2f of it); %.1f GC cycles per 1000 decisions.\n",
			ms(server.p99), verdict(server), float64(server.p99)/float64(c.target), server.gcPer1000)
	}
	fmt.Fprintf(&b, "Unprepared p50 / prepared p50: %.1f×.", float64(unprepared.p50)/float64(prepared.p50))
	if cli.n > 0 {
		fmt.Fprintf(&b, " opa eval CLI p50 / prepared p50: %.1f× (the CLI pays a process start and parses and compiles the policies each run; "+
			"its input's timestamps are moved to the wall clock, since opa eval decides at the current time).", float64(cli.p50)/float64(prepared.p50))
	} else {
		fmt.Fprintf(&b, " No opa eval reference this run (-opa-runs 0).")
	}
	fmt.Fprintln(&b)
	fmt.Print(b.String())
	return benchkit.WriteReport(root, c.out, b.String())
}

// gcSetting names the runtime's GC configuration for the first run.
func gcSetting() string {
	g, l := os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT")
	if g == "" && l == "" {
		return "Go's default GC (GOGC=100)"
	}
	return fmt.Sprintf("GOGC=%s GOMEMLIMIT=%s", cmp.Or(g, "100"), cmp.Or(l, "unset"))
}

// nlimits is how many metrics carry a limit.
func nlimits(c config) int {
	if c.limits < 0 || c.limits > c.metrics {
		return c.metrics
	}
	return c.limits
}
