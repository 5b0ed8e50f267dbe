package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/registry/auth"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/boltstore"
	"github.com/airlock-dev/airlock/registry/store/fsstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

func newRegistryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run and maintain Airlock's embedded OCI registry",
	}
	cmd.AddCommand(newRegistryServeCmd(g), newRegistryGCCmd(g), newRegistryFsckCmd(g))
	return cmd
}

// registryFlags are shared by serve, gc and fsck.
type registryFlags struct {
	config string
	root   string
}

func (f *registryFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.config, "config", "", "registry config file (YAML; see docs/registry.md)")
	cmd.Flags().StringVar(&f.root, "root", "", "storage directory (default ./airlock-registry, or root: in the config)")
}

// load reads the config and applies the flags over it.
func (f *registryFlags) load() (*registryConfig, error) {
	cfg, err := loadRegistryConfig(f.config)
	if err != nil {
		return nil, err
	}
	if f.root != "" {
		cfg.Root = f.root
	}
	if cfg.Root == "" {
		cfg.Root = "airlock-registry"
	}
	return cfg, nil
}

// withStores opens the stores the flags name, runs fn, and closes them.
func (f *registryFlags) withStores(fn func(store.Blobs, store.Meta) error) error {
	cfg, err := f.load()
	if err != nil {
		return err
	}
	// Unlike serve, maintenance never creates a registry: a mistyped
	// --root must not look like a clean, empty one.
	if _, err := os.Stat(filepath.Join(cfg.Root, "meta.db")); err != nil {
		return fmt.Errorf("no registry at %s (no meta.db): %w", cfg.Root, err)
	}
	blobs, meta, err := openStores(cfg.Root)
	if err != nil {
		return err
	}
	defer closeMeta(meta)
	return fn(blobs, meta)
}

// openStores opens the blob and metadata stores under root.
func openStores(root string) (store.Blobs, store.Meta, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, nil, err
	}
	blobs, err := fsstore.New(filepath.Join(root, "blobs"))
	if err != nil {
		return nil, nil, fmt.Errorf("opening blob store: %w", err)
	}
	meta, err := boltstore.New(filepath.Join(root, "meta.db"), boltstore.WithLockTimeout(2*time.Second))
	if errors.Is(err, boltstore.ErrLocked) {
		return nil, nil, fmt.Errorf("%s is in use by another process, probably a running airlock registry serve; "+
			"run gc through it (airlock registry gc --server URL) or stop it first", root)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("opening metadata store: %w", err)
	}
	return blobs, meta, nil
}

func newRegistryServeCmd(g *globals) *cobra.Command {
	var rf registryFlags
	var addr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the embedded OCI registry (distribution-spec v1.1)",
		Long: `Serve runs Airlock's OCI registry: the distribution-spec v1.1 API with the
referrers API, filesystem blob storage and an embedded bbolt metadata store
under --root, optional authentication (htpasswd users, bearer tokens, rules
per repository and action), protected tags (guarded by signed gate
verdicts with verdicts: in the config), Prometheus metrics on /metrics
and an audit log of pushes, deletes and tag moves.

Without a config file it serves 127.0.0.1:5000 from ./airlock-registry with
no authentication: a local registry for one user. Stop it with Ctrl-C or
SIGTERM; uploads in flight are given 30 seconds to finish.`,
		Example: `  airlock registry serve
  airlock registry serve --addr 127.0.0.1:5001 --root /var/lib/airlock
  airlock registry serve --config registry.yaml`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := rf.load()
			if err != nil {
				return err
			}
			if addr != "" {
				cfg.Addr = addr
			}
			if cfg.Addr == "" {
				cfg.Addr = "127.0.0.1:5000"
			}
			return serveRegistry(cmd.Context(), g, cfg)
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&addr, "addr", "", "listen address (default 127.0.0.1:5000)")
	return cmd
}

