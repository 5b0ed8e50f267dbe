package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/sign"
	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/gpu"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

// benchPrompts are the built-in prompts when no --input or --prompt is
// given: short, varied, and answerable by any chat model.
var benchPrompts = []string{
	"Explain in two sentences what a container registry does.",
	"Write a haiku about release engineering.",
	"List three prime numbers greater than 100.",
	"Summarise the plot of a heist film in one paragraph.",
	"What is the capital of Australia? Answer in one word.",
	"Translate 'the build is green' into French and German.",
	"Give a one-line definition of latency percentiles.",
	"Describe a canary deployment to a new engineer.",
}

type benchFlags struct {
	eng                              engineSpec
	input, outputJSONL, report       string
	prompts                          []string
	kind                             string
	maxTokens                        int
	ignoreEOS, noStream, noTimelines bool
	keepOutput                       bool
	arrival                          string
	rate, burstiness                 float64
	concurrency, requests, warmup    int
	duration, timeout                time.Duration
	seed                             uint64
	batch                            int
	batchWait                        time.Duration
	slo                              string
	metricsAddr                      string
	gpuInterval                      time.Duration
	attach                           bool
	keyPath                          string
	place                            placement
}

func newBenchCmd(g *globals) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench [REF] (--endpoint URL | --engine process --cmd TEMPLATE)",
		Short: "Benchmark a release under load and write a report with pinned metric definitions",
		Long: `Bench drives a model server with the runner and writes a JSON report (every
request's timeline, the summary, the metric definitions it used) and a
summary table.

Engines:
  openai   any OpenAI-compatible endpoint (--endpoint; vLLM, TGI, llama.cpp
           server, Ollama, SGLang, airlock demo-model serve). Streams with
           stream_options.include_usage so token counts come from the server.
  process  starts --cmd on the release's files, waits until /v1/models
           answers and a one-token request succeeds, runs, and stops the
           server even when the run fails. The template sees {{.Dir}} (the
           release directory: --dir, or REF pulled into a temporary one),
           {{.Port}}, {{.Host}} and {{.Model}}. It is split into words like a
           shell would, but not run by one.

REF, when given, is resolved to its digest and recorded in the report, so
the numbers are about that exact release; with --attach --key the report
(summary, without timelines) is attached to it as a signed bench
attestation (https://airlock.dev/attestations/bench/v1).

Load: --arrival closed (default: --concurrency streams back to back) or
constant, poisson, gamma (open loop at --rate req/s, seeded by --seed;
gamma's --burstiness is its shape: 1 is Poisson, lower is burstier), with
--concurrency as the cap on requests in flight. --warmup requests go first
and are left out of the statistics. Benchmarks never retry: an error is a
data point, counted by class.

Metrics (definitions are in the report): TTFT is the first stream event
carrying generated output; TPOT is (e2e - ttft) / (output tokens - 1);
inter-chunk is the gaps between generated events; schedule lag is actual
minus scheduled send time. --slo ttft:500ms,tpot:50ms,e2e:10s adds goodput.

Requests: --input FILE (OpenAI Batch JSONL, as vllm run-batch reads), or
--prompt TEXT (repeatable), or eight built-in prompts. --output-jsonl
writes the results as OpenAI Batch output lines.

With --metrics-addr the runner's airlock_bench_* and airlock_gpu_* metrics
are served on /metrics during the run; nothing is pushed anywhere. GPUs are
sampled every --gpu-interval through NVML; without a driver the report says
"no GPU" and the run goes on.`,
		Example: `  airlock bench --endpoint http://127.0.0.1:8000 --requests 200 --concurrency 16
  airlock bench localhost:5000/support-bot:1.4.0 --endpoint http://vllm:8000 \
      --arrival poisson --rate 20 --requests 1000 --slo ttft:500ms,tpot:50ms -o bench.json
  airlock bench localhost:5000/support-bot:1.4.0 --engine process \
      --cmd 'llama-server -m {{.Dir}}/model/weights.gguf --port {{.Port}}' --attach --key cosign.key`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runBench(cmd.Context(), g, f, a)
		},
	}
	fl := cmd.Flags()
	f.eng.addFlags(fl, "base URL of an OpenAI-compatible server, such as http://127.0.0.1:8000",
		"process engine: the release directory (default: REF pulled into a temporary directory)")
	f.place.addFlags(fl)
	fl.StringVar(&f.input, "input", "", "requests as OpenAI Batch JSONL")
	fl.StringArrayVar(&f.prompts, "prompt", nil, "a prompt to send (repeatable)")
	fl.StringVar(&f.kind, "kind", "chat", "for --prompt and the built-in prompts: chat or completion")
	fl.IntVar(&f.maxTokens, "max-tokens", 128, "output token cap for --prompt and the built-in prompts")
	fl.BoolVar(&f.ignoreEOS, "ignore-eos", false, "ask the server to generate exactly --max-tokens (vLLM, llama.cpp), for comparable throughput")
	fl.BoolVar(&f.noStream, "no-stream", false, "ask for whole responses instead of streams (TTFT is then unknown)")
	fl.StringVar(&f.arrival, "arrival", "closed", "closed, constant, poisson or gamma")
	fl.Float64Var(&f.rate, "rate", 0, "open loop: mean requests per second")
	fl.Float64Var(&f.burstiness, "burstiness", 1, "gamma arrivals: shape (1 = Poisson, < 1 burstier)")
	fl.IntVar(&f.concurrency, "concurrency", 1, "closed loop: streams; open loop: cap on requests in flight (0 = none)")
	fl.IntVar(&f.requests, "requests", 0, "measured requests (default: one per input request; inputs are cycled)")
	fl.IntVar(&f.warmup, "warmup", 0, "warm-up requests sent first and left out of the statistics")
	fl.DurationVar(&f.duration, "duration", 0, "stop sending after this long (0 = no limit)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of Poisson and gamma schedules")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "per-request timeout")
	fl.IntVar(&f.batch, "batch", 0, "send non-streamed completion requests in batches of up to this many (needs --kind completion --no-stream)")
	fl.DurationVar(&f.batchWait, "batch-wait", 10*time.Millisecond, "longest a request waits for its batch to fill")
	fl.StringVar(&f.slo, "slo", "", "goodput SLO, such as ttft:500ms,tpot:50ms,e2e:10s")
	fl.StringVarP(&f.report, "output", "o", "bench-report.json", "write the JSON report here (- for stdout)")
	fl.BoolVar(&f.noTimelines, "summary-only", false, "leave the per-request timelines out of the report")
	fl.BoolVar(&f.keepOutput, "keep-output", false, "keep each request's generated text in its timeline")
	fl.StringVar(&f.outputJSONL, "output-jsonl", "", "also write results as OpenAI Batch output JSONL (implies --keep-output)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address during the run, such as 127.0.0.1:9464")
	fl.DurationVar(&f.gpuInterval, "gpu-interval", time.Second, "GPU sampling interval")
	fl.BoolVar(&f.attach, "attach", false, "attach the report to REF as a signed bench attestation (needs --key)")
	fl.StringVar(&f.keyPath, "key", "", "private key for --attach")
	return cmd
}

