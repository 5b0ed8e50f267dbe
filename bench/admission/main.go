// Command admission measures the admission webhook's answer time under
// load. The target (the webhook issue): p99 under 5 ms at 500 requests/s
// with a warm cache.
//
// It builds airlock, starts `airlock registry serve`, pushes
// examples/support-bot, attaches a signed pass verdict for prod (with the
// gate's predicate and a generated key), and starts `airlock webhook
// serve` over HTTPS. A second process serves a no-op webhook over the
// same TLS certificate: it decodes the AdmissionReview and allows it,
// the least any webhook does. An open-loop load generator (a Go client
// keeping its connections, as the API server does) sends the same Pod
// CREATE review to each at -rate requests/s for -duration after a
// -warmup; latency is measured from the moment each request was due, so
// a slow answer delays nothing else. Every answer must be allowed.
//
// Usage (from the repository root):
//
//	go run ./bench/admission                         # 500/s for 20s
//	go run ./bench/admission -rate 500 -duration 5s -out bench/results/admission-smoke.md
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/sign"
)

type config struct {
	rate             int
	duration, warmup time.Duration
	target           time.Duration
	out              string
	noopAddr         string // internal: serve the no-op webhook here
	cert, key        string // internal: its certificate
}

func main() {
	var c config
	flag.IntVar(&c.rate, "rate", 500, "requests per second, open loop")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "timed load per webhook")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "untimed load first (fills the cache, opens connections)")
	flag.DurationVar(&c.target, "target", 5*time.Millisecond, "the p99 target the report checks Airlock against")
	flag.StringVar(&c.out, "out", "bench/results/admission.md", "write the markdown report here (relative to the repository root)")
	flag.StringVar(&c.noopAddr, "noop-serve", "", "internal: serve the no-op webhook on this address")
	flag.StringVar(&c.cert, "noop-cert", "", "internal")
	flag.StringVar(&c.key, "noop-key", "", "internal")
	flag.Parse()
	if c.noopAddr != "" {
		if err := serveNoop(c.noopAddr, c.cert, c.key); err != nil {
			fmt.Fprintln(os.Stderr, "bench/admission: no-op webhook:", err)
			os.Exit(1)
		}
		return
	}
	if c.rate < 1 || c.duration <= 0 || c.warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench/admission: -rate and -duration must be positive")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/admission:", err)
		os.Exit(1)
	}
}

// serveNoop is the baseline: decode the review, allow it.
func serveNoop(addr, cert, key string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/validate", func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(io.LimitReader(r.Body, 3<<20)).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServeTLS(cert, key)
}

type proc struct {
	cmd *exec.Cmd
	log *bytes.Buffer
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
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func start(name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, log: &log}, nil
}

func run(c config) error {
	ctx := context.Background()
	root, err := regtest.RepoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-admission-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	bin := filepath.Join(work, "airlock")
	benchkit.Logf("building airlock")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd", "airlock")).CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	reg, err := regtest.RunAirlock(ctx, regtest.AirlockConfig{Binary: bin, Dir: filepath.Join(work, "registry")})
	if err != nil {
		return err
	}
	defer func() { _ = reg.Stop() }()
	repo := reg.Host + "/acme/support-bot"
	out, err := exec.Command(bin, "push", filepath.Join(root, "examples", "support-bot"), repo+":1.0").CombinedOutput()
	if err != nil {
		return fmt.Errorf("push: %w\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	_, dgst, ok := strings.Cut(lines[len(lines)-1], "@")
	if !ok {
		return fmt.Errorf("push printed no digest:\n%s", out)
	}
	priv, pub, err := sign.GenerateKeyPair([]byte("bench"))
	if err != nil {
		return err
	}
	signer, err := sign.LoadSigner(priv, []byte("bench"))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	v, err := json.Marshal(gate.Verdict{Schema: gate.VerdictType, DecisionID: "bench", Subject: gate.Subject{Ref: repo, Digest: dgst},
		Environment: "prod", Outcome: gate.Pass, Revision: "sha256:bench", Time: now, Expires: now.Add(24 * time.Hour), Stage: "ci",
		Reasons: []gate.Reason{}, Warnings: []gate.Reason{}, Evidence: []gate.EvidenceRef{}})
	if err != nil {
		return err
	}
	ref, err := registry.ParseRef(repo)
	if err != nil {
		return err
	}
	if err := sign.Attest(ctx, ref, digest.Digest(dgst), signer, gate.VerdictType, v, sign.Remote{PlainHTTP: true}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "release.pub"), pub, 0o644); err != nil {
		return err
	}
	cfgFile := filepath.Join(work, "admission.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, "releases: [{registry: %q, repository: \"acme/*\"}]\ntrust: [release.pub]\nenvironments: [{namespace: \"prod-*\", environment: prod}]\n", reg.Host), 0o644); err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(work, "tls.crt"), filepath.Join(work, "tls.key")
	pool, err := writeCert(certFile, keyFile)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 256,
		MaxConnsPerHost:     0,
	}}

	webhookAddr, err := regtest.FreeLoopbackAddr()
	if err != nil {
		return err
	}
	noopAddr, err := regtest.FreeLoopbackAddr()
	if err != nil {
		return err
	}
	wh, err := start(bin, "webhook", "serve", "--config", cfgFile, "--addr", webhookAddr, "--tls-cert", certFile, "--tls-key", keyFile, "--log-level", "warn")
	if err != nil {
		return err
	}
	defer wh.stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	noop, err := start(self, "-noop-serve", noopAddr, "-noop-cert", certFile, "-noop-key", keyFile)
	if err != nil {
		return err
	}
	defer noop.stop()
	for _, a := range []string{webhookAddr, noopAddr} {
		if err := waitHTTP(hc, "https://"+a+"/healthz"); err != nil {
			return fmt.Errorf("%w\nwebhook log:\n%s", err, benchkit.Tail(wh.log.String(), 2000))
		}
	}

	body, err := reviewBody(repo + "@" + dgst)
	if err != nil {
		return err
	}
	results := map[string]stats{}
	for _, side := range []struct{ name, addr string }{{"no-op webhook", noopAddr}, {"airlock webhook serve", webhookAddr}} {
		url := "https://" + side.addr + "/validate"
		benchkit.Logf("%s: warm-up %s at %d/s", side.name, c.warmup, c.rate)
		if _, err := load(hc, url, body, c.rate, c.warmup); err != nil {
			return fmt.Errorf("%s: %w", side.name, err)
		}
		benchkit.Logf("%s: %s at %d/s", side.name, c.duration, c.rate)
		s, err := load(hc, url, body, c.rate, c.duration)
		if err != nil {
			return fmt.Errorf("%s: %w", side.name, err)
		}
		benchkit.Logf("%s: %d requests, p50 %s, p99 %s, %.0f/s", side.name, s.n, s.p50, s.p99, s.achieved)
		results[side.name] = s
	}
	return report(c, root, results, readMetric(hc, "https://"+webhookAddr+"/metrics"))
}

