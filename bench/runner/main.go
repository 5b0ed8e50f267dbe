// Command runner measures what the runner itself costs per request, against
// a plain Go loop of net/http requests to the same server as the floor:
//
//   - closed loop at each -concurrency: requests per second, per-request
//     latency percentiles (for the runner: from the moment a stream is free
//     to the end of the response, so scheduling, the timeline and the SSE
//     parser are all inside it), and the runner's overhead as the runner's
//     percentile minus the floor's, plus client CPU per request;
//   - open loop at -rate requests per second (constant arrivals, capped at
//     -cap in flight): the rate achieved and the schedule lag.
//
// The server is a stub named as one: a separate process (this binary
// with -serve) answering every chat request with the same pre-encoded
// stream (role chunk, -tokens content chunks, finish, usage, [DONE]) at
// once, so what is measured is the client. Runs alternate floor and runner;
// medians of -runs are reported.
//
// Usage (from the repository root):
//
//	go run ./bench/runner                       # 5 runs of 20000 requests
//	go run ./bench/runner -requests 2000 -runs 1 -out bench/results/runner-smoke.md
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/openai"
)

type config struct {
	requests    int
	runs        int
	concurrency []int
	rate        float64
	cap         int
	tokens      int
	out         string
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-serve" {
		os.Exit(serve(os.Args[2]))
	}
	os.Exit(run())
}