func runBench(ctx context.Context, g *globals, f benchFlags, a []string) error {
	// Everything about the command line is checked before anything starts.
	spec := &f.eng
	spec.maxConns = f.concurrency
	if err := spec.check(len(a) > 0); err != nil {
		return err
	}
	if err := f.place.check(spec.kind); err != nil {
		return err
	}
	if f.attach && (len(a) == 0 || f.keyPath == "") {
		return usagef("--attach needs REF and --key")
	}
	if f.input != "" && len(f.prompts) > 0 {
		return usagef("give --input or --prompt, not both")
	}
	kind := runner.Kind(f.kind)
	if kind != runner.Chat && kind != runner.Completion {
		return usagef("--kind %q: want chat or completion", f.kind)
	}
	slo, err := runner.ParseSLO(f.slo)
	if err != nil {
		return usageError{err}
	}
	load := runner.Load{Arrival: runner.Arrival(f.arrival), Rate: f.rate, Burstiness: f.burstiness,
		Concurrency: f.concurrency, Requests: f.requests, Warmup: f.warmup, Duration: runner.Duration(f.duration), Seed: f.seed}
	if err := load.Defaults(1).Validate(); err != nil {
		return usageError{err}
	}
	if f.batch > 1 && (kind != runner.Completion || !f.noStream) && f.input == "" {
		return usagef("--batch needs --kind completion --no-stream: only whole completion responses take several prompts")
	}
	reqs, err := benchRequests(f, kind)
	if err != nil {
		return err
	}

	var ref *registry.Ref
	var release *runner.Release
	var relDigest digest.Digest
	var c *client.Client
	if len(a) == 1 {
		r, err := parsePinnedRef(a[0])
		if err != nil {
			return err
		}
		ref = &r
		if c, err = g.client(); err != nil {
			return err
		}
	}
	var signer *sign.Signer
	if f.attach {
		if signer, err = loadSigner(g, f.keyPath); err != nil {
			return err
		}
	}

	// Resolve or pull the release, so the report names its digest.
	if ref != nil {
		if spec.kind == "process" && spec.dir == "" {
			dir, err := os.MkdirTemp("", "airlock-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			p := newProgress(g, "pulling", 0)
			res, err := c.Pull(ctx, *ref, dir, client.PullOptions{Progress: p.add, Cache: hashCache(false)})
			p.finish()
			if err != nil {
				return err
			}
			spec.dir = dir
			relDigest = res.Release.Descriptor.Digest
			release = &runner.Release{Ref: ref.String(), Digest: relDigest.String()}
			fmt.Fprintf(g.stderr, "pulled %s into %s\n", release.Digest, dir)
		} else {
			desc, err := c.Resolve(ctx, *ref)
			if err != nil {
				return err
			}
			relDigest = desc.Digest
			release = &runner.Release{Ref: ref.String(), Digest: relDigest.String()}
		}
	}

	reg := prometheus.NewRegistry()
	metrics, err := runner.NewMetrics(reg)
	if err != nil {
		return err
	}
	inv, status := gpu.Open(gpu.Options{})
	defer func() { _ = inv.Close() }()
	if _, err := gpu.NewCollector(reg, inv); err != nil {
		return err
	}
	if f.metricsAddr != "" {
		stop, addr, err := serveMetrics(f.metricsAddr, reg)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(g.stderr, "metrics on http://%s/metrics\n", addr)
	}

	var batch runner.Batch // zero, and left out of the report, unless batching
	if f.batch > 1 {
		batch = runner.Batch{MaxSize: f.batch, MaxWait: f.batchWait}
	}
	keep := f.keepOutput || f.outputJSONL != ""
	runID := newRunID()
	digest := ""
	if release != nil {
		digest = release.Digest
	}
	var (
		res  *runner.Result
		info runner.EngineInfo
		gsum gpu.Summary
	)
	// The run is a job on the runner's queue, which places the server the
	// process engine starts on GPUs with room (CUDA_VISIBLE_DEVICES).
	job := f.place.job(runID, runner.JobBench,
		func(ctx context.Context, a runner.Assignment) error {
			spec.keepOutput, spec.env = keep, a.Env()
			spec.where = where(a)
			eng, model, stop, err := spec.start(ctx, g)
			defer stop()
			if err != nil {
				return err
			}
			spec.model = model
			for i := range reqs {
				if reqs[i].Model == "" {
					reqs[i].Model = spec.model
				}
			}
			info = runner.EngineInfo{Kind: spec.kind}
			if d, ok := eng.(runner.Describer); ok {
				info = d.Describe()
			}
			metrics.RunInfo(runID, info.Model, digest, info.Kind, string(load.Arrival))
			sampler := gpu.StartSampler(ctx, inv, gpu.SamplerOptions{Interval: f.gpuInterval})
			prog := newCountProgress(g, "requests")
			res, err = runner.Run(ctx, eng, reqs, runner.Options{Load: load, Timeout: f.timeout, SLO: slo, Metrics: metrics,
				Batch: batch, Progress: prog.set})
			prog.finish()
			gsum = sampler.Stop(context.WithoutCancel(ctx))
			return err
		})
	q, err := newQueue(g, inv, reg)
	if err != nil {
		return err
	}
	defer func() { _ = q.Close(context.WithoutCancel(ctx)) }()
	// An interrupt cancels the job: the runner stops sending and the report
	// has the requests sent so far.
	if err := runQueued(ctx, q, job); err != nil && (res == nil || !errors.Is(err, runner.ErrJobCancelled)) {
		return err
	}
	sum := runner.Summarize(res, slo)
	var gs *gpu.Summary
	if status.Available && gsum.Samples > 0 {
		gs = &gsum
	}
	rep := &runner.Report{Schema: runner.ReportSchema, RunID: runID, Tool: "airlock/" + version(), Release: release,
		Engine: info, Load: res.Load, Timeout: runner.Duration(f.timeout), Batch: batch,
		Started: res.Start.UTC(), Interrupted: res.Interrupted, Definitions: runner.Definitions, Summary: sum,
		GPU: runner.NewGPUReport(status, gs, sum.Tokens.Output)}
	if !f.noTimelines {
		rep.Requests = res.Timelines
	}
	if err := writeReport(g, f.report, rep.WriteJSON); err != nil {
		return err
	}
	if f.outputJSONL != "" {
		if err := writeBatchOutput(f.outputJSONL, reqs, res.Timelines); err != nil {
			return err
		}
	}
	if err := rep.WriteTable(g.stderr); err != nil {
		return err
	}
	if f.attach {
		pred := *rep
		pred.Requests = nil
		b, err := json.Marshal(&pred)
		if err != nil {
			return err
		}
		if err := sign.Attest(ctx, *ref, relDigest, signer, runner.ReportSchema, b, g.signRemote(*ref)); err != nil {
			return fmt.Errorf("attaching the bench attestation: %w", err)
		}
		fmt.Fprintf(g.stderr, "attached the bench attestation to %s with key %s\n", release.Digest, signer.KeyID[:16])
	}
	if res.Interrupted {
		return errors.New("the run was interrupted; the report has the requests sent so far")
	}
	if sum.Requests > 0 && sum.Succeeded == 0 {
		return fmt.Errorf("no request succeeded (%s); the report has each error", errorCounts(sum.Errors))
	}
	return nil
}

func benchRequests(f benchFlags, kind runner.Kind) ([]runner.Request, error) {
	if f.input != "" {
		fh, err := os.Open(f.input)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		reqs, err := runner.ReadBatch(fh)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.input, err)
		}
		for i := range reqs {
			reqs[i].NoStream = reqs[i].NoStream || f.noStream
			reqs[i].IgnoreEOS = reqs[i].IgnoreEOS || f.ignoreEOS
		}
		return reqs, nil
	}
	prompts := f.prompts
	if len(prompts) == 0 {
		prompts = benchPrompts
	}
	reqs := make([]runner.Request, len(prompts))
	for i, p := range prompts {
		r := runner.Request{ID: fmt.Sprintf("p%d", i), Kind: kind, MaxTokens: f.maxTokens, IgnoreEOS: f.ignoreEOS, NoStream: f.noStream}
		if kind == runner.Chat {
			r.Messages = []runner.Message{{Role: "user", Content: p}}
		} else {
			r.Prompt = p
		}
		reqs[i] = r
	}
	return reqs, nil
}