// reviewBody is a Pod CREATE in prod-a: the release as the model server's
// image and a sidecar that is not a release.
func reviewBody(release string) ([]byte, error) {
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "support-bot-7d9f", Namespace: "prod-a",
		Labels: map[string]string{"app": "support-bot"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "server", Image: release, Args: []string{"--port", "8080"}, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			{Name: "proxy", Image: "registry.k8s.io/pause:3.10"},
		}}}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "prod-a", Operation: admissionv1.Create,
			Object: k8sruntime.RawExtension{Raw: raw}},
	})
}

type stats struct {
	n                  int
	p50, p90, p99, max time.Duration
	achieved           float64
}

// load sends body to url at rate per second for d, open loop, and times
// each answer from when it was due. Any error or denial fails the run.
func load(hc *http.Client, url string, body []byte, rate int, d time.Duration) (stats, error) {
	total := int(d.Seconds() * float64(rate))
	if total == 0 {
		return stats{}, nil
	}
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	begin := time.Now()
	for i := range total {
		due := begin.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		wg.Go(func() {
			res, err := hc.Post(url, "application/json", bytes.NewReader(body))
			if err == nil {
				var review admissionv1.AdmissionReview
				err = json.NewDecoder(res.Body).Decode(&review)
				res.Body.Close()
				if err == nil && (review.Response == nil || !review.Response.Allowed) {
					err = fmt.Errorf("not allowed: %+v", review.Response)
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
		return stats{}, first
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		return lat[max(0, min(len(lat)-1, int(float64(len(lat))*p/100+0.999999)-1))]
	}
	return stats{n: total, p50: pct(50), p90: pct(90), p99: pct(99), max: lat[len(lat)-1], achieved: float64(total) / elapsed.Seconds()}, nil
}

func readMetric(hc *http.Client, url string) string {
	res, err := hc.Get(url)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "airlock_admission_cache_") || strings.HasPrefix(l, "airlock_admission_decisions_total") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func report(c config, root string, r map[string]stats, metrics string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# admission: a Pod CREATE review at %d requests/s\n\n", c.rate)
	fmt.Fprintf(&b, "Command: `go run ./bench/admission %s`; %s/%s, %d CPUs, %s. Open loop for %s after a %s warm-up; "+
		"latency from when each request was due to its decoded answer, over HTTPS with kept connections. Every answer allowed.\n\n",
		strings.Join(os.Args[1:], " "), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), c.duration, c.warmup)
	fmt.Fprintf(&b, "| webhook | requests | achieved/s | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|\n")
	for _, name := range []string{"no-op webhook", "airlock webhook serve"} {
		s := r[name]
		fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %s | %s |\n", name, s.n, s.achieved, ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max))
	}
	a, n := r["airlock webhook serve"], r["no-op webhook"]
	verdict := "meets"
	if a.p99 >= c.target {
		verdict = "MISSES"
	}
	fmt.Fprintf(&b, "\nAirlock p99 %s %s the target of p99 < %s; %.2f× the no-op webhook's p99 (%s), %.2f× its p50.\n",
		ms(a.p99), verdict, c.target, float64(a.p99)/float64(n.p99), ms(n.p99), float64(a.p50)/float64(n.p50))
	if metrics != "" {
		fmt.Fprintf(&b, "\nThe webhook's counters after the run:\n\n```\n%s\n```\n", metrics)
	}
	fmt.Print(b.String())
	return benchkit.WriteReport(root, c.out, b.String())
}

func writeCert(certFile, keyFile string) (*x509.CertPool, error) {
	cert, err := regtest.WriteLoopbackCert(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

func waitHTTP(hc *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := hc.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
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