func serveRegistry(ctx context.Context, g *globals, cfg *registryConfig) error {
	log, err := newLogger(g, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	blobs, meta, err := openStores(cfg.Root)
	if err != nil {
		return err
	}
	defer closeMeta(meta)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	scfg := server.Config{Blobs: blobs, Meta: meta, ImmutableReleaseTags: !cfg.MutableReleaseTags}
	for _, p := range cfg.ProtectedTags {
		scfg.ProtectedTags = append(scfg.ProtectedTags, server.TagRule{Repo: p.Repos, Tag: p.Tags})
	}
	opts := []server.Option{server.WithLogger(log), server.WithRegisterer(reg)}
	var handler http.Handler
	var regSrv *server.Server
	var guard *verdictGuard
	if vc := cfg.Verdicts; vc != nil {
		if len(vc.Trust) == 0 {
			return errors.New("registry config: verdicts: trust: list the public keys whose verdicts count")
		}
		if len(cfg.ProtectedTags) == 0 {
			return errors.New("registry config: verdicts: no protectedTags to guard")
		}
		keys, err := loadVerifiers(vc.Trust)
		if err != nil {
			return fmt.Errorf("registry config: verdicts: %w", err)
		}
		guard = newVerdictGuard(nil, keys, vc.Environments, log)
		scfg.Guard = guard
	}
	if cfg.Auth != nil {
		acfg := auth.Config{AnonymousPull: cfg.Auth.AnonymousPull, Rules: cfg.Auth.Rules}
		if cfg.Auth.Htpasswd != "" {
			f, err := os.Open(cfg.Auth.Htpasswd)
			if err != nil {
				return fmt.Errorf("reading htpasswd: %w", err)
			}
			acfg.Users, err = auth.LoadHtpasswd(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.Auth.Htpasswd, err)
			}
		}
		if cfg.Auth.TokenKeyFile != "" {
			if acfg.TokenKey, err = os.ReadFile(cfg.Auth.TokenKeyFile); err != nil {
				return fmt.Errorf("reading token key: %w", err)
			}
		}
		az, err := auth.New(acfg)
		if err != nil {
			return fmt.Errorf("auth config: %w", err)
		}
		opts = append(opts, server.WithActor(func(r *http.Request) string { return auth.User(r.Context()) }))
		regSrv = server.New(scfg, opts...)
		handler = az.Wrap(regSrv)
	} else {
		regSrv = server.New(scfg, opts...)
		handler = regSrv
	}

	if guard != nil {
		// The guard reads verdicts from this registry in process, past
		// authentication: it is the registry reading its own store.
		guard.remote.Transport = handlerTransport{regSrv}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", handler)
	mux.Handle(gcPath, gcHandler(regSrv, log))
	if cfg.GC.Interval > 0 {
		go runPeriodicGC(ctx, regSrv, log, cfg.GC.Interval, cfg.GC.Grace)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	if cfg.TLS.Cert != "" {
		scheme = "https"
	}
	// Announce before serving: once requests arrive, only the logger
	// (which serialises its writes) may write to stderr.
	log.Info("registry listening", "url", scheme+"://"+ln.Addr().String(), "root", cfg.Root, "auth", cfg.Auth != nil)
	fmt.Fprintf(g.stderr, "airlock registry serving %s://%s from %s\n", scheme, ln.Addr(), cfg.Root)
	return serveUntilDone(ctx, srv, log, 30*time.Second, func() error {
		if cfg.TLS.Cert != "" {
			return srv.ServeTLS(ln, cfg.TLS.Cert, cfg.TLS.Key)
		}
		return srv.Serve(ln)
	})
}

// serveUntilDone runs serve until it fails or ctx ends, then drains the
// server's requests for up to drain.
func serveUntilDone(ctx context.Context, srv *http.Server, log *slog.Logger, drain time.Duration, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("draining: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// gcPath is where a running registry takes `airlock registry gc --server`.
// It is not part of the OCI API and answers loopback clients only.
const gcPath = "/_airlock/gc"

// gcHandler runs garbage collection in the serving process, which holds
// the stores, with the sweep excluded against manifest PUTs (Server.GC).
// POST ?apply=true deletes; otherwise it is a dry run. ?grace=DURATION.
func gcHandler(s *server.Server, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackClient(r) {
			http.Error(w, "garbage collection is only offered to loopback clients", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST "+gcPath+"?apply=true|false&grace=DURATION", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		opts := store.GCOptions{DryRun: q.Get("apply") != "true", Actor: "gc (" + r.RemoteAddr + ")"}
		if v := q.Get("grace"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				http.Error(w, fmt.Sprintf("grace %q: want a duration such as 1h", v), http.StatusBadRequest)
				return
			}
			opts.GracePeriod = d
		}
		rep, err := s.GC(r.Context(), opts)
		if err != nil {
			log.Error("gc", "error", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Info("gc", "dry_run", rep.DryRun, "swept", len(rep.Swept), "bytes", rep.SweptBytes, "stale_links", len(rep.StaleLinks), "stale_uploads", len(rep.StaleUploads))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	})
}

func loopbackClient(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// runPeriodicGC collects garbage every interval until ctx ends.
func runPeriodicGC(ctx context.Context, s *server.Server, log *slog.Logger, interval, grace time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := s.GC(ctx, store.GCOptions{GracePeriod: grace, Actor: "gc (periodic)"})
		if err != nil {
			log.Error("periodic gc", "error", err)
			continue
		}
		log.Info("periodic gc", "swept", len(rep.Swept), "bytes", rep.SweptBytes, "stale_links", len(rep.StaleLinks), "stale_uploads", len(rep.StaleUploads))
	}
}

// newLogger builds the structured logger of long-running commands.
func newLogger(g *globals, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: %w", level, err)
		}
	}
	o := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(g.stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, o)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func newRegistryGCCmd(g *globals) *cobra.Command {
	var rf registryFlags
	var apply bool
	var grace time.Duration
	var serverURL string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete blobs no manifest references (dry run unless --apply)",
		Long: `GC finds blobs that no manifest in any repository references and that are
older than --grace, and deletes them with --apply (by default it only
reports). Stale upload sessions older than --grace are removed too.

While the registry serves, it holds its storage, so run gc through it:
--server URL asks the running registry (loopback only) to collect, with
its deletions excluded against manifest pushes: a push that references an
old unreferenced blob either keeps it or is told the blob is unknown, and
never leaves a manifest without its blob. The grace period protects blobs
of pushes whose manifest has not arrived yet. A registry can also collect
on its own (gc: interval: in its config). With --root, gc works on a
registry that is not running.`,
		Example: `  airlock registry gc --server http://127.0.0.1:5000
  airlock registry gc --server http://127.0.0.1:5000 --apply
  airlock registry gc --root /var/lib/airlock --apply      # registry stopped`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serverURL != "" {
				return remoteGC(cmd.Context(), g, serverURL, apply, grace)
			}
			return rf.withStores(func(blobs store.Blobs, meta store.Meta) error {
				rep, err := store.GC(cmd.Context(), blobs, meta, store.GCOptions{DryRun: !apply, GracePeriod: grace})
				if err != nil {
					return err
				}
				return writeJSON(g.stdout, rep)
			})
		},
	}
	rf.register(cmd)
	cmd.Flags().BoolVar(&apply, "apply", false, "delete what would be deleted (default: report only)")
	cmd.Flags().DurationVar(&grace, "grace", time.Hour, "keep unreferenced blobs younger than this (0 means the default, 1h)")
	cmd.Flags().StringVar(&serverURL, "server", "", "run gc in the registry serving at this URL (http://127.0.0.1:5000)")
	return cmd
}

// remoteGC asks a running registry to collect garbage and prints its report.
func remoteGC(ctx context.Context, g *globals, base string, apply bool, grace time.Duration) error {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + gcPath)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--server %q: want a URL such as http://127.0.0.1:5000", base)
	}
	u.RawQuery = url.Values{"apply": {strconv.FormatBool(apply)}, "grace": {grace.String()}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking %s to collect garbage: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", u.Redacted(), resp.Status, strings.TrimSpace(string(body)))
	}
	var rep store.GCReport
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("%s: unreadable report: %w", base, err)
	}
	return writeJSON(g.stdout, rep)
}

func newRegistryFsckCmd(g *globals) *cobra.Command {
	var rf registryFlags
	var verify bool
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check the registry's storage for consistency",
		Long: `Fsck checks that every blob a manifest references exists, that every
repository link points at an existing blob and, with --verify-content, that
every blob's bytes hash to its name. It exits 2 if it finds a problem.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rf.withStores(func(blobs store.Blobs, meta store.Meta) error {
				rep, err := store.Fsck(cmd.Context(), blobs, meta, store.FsckOptions{VerifyContent: verify})
				if err != nil {
					return err
				}
				if err := writeJSON(g.stdout, rep); err != nil {
					return err
				}
				if !rep.OK() {
					return fmt.Errorf("fsck found %d problems", len(rep.Problems))
				}
				return nil
			})
		},
	}
	rf.register(cmd)
	cmd.Flags().BoolVar(&verify, "verify-content", false, "re-hash every blob")
	return cmd
}

// closeMeta closes the metadata store; a failure there is only worth a
// warning, the data was committed transaction by transaction.
func closeMeta(m store.Meta) {
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "airlock: closing metadata store:", err)
	}
}