// writeReport writes a report with write to path, or to stdout for "-".
func writeReport(g *globals, path string, write func(io.Writer) error) error {
	if path == "-" {
		return write(g.stdout)
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(fh); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "wrote %s\n", path)
	return nil
}

func writeBatchOutput(path string, reqs []runner.Request, tls []*runner.Timeline) error {
	byID := make(map[string]*runner.Request, len(reqs))
	for i := range reqs {
		byID[reqs[i].ID] = &reqs[i]
	}
	for _, tl := range tls { // cycled requests carry "#n"
		if _, ok := byID[tl.ID]; !ok {
			if base, _, ok := strings.Cut(tl.ID, "#"); ok {
				byID[tl.ID] = byID[base]
			}
		}
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := runner.WriteBatch(fh, byID, tls); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// serveMetrics serves reg on addr until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, ln.Addr().String(), nil
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:4])
}

// countProgress draws "requests 120/1000" on a terminal.
type countProgress struct{ p *progress }

func newCountProgress(g *globals, verb string) *countProgress {
	p := newProgress(g, verb, 0)
	p.count.Store(true)
	return &countProgress{p}
}

func (c *countProgress) set(done, total int) {
	c.p.done.Store(int64(done))
	c.p.of.Store(int64(total))
}

func (c *countProgress) finish() { c.p.finish() }

// parseBytes reads "20GiB", "512MiB" or a plain byte count.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"GB", 1e9}, {"MB", 1e6}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive size such as 20GiB or 512MiB")
	}
	return int64(n * float64(mult)), nil
}

func errorCounts(m map[runner.Class]int) string {
	var parts []string
	for _, c := range runner.Classes {
		if m[c] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, m[c]))
		}
	}
	return strings.Join(parts, ", ")
}
