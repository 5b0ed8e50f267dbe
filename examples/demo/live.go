package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/gate/canary/router"
)

// liveRate is the demo's live traffic, requests per second.
const liveRate = 30

// live is the serving side of the demo's canaries: SIMULATED model servers
// behind airlock router serve, live traffic through it, and a Prometheus
// scraping the router.
type live struct {
	canaryModel, regressedModel string // base URLs
	admin                       string
	router                      *router.Client
	plan, planText              string
	stops                       []func()
}

// startLive starts the model servers (good as stable, good as canary,
// regressed), the router (stable: stableDigest, canary: canaryDigest),
// Prometheus and the load, and writes the canary plan.
func startLive(ctx context.Context, bin, work, pubKey, stableDigest, canaryDigest string) (*live, error) {
	l := &live{}
	ok := false
	defer func() {
		if !ok {
			l.stop()
		}
	}()
	var addrs [5]string
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	stable, canary, regressed, proxy, admin := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	for _, m := range []struct{ addr, version string }{{stable, "good"}, {canary, "good"}, {regressed, "regressed"}} {
		if err := l.start(ctx, filepath.Join(work, "model-"+m.addr+".log"), bin, "demo-model", "serve", "--version", m.version, "--addr", m.addr); err != nil {
			return nil, err
		}
	}
	l.canaryModel, l.regressedModel, l.admin = "http://"+canary, "http://"+regressed, "http://"+admin
	l.router = router.NewClient(l.admin, "", &http.Client{Timeout: 10 * time.Second})
	routerYAML := filepath.Join(work, "router.yaml")
	if err := os.WriteFile(routerYAML, fmt.Appendf(nil, "stable: {url: \"http://%s\", digest: %q}\ncanary: {url: \"http://%s\", digest: %q}\nweight: 0\n",
		stable, stableDigest, canary, canaryDigest), 0o644); err != nil {
		return nil, err
	}
	if err := l.start(ctx, filepath.Join(work, "router.log"), bin, "router", "serve", "--config", routerYAML, "--addr", proxy, "--admin-addr", admin); err != nil {
		return nil, err
	}
	for _, u := range []string{"http://" + stable + "/v1/models", "http://" + canary + "/v1/models", "http://" + regressed + "/v1/models", l.admin + "/healthz"} {
		if err := waitOK(u, 30*time.Second); err != nil {
			return nil, err
		}
	}
	promURL, err := l.startPrometheus(ctx, work, admin)
	if err != nil {
		return nil, err
	}
	l.startLoad("http://" + proxy)

	l.planText = fmt.Sprintf(`apiVersion: airlock.dev/v1
kind: CanaryPlan
environment: prod
trust: [%s]
interval: 3s
steps: [{weight: 10, pause: 12s}, {weight: 50, pause: 12s}, {weight: 100}]
no_data: {extend: 3s, max_extensions: 2}
metrics:
  - name: ttft
    kind: latency
    tolerance: 10%%
    min_samples: 20
    query:
      histogram: airlock_router_ttft_seconds_bucket{variant="{{.Variant}}",digest="{{.Digest}}"}
  - name: errors
    kind: error
    min_samples: 20
    query:
      events: sum(increase(airlock_router_errors_total{variant="{{.Variant}}",digest="{{.Digest}}"}[{{.Window}}]))
      requests: sum(increase(airlock_router_requests_total{variant="{{.Variant}}",digest="{{.Digest}}"}[{{.Window}}]))
provider:
  prometheus: {url: %s}
actuator:
  router: {url: %s}
rollback: {kill_switch: true}
`, pubKey, promURL, l.admin)
	l.plan = filepath.Join(work, "canary.yaml")
	if err := os.WriteFile(l.plan, []byte(l.planText), 0o644); err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

func (l *live) start(ctx context.Context, logFile, bin string, args ...string) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s %s: %w", filepath.Base(bin), strings.Join(args[:2], " "), err)
	}
	l.stops = append(l.stops, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		f.Close()
	})
	return nil
}

// startPrometheus runs Debian's prometheus (make demo installs it)
// scraping the router's admin address every second.
func (l *live) startPrometheus(ctx context.Context, work, target string) (string, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("prometheus is not installed (make demo installs it with .ci/install-tools.sh demo): %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(work, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: airlock-router\n    static_configs: [{targets: [%q]}]\n", target), 0o644); err != nil {
		return "", err
	}
	if err := l.start(ctx, filepath.Join(dir, "prometheus.log"), bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr); err != nil {
		return "", err
	}
	url := "http://" + addr
	return url, waitOK(url+"/-/ready", 30*time.Second)
}

// startLoad sends streamed chat completions through the router at liveRate
// per second, open loop, until stop.
func (l *live) startLoad(proxy string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	prompts := []string{"What is the capital of France?", "What is 2+2?", "How do I reset my password?", "What are your opening hours?"}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		for ctx.Err() == nil {
			time.Sleep(time.Duration(rng.ExpFloat64() * float64(time.Second) / liveRate))
			wg.Add(1)
			go func(p string) {
				defer wg.Done()
				body := fmt.Sprintf(`{"model":"demo-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":%q}]}`, p)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, proxy+"/v1/chat/completions", strings.NewReader(body))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if res, err := hc.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}(prompts[rng.IntN(len(prompts))])
		}
	}()
	l.stops = append(l.stops, func() { cancel(); wg.Wait() })
}

// setCanary points the router's canary upstream at url, labelled digest,
// keeping its stable upstream (the admin API: PUT /admin/upstreams).
func (l *live) setCanary(ctx context.Context, url, digest string) error {
	st, err := l.router.State(ctx)
	if err != nil {
		return err
	}
	u := router.Upstreams{Stable: &st.Stable, Canary: &router.Upstream{URL: url, Digest: digest}}
	body, err := json.Marshal(u)
	if err != nil {
		return err
	}
	fmt.Printf("# The router's admin API: PUT %s/admin/upstreams %s\n\n", l.admin, body)
	return l.router.SetUpstreams(ctx, u)
}

// state describes the router's routing state.
func (l *live) state(ctx context.Context) (string, error) {
	st, err := l.router.State(ctx)
	if err != nil {
		return "", err
	}
	ks := "off"
	if st.KillSwitch.On {
		ks = "ON (" + st.KillSwitch.Reason + ")"
	}
	return fmt.Sprintf("canary weight %d%%, stable %s, kill-switch %s", st.Weight, st.Stable.Digest, ks), nil
}

func (l *live) stop() {
	for i := len(l.stops) - 1; i >= 0; i-- {
		l.stops[i]()
	}
	l.stops = nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitOK polls url until it answers 200, for up to timeout.
func waitOK(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := http.Get(url)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", res.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
