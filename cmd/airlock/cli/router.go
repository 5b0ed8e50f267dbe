package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/gate/canary/router"
)

func newRouterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run the built-in canary router",
	}
	cmd.AddCommand(newRouterServeCmd(g))
	return cmd
}

// routerDrain bounds how long the router waits for requests in flight
// (streams included) when it is told to stop.
const routerDrain = 30 * time.Second

func newRouterServeCmd(g *globals) *cobra.Command {
	var config, addr, adminAddr, logFormat, logLevel string
	cmd := &cobra.Command{
		Use:   "serve --config router.yaml",
		Short: "Serve the canary router: an OpenAI-compatible proxy that splits traffic between stable and canary",
		Long: `Serve runs the canary router: a reverse proxy for the OpenAI API (every
path under /v1/) in front of two OpenAI-compatible servers, the stable
release and the canary. Each request goes to the kill-switch's target while
the switch is on (the fallback, or stable without one); else, with sticky
routing, where its user's key hashes (a user on the canary at 5% stays on it
at 25%); else to the canary with the probability of its weight. Streams are
passed through event by event, never buffered. When too many requests are in
flight, low-priority ones are refused first (429 with Retry-After), then all.

On a second listener (--admin-addr) it serves the admin API that airlock
promote drives: GET /admin/state, PUT /admin/weight {"canary": 25},
PUT /admin/kill-switch {"on": true, "reason": "…"} and PUT /admin/upstreams;
a change decides the very next request. admin.token_file in router.yaml
makes the admin API require a bearer token. The same listener serves
/healthz and /metrics: airlock_router_* per variant (stable, canary,
fallback) and digest: requests, errors, time to first token, duration,
tokens, safety blocks, cost; shedding, in-flight requests, weights and the
kill-switch.

router.yaml is read once, at start: the state then changes through the
admin API only, and a restart goes back to the file's. See docs/router.md.
It serves until interrupted (SIGINT, SIGTERM), then lets requests in flight
finish for up to 30s.`,
		Example: `  airlock demo-model serve --version good --addr 127.0.0.1:8000 &
  airlock demo-model serve --version regressed --addr 127.0.0.1:8001 &
  airlock router serve --config router.yaml
  curl -X PUT -d '{"canary": 25}' http://127.0.0.1:8081/admin/weight
  curl -X PUT -d '{"on": true, "reason": "errors up"}' http://127.0.0.1:8081/admin/kill-switch

  # router.yaml
  stable: {url: http://127.0.0.1:8000, digest: sha256:…}
  canary: {url: http://127.0.0.1:8001, digest: sha256:…}
  weight: 5`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return usagef("--config router.yaml is required")
			}
			log, err := newLogger(g, logFormat, logLevel)
			if err != nil {
				return usageError{err}
			}
			cfg, err := router.LoadConfig(config)
			if err != nil {
				return err
			}
			if addr != "" || adminAddr != "" {
				if addr != "" {
					cfg.Listen = addr
				}
				if adminAddr != "" {
					cfg.Admin.Listen = adminAddr
				}
				if err := cfg.Check(); err != nil {
					return usagef("--addr, --admin-addr: %v", err)
				}
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			rt, err := router.New(*cfg, router.WithLogger(log), router.WithRegisterer(reg))
			if err != nil {
				return err
			}
			defer rt.Close()
			admin := http.NewServeMux()
			admin.Handle("/", rt.Admin())
			admin.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
			}
			adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
			if err != nil {
				_ = ln.Close()
				return fmt.Errorf("listening on %s (admin): %w", cfg.Admin.Listen, err)
			}
			// No read or write timeout on the proxy: a stream lasts as
			// long as the upstream's answer, which timeout: bounds.
			proxy := &http.Server{Handler: rt, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			adminSrv := &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
				WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
			s := rt.State()
			canaryURL := "none"
			if s.Canary != nil {
				canaryURL = s.Canary.URL
			}
			log.Info("router listening", "proxy", "http://"+ln.Addr().String(), "admin", "http://"+adminLn.Addr().String(),
				"stable", s.Stable.URL, "canary", canaryURL, "weight", s.Weight, "kill_switch", s.KillSwitch.On, "admin_token", cfg.Admin.Token != "")
			fmt.Fprintf(g.stderr, "airlock router proxying http://%s/v1/ (admin http://%s)\n", ln.Addr(), adminLn.Addr())

			// Serve both until either fails or the command is stopped;
			// then drain both.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			errc := make(chan error, 2)
			go func() {
				errc <- serveUntilDone(ctx, adminSrv, log, routerDrain, func() error { return adminSrv.Serve(adminLn) })
			}()
			go func() {
				errc <- serveUntilDone(ctx, proxy, log, routerDrain, func() error { return proxy.Serve(ln) })
			}()
			first := <-errc
			cancel()
			return errors.Join(first, <-errc)
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "router config (YAML; see docs/router.md)")
	f.StringVar(&addr, "addr", "", "proxy address (overrides listen: in the config; default 127.0.0.1:8080)")
	f.StringVar(&adminAddr, "admin-addr", "", "admin API, /metrics and /healthz address (overrides admin.listen; default 127.0.0.1:8081)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
