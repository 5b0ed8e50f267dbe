// Command router measures what the canary router adds to a request, and
// that its kill-switch decides the next request. The target (the router
// issue): the router adds under 1 ms at p99 at 2,000 requests/s in front of
// a zero-latency upstream.
//
// It builds airlock and starts, as processes, a zero-latency upstream (this
// command with -upstream-serve: two listeners, "stable" and "canary", each
// answering every request at once with a small fixed chat completion, usage
// included) and `airlock router serve` in front of it, the canary at 50%,
// with refusal patterns and prices set so that every answer is read and
// costed. An open-loop load generator (a Go client keeping its
// connections) sends the same non-streamed chat completion at -rate
// requests/s for -duration after a -warmup, first straight to the stable
// upstream, then through the router, for -rounds rounds; latency is
// measured from the moment each request was due, so a slow answer delays
// nothing else. Every answer must be a 200.
//
// With -pin (Linux, taskset) the router runs on the machine's last CPU
// alone and the load generator and upstream on the others, for both paths.
//
// Then the kill-switch: with the canary at 100%, -flips times it turns the
// switch on through the admin API and checks that the first request sent
// after the PUT returns is answered by stable, then turns it off and
// checks that the next goes to the canary.
//
// Usage (from the repository root):
//
//	go run ./bench/router                          # 2000/s, 20s per side and round
//	go run ./bench/router -pin                     # the router on the last CPU alone, the rest on the others
//	go run ./bench/router -rate 500 -duration 3s -rounds 1 -out bench/results/router-smoke.md
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/gate/canary/router"
	"github.com/airlock-dev/airlock/registry/regtest"
)

type config struct {
	rate             int
	duration, warmup time.Duration
	rounds           int
	flips            int
	target           time.Duration
	gomaxprocs       int // the router's, 0 for Go's default
	pin              bool
	out              string
	upstream         string // internal: serve the upstreams on these addresses
}

func main() {
	var c config
	flag.IntVar(&c.rate, "rate", 2000, "requests per second, open loop")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "timed load per side and round")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "untimed load before each timed run (opens connections)")
	flag.IntVar(&c.rounds, "rounds", 2, "rounds of direct, then through the router")
	flag.IntVar(&c.flips, "flips", 200, "kill-switch flips checked")
	flag.DurationVar(&c.target, "target", time.Millisecond, "the most the router may add at p99")
	flag.IntVar(&c.gomaxprocs, "router-gomaxprocs", 0, "run the router with GOMAXPROCS=N (0: Go's default, the CPUs it may use)")
	flag.BoolVar(&c.pin, "pin", false, "run the router on the last CPU and the load generator and upstream on the others (taskset), as a proxy has cores of its own in production")
	flag.StringVar(&c.out, "out", "bench/results/router.md", "write the markdown report here (relative to the repository root)")
	flag.StringVar(&c.upstream, "upstream-serve", "", "internal: serve the zero-latency upstreams on STABLE_ADDR,CANARY_ADDR")
	flag.Parse()
	if c.upstream != "" {
		if err := serveUpstreams(strings.Split(c.upstream, ",")); err != nil {
			fmt.Fprintln(os.Stderr, "bench/router: upstream:", err)
			os.Exit(1)
		}
		return
	}
	if c.rate < 1 || c.duration <= 0 || c.warmup < 0 || c.rounds < 1 || c.flips < 0 {
		fmt.Fprintln(os.Stderr, "bench/router: -rate, -duration and -rounds must be positive")
		os.Exit(2)
	}
	if c.pin && os.Getenv(pinnedEnv) == "" {
		// Run again confined to the other CPUs: the load generator is
		// this process, and the upstream its child.
		if machineCPUs() < 2 {
			fmt.Fprintln(os.Stderr, "bench/router: -pin needs at least 2 CPUs")
			os.Exit(2)
		}
		self, err := os.Executable()
		if err == nil {
			cmd := exec.Command("taskset", append([]string{"-c", cpuList(0, machineCPUs()-2), self}, os.Args[1:]...)...)
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", pinnedEnv, machineCPUs()))
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err = cmd.Run(); err == nil {
				return
			}
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "bench/router: -pin: taskset:", err)
		os.Exit(1)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/router:", err)
		os.Exit(1)
	}
}

