package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/admission"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/sign"
)

func newWebhookCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the Kubernetes admission webhook",
	}
	cmd.AddCommand(newWebhookServeCmd(g), newWebhookExceptionCmd(g), newWebhookCertsCmd(g))
	return cmd
}

func newWebhookServeCmd(g *globals) *cobra.Command {
	var (
		config, addr, certFile, keyFile string
		logFormat, logLevel             string
		tlsCheck, configCheck           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the validating admission webhook over HTTPS",
		Long: `Serve answers Kubernetes AdmissionReview v1 requests on POST /validate.

For each Pod or pod template (Deployment, ReplicaSet, StatefulSet, DaemonSet,
Job, CronJob) and KServe InferenceService it finds the model releases the
object would run (containers, init and ephemeral containers, image volumes,
storage-initializer arguments, oci:// storage URIs), chosen in the config by
registry and repository pattern or by artifact type. Each must be pinned by
digest, not revoked, and
carry a pass verdict of airlock gate for the namespace's environment, signed
by a trusted key and unexpired. Passes are cached per digest; warn mode
admits with warnings. Policies of the gate's input schema (policies.dirs) and
signed break-glass exceptions (airlock webhook exception) apply when the
config names them. See docs/admission.md.

The certificate and key, admission.yaml and the keys and policies it names are
read again when they change on disk (a revoked digest takes effect without a
restart; a config that fails to load keeps the previous one, and /readyz says
why). GET
/healthz, /readyz and /metrics (airlock_admission_*) are served too.`,
		Example: `  airlock webhook serve --config admission.yaml --tls-cert tls.crt --tls-key tls.key
  airlock webhook serve --config /etc/airlock/admission.yaml --addr :8443 \
    --tls-cert /etc/airlock/tls/tls.crt --tls-key /etc/airlock/tls/tls.key --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return usageError{errors.New("--config admission.yaml is required")}
			}
			if certFile == "" || keyFile == "" {
				return usageError{errors.New("--tls-cert and --tls-key are required: the API server calls webhooks over HTTPS only")}
			}
			log, err := newLogger(g, logFormat, logLevel)
			if err != nil {
				return usageError{err}
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			metrics := admission.NewMetrics(reg)
			build := func() (*admission.Checker, *admission.Config, error) {
				return buildChecker(cmd.Context(), config, g.insecure, metrics, log)
			}
			checker, cfg, err := build()
			if err != nil {
				return err
			}
			certs := &admission.CertReloader{CertFile: certFile, KeyFile: keyFile, Check: tlsCheck}
			if err := certs.Load(); err != nil {
				return err
			}
			handler := admission.NewHandler(checker, metrics, log)
			reload := &configReloader{files: cfg.Files(config), build: build, set: handler.SetChecker, log: log}
			go reload.watch(cmd.Context(), configCheck)

			mux := http.NewServeMux()
			mux.Handle("/validate", handler)
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
				// A failed reload keeps the last good certificate and
				// config in use; say why, without taking the pod out.
				msg := "ok"
				if err := certs.Err(); err != nil {
					msg += fmt.Sprintf(" (certificate reload failed, serving the previous one: %v)", err)
				}
				if err := reload.Err(); err != nil {
					msg += fmt.Sprintf(" (config reload failed, deciding with the previous one: %v)", err)
				}
				fmt.Fprintln(w, msg)
			})
			mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			srv := &http.Server{
				Handler:           mux,
				TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate},
				ReadHeaderTimeout: 5 * time.Second,
				ReadTimeout:       15 * time.Second,
				WriteTimeout:      cfg.Timeout.Duration + 5*time.Second,
				IdleTimeout:       2 * time.Minute,
			}
			log.Info("webhook listening", "url", "https://"+ln.Addr().String()+"/validate", "config", config,
				"releases", len(cfg.Releases), "trusted_keys", len(cfg.Trust), "environments", len(cfg.Environments), "mode", cfg.Mode)
			fmt.Fprintf(g.stderr, "airlock webhook serving https://%s/validate\n", ln.Addr())
			return serveUntilDone(cmd.Context(), srv, log, 15*time.Second, func() error { return srv.ServeTLS(ln, "", "") })
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "admission config (YAML; see docs/admission.md)")
	f.StringVar(&addr, "addr", ":8443", "address to listen on")
	f.StringVar(&certFile, "tls-cert", "", "TLS certificate (PEM), read again when it changes")
	f.StringVar(&keyFile, "tls-key", "", "TLS private key (PEM), read again when it changes")
	f.DurationVar(&tlsCheck, "tls-check", 10*time.Second, "how often the certificate files are looked at for changes")
	f.DurationVar(&configCheck, "config-check", 10*time.Second, "how often admission.yaml and the files it names are looked at for changes (reloaded without a restart)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// buildChecker loads admission.yaml and what it names into a Checker.
func buildChecker(ctx context.Context, config string, insecure bool, metrics *admission.Metrics, log *slog.Logger) (*admission.Checker, *admission.Config, error) {
	cfg, err := admission.LoadConfig(config)
	if err != nil {
		return nil, nil, err
	}
	var keys []*sign.Verifier
	for i, pem := range cfg.TrustPEM {
		k, err := sign.LoadVerifier(pem, cfg.Trust[i])
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
	}
	rv := &registryVerdicts{keys: keys, plainHTTP: cfg.PlainHTTP, insecure: insecure}
	opts := admission.Options{Resolver: rv, Describer: rv, Metrics: metrics, Logger: log}
	if len(cfg.BreakGlassPEM) > 0 {
		var bg breakGlassKeys
		for i, pem := range cfg.BreakGlassPEM {
			k, err := sign.LoadVerifier(pem, cfg.BreakGlass.Trust[i])
			if err != nil {
				return nil, nil, err
			}
			bg = append(bg, k)
		}
		opts.Exceptions = bg
	}
	if opts.Policies, err = cfg.Engine(ctx); err != nil {
		return nil, nil, err
	}
	return admission.NewChecker(cfg, rv, opts), cfg, nil
}

// configReloader rebuilds the checker when admission.yaml or a file it
// names changes; a build that fails keeps the previous checker.
type configReloader struct {
	files []string
	build func() (*admission.Checker, *admission.Config, error)
	set   func(*admission.Checker)
	log   *slog.Logger

	mu  sync.Mutex
	err error
}

func (r *configReloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func stamp(files []string) string {
	var b strings.Builder
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "%s missing\n", f)
		}
	}
	return b.String()
}

func (r *configReloader) watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	last := stamp(r.files)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stamp(r.files)
		if now == last {
			continue
		}
		last = now
		c, cfg, err := r.build()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		if err != nil {
			r.log.Error("config reload failed; deciding with the previous config", "error", err)
			continue
		}
		r.files = cfg.Files(r.files[0])
		last = stamp(r.files)
		r.set(c)
		r.log.Info("config reloaded", "revoked", len(cfg.Revoked), "releases", len(cfg.Releases), "trusted_keys", len(cfg.Trust))
	}
}

// registryVerdicts reads verdicts and resolves tags in the registry a
// release lives in (any OCI registry).
type registryVerdicts struct {
	keys      []*sign.Verifier
	plainHTTP []string
	insecure  bool
}

func (r *registryVerdicts) plain(ref registry.Ref) bool {
	return ref.Loopback() || slices.ContainsFunc(r.plainHTTP, func(h string) bool { return strings.EqualFold(h, ref.Registry) })
}

// Verdicts implements admission.VerdictReader.
func (r *registryVerdicts) Verdicts(ctx context.Context, ref registry.Ref) ([]*gate.Verdict, error) {
	remote := sign.Remote{PlainHTTP: r.plain(ref), Insecure: r.insecure, UserAgent: "airlock-webhook/" + version()}
	vs, _, err := readVerdicts(ctx, ref, r.keys, remote, time.Now())
	return vs, err
}

// Resolve implements admission.Resolver.
func (r *registryVerdicts) Resolve(ctx context.Context, ref registry.Ref) (digest.Digest, error) {
	c, err := client.New(client.Options{PlainHTTP: r.plain(ref), Insecure: r.insecure, UserAgent: "airlock-webhook/" + version()})
	if err != nil {
		return "", err
	}
	if ref.Tag == "" {
		ref.Tag = "latest"
	}
	desc, err := c.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	return desc.Digest, nil
}

// ArtifactType implements admission.Describer: the manifest's
// artifactType, else its config's media type.
func (r *registryVerdicts) ArtifactType(ctx context.Context, ref registry.Ref) (string, error) {
	c, err := client.New(client.Options{PlainHTTP: r.plain(ref), Insecure: r.insecure, UserAgent: "airlock-webhook/" + version()})
	if err != nil {
		return "", err
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return "", err
	}
	reference := ref.Reference()
	if reference == "" {
		reference = "latest"
	}
	_, rc, err := repo.FetchReference(ctx, reference)
	if err != nil {
		return "", fmt.Errorf("reading the manifest of %s: %w", ref, err)
	}
	defer rc.Close()
	var m struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	if err := json.NewDecoder(io.LimitReader(rc, 4<<20)).Decode(&m); err != nil {
		return "", fmt.Errorf("reading the manifest of %s: %w", ref, err)
	}
	if m.ArtifactType != "" {
		return m.ArtifactType, nil
	}
	return m.Config.MediaType, nil
}

// readVerdicts reads the verdicts on ref's digest signed by one of keys,
// and why expired ones were set aside. A broken verdict attestation is
// admission.ErrBadVerdict; a registry that cannot be read is any other
// error. The registry's tag guard and the webhook both read verdicts so.
func readVerdicts(ctx context.Context, ref registry.Ref, keys []*sign.Verifier, remote sign.Remote, now time.Time) ([]*gate.Verdict, []string, error) {
	rep, err := sign.Verify(ctx, ref, ref.Digest, keys, sign.VerifyOptions{Layout: sign.LayoutBundle, PredicateType: gate.VerdictType, Now: func() time.Time { return now }}, remote)
	if err != nil && !errors.Is(err, sign.ErrNotVerified) {
		return nil, nil, fmt.Errorf("reading the verdicts of %s: %w", ref.Digest, err)
	}
	if rep == nil {
		return nil, nil, nil
	}
	var expired []string
	for _, e := range rep.Expired {
		expired = append(expired, e.Reason)
	}
	if len(rep.Problems) > 0 {
		var why []string
		for _, p := range rep.Problems {
			why = append(why, p.Reason)
		}
		return nil, expired, fmt.Errorf("%w: %s", admission.ErrBadVerdict, strings.Join(why, "; "))
	}
	var out []*gate.Verdict
	for _, m := range rep.Matches {
		v, err := gate.ParseVerdict(m.Predicate)
		if err != nil {
			return nil, expired, fmt.Errorf("%w: verdict %s: %w", admission.ErrBadVerdict, m.Referrer, err)
		}
		out = append(out, v)
	}
	return out, expired, nil
}

// breakGlassKeys verify break-glass exceptions.
type breakGlassKeys []*sign.Verifier

// VerifySignature implements admission.SignatureVerifier.
func (ks breakGlassKeys) VerifySignature(payload, sig []byte) (string, error) {
	for _, k := range ks {
		if k.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)) == nil {
			return k.Name, nil
		}
	}
	return "", fmt.Errorf("no key of %d matches", len(ks))
}

func newWebhookExceptionCmd(g *globals) *cobra.Command {
	var (
		keyPath, namespace, by, reason, ticket string
		digests                                []string
		ttl                                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exception --key K.key --digest D --namespace NS --by WHO --reason WHY --ticket ID [--ttl 4h]",
		Short: "Sign a break-glass exception for the admission webhook",
		Long: `Exception signs a break-glass exception: permission to run the named
digests in the namespaces matching --namespace without a pass verdict, until
it expires. It prints the annotation to put on the object (and, for a
Deployment or other template, on its pod template, so that its pods carry
it). The webhook accepts it when admission.yaml lists the key's public half
under break_glass.trust and the exception lasts no longer than
break_glass.max_ttl (default 24h); every use is logged, annotated, counted
(airlock_admission_break_glass_total) and returned as a warning. An
exception never admits a revoked digest or a tag.

The key's password comes from AIRLOCK_PASSWORD or COSIGN_PASSWORD.`,
		Example: `  airlock webhook exception --key breakglass.key --digest sha256:4f… \
    --namespace prod-support --by alice@example.com --ticket INC-1234 \
    --reason "rollback to 1.3.2 while the gate's registry is down" --ttl 4h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case keyPath == "":
				return usageError{errors.New("--key is required")}
			case len(digests) == 0:
				return usageError{errors.New("--digest is required")}
			case namespace == "" || by == "" || reason == "" || ticket == "":
				return usageError{errors.New("--namespace, --by, --reason and --ticket are required: a break-glass exception says who, why and where")}
			case ttl <= 0:
				return usageError{errors.New("--ttl must be positive")}
			}
			for _, d := range digests {
				if _, err := digest.Parse(d); err != nil {
					return usageError{fmt.Errorf("--digest %q: %w", d, err)}
				}
			}
			signer, err := loadSigner(g, keyPath)
			if err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Second)
			payload, err := json.Marshal(admission.Exception{Schema: admission.ExceptionSchema, Digests: digests, Namespace: namespace,
				By: by, Reason: reason, Ticket: ticket, Issued: now, Expires: now.Add(ttl)})
			if err != nil {
				return err
			}
			sig, err := signer.SignMessage(bytes.NewReader(payload))
			if err != nil {
				return fmt.Errorf("signing the exception: %w", err)
			}
			fmt.Fprintf(g.stderr, "exception for %s in %q until %s\n", strings.Join(digests, ", "), namespace, now.Add(ttl).Format(time.RFC3339))
			fmt.Fprintf(g.stdout, "%s: %s\n", admission.ExceptionAnnotation, admission.EncodeException(payload, sig))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "key", "", "break-glass private key (airlock key generate)")
	f.StringArrayVar(&digests, "digest", nil, "release digest it admits; repeat for several")
	f.StringVar(&namespace, "namespace", "", "namespace pattern it applies in (path.Match glob)")
	f.StringVar(&by, "by", "", "who breaks the glass")
	f.StringVar(&reason, "reason", "", "why")
	f.StringVar(&ticket, "ticket", "", "the incident or change ticket")
	f.DurationVar(&ttl, "ttl", 4*time.Hour, "how long it lasts (at most the webhook's break_glass.max_ttl)")
	return cmd
}

func newWebhookCertsCmd(g *globals) *cobra.Command {
	var (
		dir      string
		p        admission.CertPolicy
		rotateCA bool
	)
	cmd := &cobra.Command{
		Use:   "certs --dir DIR --dns NAME [--dns NAME…]",
		Short: "Create and rotate the webhook's own certificates (without cert-manager)",
		Long: `Certs keeps self-managed certificates in DIR up to date: a CA of the
webhook's own (ca.crt, ca.key), the serving certificate it signs (tls.crt,
tls.key, for the --dns names) and ca-bundle.pem, the CAs the API server must
trust (the webhook configuration's caBundle). It creates what is missing and
renews what is within --renew-before of its end; running it often (a CronJob)
changes nothing that is not due.

A CA rotation overlaps: the next CA joins ca-bundle.pem at once, but signs
the serving certificate only after --overlap, time to publish the bundle to
the webhook configuration; the old CA stays in the bundle until it expires.
When ca-bundle.pem changes, this prints the command that publishes it.
airlock webhook serve reads the new serving certificate without a restart.`,
		Example: `  airlock webhook certs --dir /etc/airlock/tls --dns airlock-webhook.airlock-system.svc
  airlock webhook certs --dir certs --dns airlock-webhook.airlock-system.svc --rotate-ca`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || len(p.DNSNames) == 0 {
				return usageError{errors.New("--dir and --dns are required")}
			}
			p.RotateCA = rotateCA
			ch, err := admission.RotateCerts(dir, p)
			if err != nil {
				return err
			}
			if len(ch.Actions) == 0 {
				fmt.Fprintln(g.stderr, "certificates are up to date")
			}
			for _, a := range ch.Actions {
				fmt.Fprintln(g.stderr, a)
			}
			if ch.BundleChanged {
				fmt.Fprintf(g.stdout, "publish the CA bundle to the webhook configuration:\n  kubectl patch validatingwebhookconfiguration airlock-admission --type=json -p \"[{\\\"op\\\":\\\"replace\\\",\\\"path\\\":\\\"/webhooks/0/clientConfig/caBundle\\\",\\\"value\\\":\\\"$(base64 -w0 %s)\\\"}]\"\n",
					filepath.Join(dir, "ca-bundle.pem"))
			}
			if ch.NextStep != "" {
				fmt.Fprintln(g.stdout, ch.NextStep)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory of the certificates (created if missing)")
	f.StringArrayVar(&p.DNSNames, "dns", nil, "DNS name of the serving certificate (the Service's, such as airlock-webhook.airlock-system.svc); repeat for several")
	f.DurationVar(&p.CAValidity, "ca-validity", 10*365*24*time.Hour, "life of a new CA")
	f.DurationVar(&p.Validity, "validity", 90*24*time.Hour, "life of a serving certificate")
	f.DurationVar(&p.RenewBefore, "renew-before", 30*24*time.Hour, "renew a certificate or the CA this long before it expires")
	f.DurationVar(&p.Overlap, "overlap", 24*time.Hour, "how long a new CA is in the bundle before it signs")
	f.BoolVar(&rotateCA, "rotate-ca", false, "start a CA rotation now")
	return cmd
}
