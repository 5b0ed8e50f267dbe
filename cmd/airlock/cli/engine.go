package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/gpu"
	"github.com/airlock-dev/airlock/runner/openai"
	"github.com/airlock-dev/airlock/runner/process"
)

// engineSpec is how bench and eval reach a model: an OpenAI-compatible
// endpoint, or a serving command started on a release directory.
type engineSpec struct {
	kind, endpoint, cmdTemplate, dir, model, serverLog string
	readyTimeout                                       time.Duration
	keepOutput                                         bool
	maxConns                                           int
	env                                                []string // extra environment of a started server (CUDA_VISIBLE_DEVICES)
	where                                              string   // for the "starting the server" line
}

// addFlags defines the engine flags bench and eval share.
func (s *engineSpec) addFlags(fl *pflag.FlagSet, endpointUsage, dirUsage string) {
	fl.StringVar(&s.kind, "engine", "", "openai or process (default: openai with --endpoint, process with --cmd)")
	fl.StringVar(&s.endpoint, "endpoint", "", endpointUsage)
	fl.StringVar(&s.cmdTemplate, "cmd", "", "process engine: the serving command template")
	fl.StringVar(&s.dir, "dir", "", dirUsage)
	fl.StringVar(&s.model, "model", "", "model name to request (default: the only or first one /v1/models lists)")
	fl.StringVar(&s.serverLog, "server-log", "", "process engine: write the server's output to this file (default: only its last lines, in errors)")
	fl.DurationVar(&s.readyTimeout, "ready-timeout", 10*time.Minute, "process engine: how long the server may take to become ready")
}

// placement is where a server the process engine starts may run: the GPU
// flags bench and eval share.
type placement struct {
	gpus       int
	gpuMemory  string
	requireGPU bool
	memBytes   int64
}

func (p *placement) addFlags(fl *pflag.FlagSet) {
	fl.IntVar(&p.gpus, "gpus", 0, "process engine: GPUs the server needs; the runner picks ones with room and sets CUDA_VISIBLE_DEVICES (without a GPU it runs CPU-only)")
	fl.StringVar(&p.gpuMemory, "gpu-memory", "", "process engine: free memory the server needs on each GPU, such as 20GiB")
	fl.BoolVar(&p.requireGPU, "require-gpu", false, "process engine: fail instead of running CPU-only when there is no GPU")
}

// check reports placement flags given to an engine that starts nothing,
// and parses the memory.
func (p *placement) check(kind string) error {
	if (p.gpus > 0 || p.gpuMemory != "" || p.requireGPU) && kind != "process" {
		return usagef("--gpus, --gpu-memory and --require-gpu place a server this command starts: use them with --engine process")
	}
	if p.gpuMemory != "" {
		n, err := parseBytes(p.gpuMemory)
		if err != nil {
			return usagef("--gpu-memory %q: %v", p.gpuMemory, err)
		}
		p.memBytes = n
	}
	return nil
}

// job is a runner job of kind with this placement.
func (p *placement) job(id string, kind runner.JobKind, run func(context.Context, runner.Assignment) error) runner.Job {
	return runner.Job{ID: id, Kind: kind, Need: gpu.Need{GPUs: p.gpus, MemoryBytes: uint64(p.memBytes)}, RequireGPU: p.requireGPU, Run: run}
}

// where says where an assignment puts a server, for the "starting the
// server" line.
func where(a runner.Assignment) string {
	w := "CPU only"
	if !a.CPUOnly {
		w = "GPUs " + strings.Join(a.GPUs, ",")
	}
	return w + ": " + a.Reason
}