// pinnedEnv marks the run that -pin started under taskset, with the
// machine's number of CPUs (the run itself sees only those it may use).
const pinnedEnv = "AIRLOCK_BENCH_ROUTER_PINNED"

// machineCPUs is the number of CPUs of the machine, pinned or not.
func machineCPUs() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(pinnedEnv), &n); err == nil && n > 0 {
		return n
	}
	return runtime.NumCPU()
}

// cpuList is taskset's list of CPUs from to to.
func cpuList(from, to int) string {
	if from == to {
		return fmt.Sprint(from)
	}
	return fmt.Sprintf("%d-%d", from, to)
}

// serveUpstreams answers every request on each address at once with a
// fixed chat completion naming the address's variant.
func serveUpstreams(addrs []string) error {
	errc := make(chan error, len(addrs))
	for i, a := range addrs {
		name := []string{router.Stable, router.Canary}[min(i, 1)]
		body := []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,` +
			`"message":{"role":"assistant","content":"The capital of France is Paris (` + name + `)."},"logprobs":null,"finish_reason":"stop"}],` +
			`"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}` + "\n")
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
		srv := &http.Server{Addr: a, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- srv.ListenAndServe() }()
	}
	return <-errc
}

type proc struct {
	cmd *exec.Cmd
	log *regtest.LockedBuffer
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func start(env []string, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	log := &regtest.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, log: log}, nil
}

const request = `{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France?"}],"max_tokens":32,"temperature":0}`

