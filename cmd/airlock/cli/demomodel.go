package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/airlock-dev/airlock/runner/sim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

func newDemoModelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo-model",
		Short: "A SIMULATED OpenAI-compatible model server for demos and tests",
	}
	cmd.AddCommand(newDemoModelServeCmd(g))
	return cmd
}

// drainTimeout bounds how long demo-model serve waits for answers in
// flight when it is told to stop.
const drainTimeout = 10 * time.Second

func newDemoModelServeCmd(g *globals) *cobra.Command {
	var configPath, ver, addr, model, apiKey string
	var metrics bool
	cmd := &cobra.Command{
		Use:   "serve (--version good|regressed | --config FILE) [--addr A]",
		Short: "Serve a simulated model version over the OpenAI API",
		Long: `Serve plays a model version from a file: it is a SIMULATOR, not a model.
It speaks the OpenAI API (GET /v1/models, POST /v1/chat/completions and
/v1/completions, streamed in vLLM's shape with stream_options usage, or
whole; a list of completion prompts is answered as a batch), answering each
prompt with the scripted answer that matches it, after latencies drawn
from the version's distributions, with its error and refusal rates.

Built-in versions: good and regressed, the demo's two candidates (the
regressed one is slower, fails 2% of requests, gets answers wrong, answers
a harmful request and refuses a benign one). --config FILE plays your own:
model, seed, ttft and per_token ({kind: fixed|normal|lognormal, mean,
stddev}), tokens_per_chunk, answers ([{match|regex, text, refuse, fault,
retry_after, fault_times}]), default, refusal, refusal_rate, error_rate,
error_status, max_concurrency, startup_delay. Faults: http_429, http_500,
http_400, cut, hang, garbage, close. See docs/demo-model.md.

Tokens are words: an answer's tokens are its words, each with the space
before it; prompt_tokens counts the prompt's words.

The built-in versions' files are runner/sim/versions/good.yaml and
regressed.yaml in the source tree. It serves until interrupted (SIGINT,
SIGTERM), then lets answers in flight finish for up to 10s.`,
		Example: `  airlock demo-model serve --version good --addr 127.0.0.1:8000
  airlock demo-model serve --config my-version.yaml --metrics
  airlock bench --endpoint http://127.0.0.1:8000 --requests 100 --concurrency 8`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg sim.Config
			var err error
			switch {
			case (configPath == "") == (ver == ""):
				return usagef("give --version good|regressed or --config FILE")
			case configPath != "":
				cfg, err = sim.Load(configPath)
			default:
				cfg, _, err = sim.Version(ver)
				if err != nil {
					err = usageError{err}
				}
			}
			if err != nil {
				return err
			}
			if model != "" {
				cfg.Model = model
			}
			var opts []sim.Option
			if apiKey != "" {
				opts = append(opts, sim.WithAPIKey(apiKey))
			}
			mux := http.NewServeMux()
			if metrics {
				reg := prometheus.NewRegistry()
				opts = append(opts, sim.WithRegisterer(reg))
				mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
			}
			mux.Handle("/", sim.New(cfg, opts...))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(g.stderr, "airlock demo-model: SIMULATED model server (not a real model) %s listening on http://%s\n", cfg.Model, ln.Addr())
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-cmd.Context().Done():
			}
			// Drain: let answers in flight finish, then drop what is left
			// (a hang fault never finishes on its own).
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), drainTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
				if !errors.Is(err, context.DeadlineExceeded) {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&ver, "version", "", "a built-in version: good or regressed")
	cmd.Flags().StringVar(&configPath, "config", "", "a version file (YAML)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8000", "address to listen on")
	cmd.Flags().StringVar(&model, "model", "", "serve under this model name instead of the version's")
	cmd.Flags().StringVar(&apiKey, "api-key", "", "require this bearer token")
	cmd.Flags().BoolVar(&metrics, "metrics", false, "serve the simulator's Prometheus metrics on /metrics")
	return cmd
}
