package cli

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/gate/canary"
)

func newJudgeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "judge",
		Short: "Serve the canary judge to tools that move traffic themselves (Argo Rollouts)",
	}
	cmd.AddCommand(newJudgeServeCmd(g))
	return cmd
}

func newJudgeServeCmd(g *globals) *cobra.Command {
	var config, addr, logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "serve --config canary.yaml [--addr A]",
		Short: "Serve the canary judge over HTTP, in the shape Argo Rollouts' web metric provider calls",
		Long: `Serve answers GET /v1/judge?window=30m (or start=RFC3339) [&baseline=DIGEST
&canary=DIGEST&baseline_variant=NAME&canary_variant=NAME], or a POST of the
same as JSON, with the judgement airlock promote would make at a look: each
metric of canary.yaml read for both variants from its provider over the
window and judged by the same sequential tests, with the numbers behind
each. The steps and actuator of canary.yaml are not used: the caller moves
traffic.

The answer's status is pass, fail, inconclusive or nodata. In an Argo
Rollouts AnalysisTemplate, use the web provider with
  successCondition: result.status == "pass" || result.status == "inconclusive"
  failureCondition: result.status == "fail"
so that nodata is Argo's Inconclusive (a pause) and fail aborts the
rollout. docs/promotion.md has the whole template. GET /healthz is served
too. It serves until interrupted.`,
		Example: `  airlock judge serve --config canary.yaml --addr 127.0.0.1:8090
  curl '127.0.0.1:8090/v1/judge?window=30m&canary=sha256:…&baseline=sha256:…'`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return usagef("--config canary.yaml is required")
			}
			log, err := newLogger(g, logFormat, logLevel)
			if err != nil {
				return usageError{err}
			}
			raw, err := os.ReadFile(config)
			if err != nil {
				return err
			}
			plan, err := canary.ParseConfig(raw, filepath.Dir(config))
			if err != nil {
				return fmt.Errorf("%s: %w", config, err)
			}
			prov, err := buildProvider(plan)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			srv := &http.Server{Handler: canary.NewJudgeHandler(plan, prov, nil), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: time.Minute}
			log.Info("judge listening", "url", "http://"+ln.Addr().String()+"/v1/judge", "metrics", len(plan.Metrics))
			fmt.Fprintf(g.stderr, "airlock judge serving http://%s/v1/judge\n", ln.Addr())
			return serveUntilDone(cmd.Context(), srv, log, 10*time.Second, func() error { return srv.Serve(ln) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "the canary plan whose metrics and provider are used (canary.yaml)")
	f.StringVar(&addr, "addr", "127.0.0.1:8090", "address to listen on")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