func run() int {
	cfg := config{}
	fs := flag.NewFlagSet("runner", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/runner [flags]\n\n"+
			"Measures the runner's per-request overhead and throughput against a plain\n"+
			"net/http loop, both driving the same zero-latency stub server.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.requests, "requests", 20000, "requests per closed-loop run")
	fs.IntVar(&cfg.runs, "runs", 5, "runs of each (medians are reported)")
	conc := fs.String("concurrency", "1,16,128", "closed-loop concurrencies, comma-separated")
	fs.Float64Var(&cfg.rate, "rate", 10000, "open loop: constant arrival rate (requests/s)")
	fs.IntVar(&cfg.cap, "cap", 256, "open loop: cap on requests in flight")
	fs.IntVar(&cfg.tokens, "tokens", 4, "content chunks in each stub response")
	fs.StringVar(&cfg.out, "out", "bench/results/runner.md", "write the markdown report here (relative to the repository root; empty: stdout only)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 64
	}
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "-concurrency %q: want positive integers\n", *conc)
			return 64
		}
		cfg.concurrency = append(cfg.concurrency, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := measure(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/runner:", err)
		return 1
	}
	fmt.Print(report)
	root, _ := os.Getwd()
	if err := benchkit.WriteReport(root, cfg.out, report); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// serve is the stub server: every chat request gets the same stream.
func serve(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tokens := 4
	if v := os.Getenv("STUB_TOKENS"); v != "" {
		tokens, _ = strconv.Atoi(v)
	}
	var b bytes.Buffer
	b.WriteString(`data: {"id":"s","object":"chat.completion.chunk","model":"stub","choices":[{"index":0,"delta":{"role":"assistant"}}]}` + "\n\n")
	for range tokens {
		b.WriteString(`data: {"id":"s","object":"chat.completion.chunk","model":"stub","choices":[{"index":0,"delta":{"content":" tok"}}]}` + "\n\n")
	}
	b.WriteString(`data: {"id":"s","object":"chat.completion.chunk","model":"stub","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}` + "\n\n")
	fmt.Fprintf(&b, `data: {"id":"s","object":"chat.completion.chunk","model":"stub","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", tokens, tokens+3)
	b.WriteString("data: [DONE]\n\n")
	stream := b.Bytes()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"stub","object":"model"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(stream)
	})
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: mux}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
		<-ch
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type closedResult struct {
	rps      float64
	p50, p99 time.Duration
	cpu      time.Duration // client CPU per request
	errors   int
}

type openResult struct {
	achieved         float64
	lagP50, lagP99   time.Duration
	errors, requests int
}

func measure(ctx context.Context, cfg config) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	srv := exec.Command(self, "-serve", "127.0.0.1:0")
	srv.Env = append(os.Environ(), "STUB_TOKENS="+strconv.Itoa(cfg.tokens))
	srv.Stderr = os.Stderr
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := srv.Start(); err != nil {
		return "", err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("stub server: %w", err)
	}
	base := "http://" + strings.TrimSpace(line)
	benchkit.Logf("stub server on %s (pid %d), %d content chunks per response", base, srv.Process.Pid, cfg.tokens)

	type row struct {
		c             int
		floor, runner closedResult
	}
	var rows []row
	for _, c := range cfg.concurrency {
		var fl, rn []closedResult
		for i := range cfg.runs {
			benchkit.Settle()
			f, err := floorLoop(ctx, base, c, cfg.requests)
			if err != nil {
				return "", err
			}
			r, err := runnerLoop(ctx, base, c, cfg.requests)
			if err != nil {
				return "", err
			}
			benchkit.Logf("concurrency %d run %d: floor %.0f req/s p99 %s; runner %.0f req/s p99 %s", c, i+1, f.rps, f.p99, r.rps, r.p99)
			fl, rn = append(fl, f), append(rn, r)
		}
		rows = append(rows, row{c, medianClosed(fl), medianClosed(rn)})
	}
	var opens []openResult
	for i := range cfg.runs {
		o, err := openLoop(ctx, base, cfg.rate, cfg.cap, max(cfg.requests, int(cfg.rate*2)))
		if err != nil {
			return "", err
		}
		benchkit.Logf("open loop run %d: %.0f req/s achieved of %.0f, lag p99 %s", i+1, o.achieved, cfg.rate, o.lagP99)
		opens = append(opens, o)
	}
	slices.SortFunc(opens, func(a, b openResult) int { return int(a.lagP99 - b.lagP99) })
	open := opens[len(opens)/2]

	var b strings.Builder
	fmt.Fprintf(&b, "# Runner overhead against a plain net/http loop\n\n")
	fmt.Fprintf(&b, "`go run ./bench/runner -requests %d -runs %d -concurrency %s -rate %g -cap %d -tokens %d` on %s, %d CPUs, %s; medians of %d runs.\n\n",
		cfg.requests, cfg.runs, joinInts(cfg.concurrency), cfg.rate, cfg.cap, cfg.tokens, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), runtime.Version(), cfg.runs)
	b.WriteString("Server: a stub (separate process) answering every chat request at once with the same stream " +
		"(role chunk, content chunks, finish, usage, [DONE]). Floor: a plain Go loop of net/http POSTs reading each body to the end. " +
		"Runner: `runner.Run` with the openai engine, closed loop; its latency is from a stream becoming free to the end of the response. " +
		"Overhead = runner percentile − floor percentile. CPU is this process's user+system time per request (the client side only).\n\n")
	b.WriteString("| concurrency | floor req/s | runner req/s | runner/floor | floor p50 | runner p50 | floor p99 | runner p99 | overhead p99 | floor CPU/req | runner CPU/req | errors |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.2f | %s | %s | %s | %s | %s | %s | %s | %d |\n", r.c, r.floor.rps, r.runner.rps, r.runner.rps/r.floor.rps,
			us(r.floor.p50), us(r.runner.p50), us(r.floor.p99), us(r.runner.p99), us(max(0, r.runner.p99-r.floor.p99)), us(r.floor.cpu), us(r.runner.cpu), r.floor.errors+r.runner.errors)
	}
	fmt.Fprintf(&b, "\nOpen loop, constant arrivals at %.0f req/s, at most %d in flight, %d requests: achieved %.0f req/s, schedule lag p50 %s, p99 %s, errors %d.\n",
		cfg.rate, cfg.cap, open.requests, open.achieved, us(open.lagP50), us(open.lagP99), open.errors)
	return b.String(), nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func medianClosed(rs []closedResult) closedResult {
	pick := func(f func(closedResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return closedResult{
		rps:    pick(func(r closedResult) float64 { return r.rps }),
		p50:    time.Duration(pick(func(r closedResult) float64 { return float64(r.p50) })),
		p99:    time.Duration(pick(func(r closedResult) float64 { return float64(r.p99) })),
		cpu:    time.Duration(pick(func(r closedResult) float64 { return float64(r.cpu) })),
		errors: int(pick(func(r closedResult) float64 { return float64(r.errors) })),
	}
}

func transport(c int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c + 8, MaxIdleConns: c + 8, DisableCompression: true}}
}

const body = `{"model":"stub","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":4,"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}`

// floorLoop is the floor: c goroutines sending the same request with
// net/http and reading the stream to its end, nothing else.
func floorLoop(ctx context.Context, base string, c, n int) (closedResult, error) {
	hc := transport(c)
	defer hc.CloseIdleConnections()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var errs atomic.Int64
	var wg sync.WaitGroup
	cpu0 := benchkit.CPUTime(os.Getpid())
	start := time.Now()
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					errs.Add(1)
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	cpu := benchkit.CPUTime(os.Getpid()) - cpu0
	if ctx.Err() != nil {
		return closedResult{}, ctx.Err()
	}
	slices.Sort(lat)
	return closedResult{rps: float64(n) / took.Seconds(), p50: pct(lat, 50), p99: pct(lat, 99), cpu: cpu / time.Duration(n), errors: int(errs.Load())}, nil
}

func engine(base string, c int) (*openai.Engine, []runner.Request, error) {
	e, err := openai.New(openai.Options{BaseURL: base, Model: "stub", MaxConns: c + 8})
	if err != nil {
		return nil, nil, err
	}
	reqs := []runner.Request{{ID: "r", Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: "hi"}}, MaxTokens: 4}}
	return e, reqs, nil
}

func runnerLoop(ctx context.Context, base string, c, n int) (closedResult, error) {
	e, reqs, err := engine(base, c)
	if err != nil {
		return closedResult{}, err
	}
	cpu0 := benchkit.CPUTime(os.Getpid())
	start := time.Now()
	res, err := runner.Run(ctx, e, reqs, runner.Options{Load: runner.Load{Concurrency: c, Requests: n}})
	took := time.Since(start)
	cpu := benchkit.CPUTime(os.Getpid()) - cpu0
	if err != nil {
		return closedResult{}, err
	}
	if res.Interrupted {
		return closedResult{}, ctx.Err()
	}
	lat := make([]time.Duration, 0, len(res.Timelines))
	errs := 0
	for _, tl := range res.Timelines {
		if tl.Error != nil {
			errs++
		}
		lat = append(lat, time.Duration(tl.Sent-tl.Scheduled+tl.Done))
	}
	slices.Sort(lat)
	return closedResult{rps: float64(n) / took.Seconds(), p50: pct(lat, 50), p99: pct(lat, 99), cpu: cpu / time.Duration(n), errors: errs}, nil
}

func openLoop(ctx context.Context, base string, rate float64, capN, n int) (openResult, error) {
	e, reqs, err := engine(base, capN)
	if err != nil {
		return openResult{}, err
	}
	res, err := runner.Run(ctx, e, reqs, runner.Options{Load: runner.Load{Arrival: runner.Constant, Rate: rate, Concurrency: capN, Requests: n}})
	if err != nil {
		return openResult{}, err
	}
	s := runner.Summarize(res, runner.SLO{})
	return openResult{achieved: float64(s.Requests) / res.Duration.Seconds(), lagP50: secs(s.ScheduleLag.P50), lagP99: secs(s.ScheduleLag.P99),
		errors: s.Failed, requests: s.Requests}, nil
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func pct(sorted []time.Duration, p float64) time.Duration {
	f := make([]float64, len(sorted))
	for i, d := range sorted {
		f[i] = float64(d)
	}
	return time.Duration(runner.Percentile(f, p))
}