// newQueue is the runner's job queue on inv, logging warnings to stderr.
func newQueue(g *globals, inv gpu.Inventory, reg prometheus.Registerer) (*runner.Queue, error) {
	return runner.NewQueue(runner.QueueConfig{Inventory: inv, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
}

// runQueued submits job and waits for it to end. When ctx ends first (an
// interrupt), the job is cancelled, so its Run sees its context end and
// returns what it has; the error is then one that wraps
// runner.ErrJobCancelled, and what Run recorded stays usable.
func runQueued(ctx context.Context, q *runner.Queue, job runner.Job) error {
	t, err := q.Submit(job)
	if err != nil {
		return usageError{err}
	}
	stop := context.AfterFunc(ctx, t.Cancel)
	defer stop()
	err = t.Wait(context.WithoutCancel(ctx))
	if err != nil && ctx.Err() != nil && errors.Is(err, runner.ErrJobCancelled) {
		return fmt.Errorf("%w: %w", ctx.Err(), err) // an interrupt, as the exit code reports it
	}
	return err
}

// check reports a wrong combination of engine flags.
func (s *engineSpec) check(haveRelease bool) error {
	if s.kind == "" {
		switch {
		case s.cmdTemplate != "" && s.endpoint == "":
			s.kind = "process"
		case s.endpoint != "":
			s.kind = "openai"
		default:
			return usagef("give --endpoint URL (an OpenAI-compatible server) or --cmd TEMPLATE (a server to start)")
		}
	}
	switch s.kind {
	case "openai":
		if s.endpoint == "" || s.cmdTemplate != "" {
			return usagef("--engine openai needs --endpoint and no --cmd")
		}
	case "process":
		if s.cmdTemplate == "" || s.endpoint != "" {
			return usagef("--engine process needs --cmd and no --endpoint")
		}
		if s.dir == "" && !haveRelease {
			return usagef("--engine process needs the release: give REF or --dir")
		}
	case "kubernetes":
		return usagef("--engine kubernetes is not built yet; use openai or process")
	default:
		return usagef("--engine %q: want openai or process", s.kind)
	}
	return nil
}

// start builds the engine (starting the server for process) and returns
// it with the served model name and a stop function that is always safe
// to call, also after a failed start.
func (s *engineSpec) start(ctx context.Context, g *globals) (runner.Engine, string, func(), error) {
	apiKey := os.Getenv(EnvOpenAIKey)
	nop := func() {}
	switch s.kind {
	case "openai":
		e, err := openai.New(openai.Options{BaseURL: s.endpoint, APIKey: apiKey, Model: s.model, KeepOutput: s.keepOutput,
			MaxConns: max(s.maxConns, 1), UserAgent: "airlock/" + version()})
		if err != nil {
			return nil, "", nop, usageError{err}
		}
		model := s.model
		if model == "" {
			m, err := e.ResolveModel(ctx)
			if err != nil {
				return nil, "", nop, fmt.Errorf("finding the model at %s: %w", s.endpoint, err)
			}
			model = m
		}
		return e, model, nop, nil
	case "process":
		var logw io.Writer
		var logf *os.File
		if s.serverLog != "" {
			f, err := os.Create(s.serverLog)
			if err != nil {
				return nil, "", nop, err
			}
			logf, logw = f, f
		}
		e, err := process.New(process.Options{Command: s.cmdTemplate, Dir: s.dir, Model: s.model, APIKey: apiKey, Env: s.env,
			KeepOutput: s.keepOutput, MaxConns: max(s.maxConns, 1), ReadyTimeout: s.readyTimeout, Stdout: logw, Stderr: logw,
			UserAgent: "airlock/" + version()})
		if err != nil {
			if logf != nil {
				logf.Close()
			}
			return nil, "", nop, usageError{err}
		}
		where := s.where
		if where == "" {
			where = "CPU only"
		}
		fmt.Fprintf(g.stderr, "starting the server (%s)\n", where)
		began := time.Now()
		stop := func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := e.Stop(stopCtx); err != nil {
				fmt.Fprintf(g.stderr, "stopping the server: %v\n", err)
			}
			if logf != nil {
				logf.Close()
			}
		}
		if err := e.Start(ctx); err != nil {
			stop()
			return nil, "", nop, fmt.Errorf("starting the server: %w", err)
		}
		fmt.Fprintf(g.stderr, "server ready after %s\n", time.Since(began).Round(time.Millisecond))
		return e, e.Describe().Model, stop, nil
	}
	return nil, "", nop, usagef("--engine %q: want openai or process", s.kind)
}