func run(c config) error {
	root, err := regtest.RepoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-router-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "airlock")
	benchkit.Logf("building airlock")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd", "airlock")).CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	var addrs [4]string
	for i := range addrs {
		if addrs[i], err = regtest.FreeLoopbackAddr(); err != nil {
			return err
		}
	}
	stableAddr, canaryAddr, proxyAddr, adminAddr := addrs[0], addrs[1], addrs[2], addrs[3]
	self, err := os.Executable()
	if err != nil {
		return err
	}
	up, err := start(nil, self, "-upstream-serve", stableAddr+","+canaryAddr)
	if err != nil {
		return err
	}
	defer up.stop()
	cfgFile := filepath.Join(work, "router.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, `listen: %s
admin: {listen: %s}
stable: {url: "http://%s", digest: "sha256:%064x"}
canary: {url: "http://%s", digest: "sha256:%064x"}
weight: 50
safety: {refusal_patterns: ["I can't help with that", "I cannot assist"]}
prices: {stable: {prompt_per_1k: 0.0005, completion_per_1k: 0.0015}, canary: {prompt_per_1k: 0.0005, completion_per_1k: 0.0015}}
`, proxyAddr, adminAddr, stableAddr, 1, canaryAddr, 2), 0o644); err != nil {
		return err
	}
	var env []string
	if c.gomaxprocs > 0 {
		env = []string{fmt.Sprintf("GOMAXPROCS=%d", c.gomaxprocs)}
	}
	name, args := bin, []string{"router", "serve", "--config", cfgFile, "--log-level", "warn"}
	if c.pin {
		last := machineCPUs() - 1
		name, args = "taskset", append([]string{"-c", cpuList(last, last), bin}, args...)
	}
	rt, err := start(env, name, args...)
	if err != nil {
		return err
	}
	defer rt.stop()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     time.Minute,
	}}
	for _, u := range []string{"http://" + stableAddr + "/v1/models", "http://" + adminAddr + "/healthz"} {
		if err := waitHTTP(hc, u); err != nil {
			return fmt.Errorf("%w\nrouter log:\n%s", err, benchkit.Tail(rt.log.String(), 20))
		}
	}

	sides := []struct{ name, url string }{
		{"direct to the upstream", "http://" + stableAddr + "/v1/chat/completions"},
		{"through airlock router serve", "http://" + proxyAddr + "/v1/chat/completions"},
	}
	lat := make([][]time.Duration, len(sides))
	achieved := make([]float64, len(sides))
	cpu := make([][3]time.Duration, len(sides)) // load generator, router, upstream
	for round := range c.rounds {
		for i, side := range sides {
			benchkit.Logf("round %d, %s: warm-up %s at %d/s", round+1, side.name, c.warmup, c.rate)
			if _, _, err := load(hc, side.url, c.rate, c.warmup); err != nil {
				return fmt.Errorf("%s: %w", side.name, err)
			}
			benchkit.Logf("round %d, %s: %s at %d/s", round+1, side.name, c.duration, c.rate)
			before := cpuTimes(up, rt)
			l, rate, err := load(hc, side.url, c.rate, c.duration)
			after := cpuTimes(up, rt)
			for k := range after {
				cpu[i][k] += after[k] - before[k]
			}
			if err != nil {
				return fmt.Errorf("%s: %w\nrouter log:\n%s", side.name, err, benchkit.Tail(rt.log.String(), 20))
			}
			s := summarize(l)
			benchkit.Logf("round %d, %s: p50 %s, p99 %s, %.0f/s", round+1, side.name, ms(s.p50), ms(s.p99), rate)
			lat[i] = append(lat[i], l...)
			achieved[i] += rate / float64(c.rounds)
		}
	}
	benchkit.Logf("kill-switch: %d flips", c.flips)
	kill, err := killSwitch(hc, "http://"+proxyAddr, "http://"+adminAddr, c.flips)
	if err != nil {
		return fmt.Errorf("kill-switch: %w\nrouter log:\n%s", err, benchkit.Tail(rt.log.String(), 20))
	}
	return report(c, root, sides[0].name, sides[1].name, summarize(lat[0]), summarize(lat[1]), achieved, cpu, kill, readMetrics(hc, "http://"+adminAddr+"/metrics"))
}

// cpuTimes is the CPU time used so far by this process (the load
// generator), the router and the upstream.
func cpuTimes(up, rt *proc) [3]time.Duration {
	return [3]time.Duration{benchkit.CPUTime(os.Getpid()), benchkit.CPUTime(rt.cmd.Process.Pid), benchkit.CPUTime(up.cmd.Process.Pid)}
}

type stats struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func summarize(lat []time.Duration) stats {
	s := slices.Clone(lat)
	slices.Sort(s)
	pct := func(p float64) time.Duration {
		return s[max(0, min(len(s)-1, int(float64(len(s))*p/100+0.999999)-1))]
	}
	return stats{n: len(s), p50: pct(50), p90: pct(90), p99: pct(99), max: s[len(s)-1]}
}

// load sends the request to url at rate per second for d, open loop, and
// times each answer from when it was due. Any error or status other than
// 200 fails the run.
func load(hc *http.Client, url string, rate int, d time.Duration) ([]time.Duration, float64, error) {
	total := int(d.Seconds() * float64(rate))
	if total == 0 {
		return nil, 0, nil
	}
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	body := []byte(request)
	begin := time.Now()
	for i := range total {
		due := begin.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		wg.Go(func() {
			res, err := hc.Post(url, "application/json", bytes.NewReader(body))
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err == nil && res.StatusCode != http.StatusOK {
					err = errors.New(res.Status)
				}
			}
			lat[i] = time.Since(due)
			if err != nil {
				errOnce.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if first != nil {
		return nil, 0, first
	}
	return lat, float64(total) / elapsed.Seconds(), nil
}

type killResult struct {
	checked, passed int
	firstFailure    string
}

// killSwitch moves all traffic to the canary, then flips the kill-switch
// n times, checking the first request after each change.
func killSwitch(hc *http.Client, proxy, admin string, n int) (killResult, error) {
	ctx := context.Background()
	c := router.NewClient(admin, "", hc)
	if err := c.SetWeight(ctx, 100); err != nil {
		return killResult{}, err
	}
	var r killResult
	ask := func(want string) error {
		res, err := hc.Post(proxy+"/v1/chat/completions", "application/json", strings.NewReader(request))
		if err != nil {
			return err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		r.checked++
		if res.StatusCode == http.StatusOK && strings.Contains(string(b), "("+want+")") && res.Header.Get(router.VariantHeader) == want {
			r.passed++
		} else if r.firstFailure == "" {
			r.firstFailure = fmt.Sprintf("want %s, got %s %s (%s)", want, res.Status, res.Header.Get(router.VariantHeader), strings.TrimSpace(string(b)))
		}
		return nil
	}
	for range n {
		if err := c.KillSwitch(ctx, true, "bench"); err != nil {
			return r, err
		}
		if err := ask(router.Stable); err != nil {
			return r, err
		}
		if err := c.KillSwitch(ctx, false, ""); err != nil {
			return r, err
		}
		if err := ask(router.Canary); err != nil {
			return r, err
		}
	}
	return r, c.SetWeight(ctx, 50)
}

func readMetrics(hc *http.Client, url string) string {
	res, err := hc.Get(url)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, p := range []string{"airlock_router_requests_total", "airlock_router_errors_total", "airlock_router_shed_total", "airlock_router_tokens_total"} {
			if strings.HasPrefix(l, p) && !strings.HasSuffix(l, " 0") {
				keep = append(keep, l)
			}
		}
	}
	return strings.Join(keep, "\n")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func report(c config, root, directName, routerName string, direct, via stats, achieved []float64, cpu [][3]time.Duration, kill killResult, metrics string) error {
	procs := "Go's default GOMAXPROCS"
	if c.gomaxprocs > 0 {
		procs = fmt.Sprintf("GOMAXPROCS=%d", c.gomaxprocs)
	}
	share := "Load generator, router and upstream share the machine"
	if c.pin {
		last := machineCPUs() - 1
		share = fmt.Sprintf("Pinned (-pin, taskset): the router on CPU %d alone; the load generator and upstream on CPU %s, on both paths", last, cpuList(0, last-1))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# router: added latency at %d requests/s, and the kill-switch\n\n", c.rate)
	fmt.Fprintf(&b, "Command: `go run ./bench/router %s`; %s/%s, %d CPUs, %s. Open loop, %d round(s) of %s per side after a %s warm-up each; "+
		"latency from when each request was due to the end of its answer, over kept HTTP/1.1 connections. "+
		"The upstream answers a non-streamed chat completion at once; the router splits 50/50 between two such upstreams and reads and costs every answer. "+
		"%s; the router runs with %s. Every answer was a 200.\n\n",
		strings.Join(os.Args[1:], " "), runtime.GOOS, runtime.GOARCH, machineCPUs(), runtime.Version(), c.rounds, c.duration, c.warmup, share, procs)
	fmt.Fprintf(&b, "| path | requests | achieved/s | p50 | p90 | p99 | max | CPU per request: load generator, router, upstream |\n|---|---|---|---|---|---|---|---|\n")
	us := func(d time.Duration, n int) string {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)/float64(n))
	}
	for i, r := range []struct {
		name string
		s    stats
	}{{directName, direct}, {routerName, via}} {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %s | %s | %s, %s, %s |\n", r.name, r.s.n, achieved[i], ms(r.s.p50), ms(r.s.p90), ms(r.s.p99), ms(r.s.max),
			us(cpu[i][0], r.s.n), us(cpu[i][1], r.s.n), us(cpu[i][2], r.s.n))
	}
	added := via.p99 - direct.p99
	verdict := "meets"
	if added >= c.target {
		verdict = "MISSES"
	}
	fmt.Fprintf(&b, "\nThe router adds %s at p99 (%s through it, %s direct; %.2f× the direct p99) and %s at p50: it %s the target of under %s at p99 at %d/s.\n",
		ms(added), ms(via.p99), ms(direct.p99), float64(via.p99)/float64(direct.p99), ms(via.p50-direct.p50), verdict, ms(c.target), c.rate)
	pass := "PASS"
	if kill.passed != kill.checked {
		pass = "FAIL"
	}
	fmt.Fprintf(&b, "\nKill-switch on the next request: %s, %d of %d requests sent right after a PUT /admin/kill-switch returned went where the switch said "+
		"(on: stable, with the canary at 100%%; off: the canary), over %d flips each way.\n", pass, kill.passed, kill.checked, c.flips)
	if kill.firstFailure != "" {
		fmt.Fprintf(&b, "First failure: %s\n", kill.firstFailure)
	}
	if metrics != "" {
		fmt.Fprintf(&b, "\nThe router's counters after the run:\n\n```\n%s\n```\n", metrics)
	}
	fmt.Print(b.String())
	return benchkit.WriteReport(root, c.out, b.String())
}

func waitHTTP(hc *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := hc.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(res.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
