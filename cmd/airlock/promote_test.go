package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/canary"
	"github.com/airlock-dev/airlock/gate/canary/promtest"
	"github.com/airlock-dev/airlock/gate/canary/router"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/airlock-dev/airlock/registry/sign"
)

// TestPromoteWithPrometheus runs `airlock promote` against live traffic:
// `airlock router serve` in front of `airlock demo-model serve` processes
// (the reference server's good and regressed versions), a real Prometheus
// scraping the router every second, and a load of streamed chat
// completions through the router. Three canaries of releases with pass
// verdicts for prod, against the release prod points at:
//
//   - served by the regressed version: rolled back at the first step with
//     the reason, the kill-switch on, prod unmoved;
//   - served by the good version: promoted through every step, prod moved
//     to it, and it becomes the router's stable upstream;
//   - served by the good version under too little traffic: extended, then
//     paused for a human, not failed.
//
// Each promotion attaches a signed promotion record.
func TestPromoteWithPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus, the router and three model servers")
	}
	bin := buildAirlock(t)
	work := t.TempDir()
	ctx := context.Background()
	reg := regtest.Airlock(t, server.Config{})
	repo := reg.Host + "/acme/support-bot"
	ref, err := registry.ParseRef(repo)
	must(t, err)

	// Releases with pass verdicts for prod, signed by a test key (the
	// gate's predicate, made here rather than by running the gate).
	priv, pub, err := sign.GenerateKeyPair([]byte("test"))
	must(t, err)
	signer, err := sign.LoadSigner(priv, []byte("test"))
	must(t, err)
	keyFile, pubFile := filepath.Join(work, "release.key"), filepath.Join(work, "release.pub")
	must(t, os.WriteFile(keyFile, priv, 0o600))
	must(t, os.WriteFile(pubFile, pub, 0o644))
	now := time.Now().UTC()
	release := func(variant string) string {
		t.Helper()
		dir := filepath.Join(work, "src-"+variant)
		copyDir(t, filepath.Join("..", "..", "examples", "support-bot"), dir)
		f, err := os.OpenFile(filepath.Join(dir, "prompts", "system.md"), os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		fmt.Fprintf(f, "\n<!-- %s -->\n", variant)
		must(t, f.Close())
		out, err := exec.Command(bin, "push", dir, repo+":"+variant).CombinedOutput()
		if err != nil {
			t.Fatalf("push %s: %v\n%s", variant, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		_, d, _ := strings.Cut(lines[len(lines)-1], "@")
		v := gate.Verdict{Schema: gate.VerdictType, DecisionID: "test-" + variant, Subject: gate.Subject{Ref: repo, Digest: d},
			Environment: "prod", Outcome: gate.Pass, Revision: "sha256:test", Time: now.Add(-time.Hour), Expires: now.Add(24 * time.Hour),
			Stage: "ci", Reasons: []gate.Reason{}, Warnings: []gate.Reason{}, Evidence: []gate.EvidenceRef{}}
		b, err := json.Marshal(v)
		must(t, err)
		must(t, sign.Attest(ctx, ref, digest.Digest(d), signer, gate.VerdictType, b, sign.Remote{PlainHTTP: true}))
		return d
	}
	v1, regressed, good, quiet := release("1.0"), release("regressed"), release("good"), release("quiet")
	if out, err := exec.Command(bin, "tag", repo+"@"+v1, "prod").CombinedOutput(); err != nil {
		t.Fatalf("tag prod: %v\n%s", err, out)
	}

	// The serving side: three model servers, the router, Prometheus.
	start := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var logs regtest.LockedBuffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		must(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s log:\n%s", name, tail(logs.String(), 3000))
			}
		})
	}
	addr := func() string {
		a, err := regtest.FreeLoopbackAddr()
		must(t, err)
		return a
	}
	stableAddr, goodAddr, regressedAddr, proxy, admin := addr(), addr(), addr(), addr(), addr()
	start("stable model", "demo-model", "serve", "--version", "good", "--addr", stableAddr)
	start("good model", "demo-model", "serve", "--version", "good", "--addr", goodAddr)
	start("regressed model", "demo-model", "serve", "--version", "regressed", "--addr", regressedAddr)
	routerConfig := filepath.Join(work, "router.yaml")
	must(t, os.WriteFile(routerConfig, fmt.Appendf(nil, "stable: {url: \"http://%s\", digest: %q}\ncanary: {url: \"http://%s\", digest: %q}\n",
		stableAddr, v1, regressedAddr, regressed), 0o644))
	start("router", "router", "serve", "--config", routerConfig, "--addr", proxy, "--admin-addr", admin)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	for _, a := range []string{stableAddr, goodAddr, regressedAddr} {
		waitHTTP(t, hc, "http://"+a+"/v1/models")
	}
	waitHTTP(t, hc, "http://"+admin+"/healthz")
	prom := promtest.Start(t, promtest.Options{ScrapeTargets: []string{admin}, ScrapeInterval: time.Second})
	rc := router.NewClient("http://"+admin, "", hc)

	// Live traffic: streamed chat completions at rate per second, open
	// loop, from prompts the model servers know.
	var rate atomic.Int64
	rate.Store(40)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	prompts := []string{"What is the capital of France?", "What is 2+2?", "How do I reset my password?", "What are your opening hours?",
		"Summarise this ticket: my card payment failed, please refund me."}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		inflight := make(chan struct{}, 128)
		for loadCtx.Err() == nil {
			time.Sleep(time.Duration(float64(time.Second) / float64(rate.Load()) * rng.ExpFloat64()))
			select {
			case inflight <- struct{}{}:
			default:
				continue // the servers are saturated; drop rather than queue
			}
			wg.Add(1)
			go func(p string) {
				defer wg.Done()
				defer func() { <-inflight }()
				body := fmt.Sprintf(`{"model":"demo-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":%q}]}`, p)
				req, _ := http.NewRequestWithContext(loadCtx, http.MethodPost, "http://"+proxy+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				sent.Add(1)
				res, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}(prompts[rng.IntN(len(prompts))])
		}
	}()
	t.Cleanup(func() { stopLoad(); wg.Wait() })

	// The plan: steps of 25% and 50%, a look every 3s, latency (TTFT
	// histogram) and errors by variant and digest from Prometheus, the
	// router as actuator, and the kill-switch on rollback.
	plan := filepath.Join(work, "canary.yaml")
	must(t, os.WriteFile(plan, fmt.Appendf(nil, `apiVersion: airlock.dev/v1
kind: CanaryPlan
environment: prod
trust: [release.pub]
alpha: 0.05
interval: 3s
steps: [{weight: 25, pause: 12s}, {weight: 50, pause: 12s}, {weight: 100}]
no_data: {extend: 3s, max_extensions: 1}
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
  prometheus: {url: %q}
actuator:
  router: {url: "http://%s"}
rollback: {kill_switch: true}
`, prom.URL, admin), 0o644))

	promote := func(t *testing.T, d, state string, wantExit int) (string, string, *canary.Record) {
		t.Helper()
		cmd := exec.Command(bin, "promote", repo+"@"+d, "--config", plan, "--key", keyFile, "--state", filepath.Join(work, state))
		cmd.Env = append(os.Environ(), "AIRLOCK_PASSWORD=test")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			code = xe.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("airlock promote: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
		if code != wantExit {
			t.Fatalf("exit %d, want %d", code, wantExit)
		}
		b, err := os.ReadFile(filepath.Join(work, state))
		must(t, err)
		var rec canary.Record
		must(t, json.Unmarshal(b, &rec))
		return stdout.String(), stderr.String(), &rec
	}
	prodIs := func(t *testing.T, want string) {
		t.Helper()
		out, err := exec.Command(bin, "inspect", repo+":prod", "--json").Output()
		must(t, err)
		if !strings.Contains(string(out), want) {
			t.Errorf("prod does not point at %s", want)
		}
	}
	recordAttached := func(t *testing.T, d string) {
		t.Helper()
		out, err := exec.Command(bin, "verify", repo+"@"+d, "--key", pubFile, "--attestations", "promotion").CombinedOutput()
		if err != nil {
			t.Errorf("the promotion record of %s does not verify: %v\n%s", d, err, out)
		}
	}
	setUpstreams := func(t *testing.T, stableURL, stableDigest, canaryURL, canaryDigest string) {
		t.Helper()
		must(t, rc.SetUpstreams(ctx, router.Upstreams{
			Stable: &router.Upstream{URL: "http://" + stableURL, Digest: stableDigest},
			Canary: &router.Upstream{URL: "http://" + canaryURL, Digest: canaryDigest}}))
	}

	t.Run("regressed canary is rolled back at the first step", func(t *testing.T) {
		stdout, stderr, rec := promote(t, regressed, "regressed.json", 1)
		if rec.Phase != canary.RolledBack || rec.Step != 0 || !strings.HasPrefix(rec.Reason, "rolled back at step 1 (25%): ") {
			t.Fatalf("%s at step %d: %s", rec.Phase, rec.Step, rec.Reason)
		}
		if !strings.Contains(stdout, "rolled back: rolled back at step 1 (25%): ttft: canary mean") || !strings.Contains(stderr, "step 1 (25%)") {
			t.Errorf("the output does not give the reason and the looks:\n%s\n%s", stdout, stderr)
		}
		st, err := rc.State(ctx)
		must(t, err)
		if st.Weight != 0 || !st.KillSwitch.On || !strings.Contains(st.KillSwitch.Reason, "ttft") {
			t.Errorf("router after the rollback: weight %d, kill-switch %+v", st.Weight, st.KillSwitch)
		}
		prodIs(t, v1)
		recordAttached(t, regressed)
	})

	t.Run("good canary is promoted", func(t *testing.T) {
		setUpstreams(t, stableAddr, v1, goodAddr, good)
		_, _, rec := promote(t, good, "good.json", 0)
		if rec.Phase != canary.Promoted {
			t.Fatalf("%s: %s", rec.Phase, rec.Reason)
		}
		weights := []string{}
		for _, a := range rec.Actions {
			if strings.HasPrefix(a.What, "weight") || strings.HasPrefix(a.What, "kill-switch") {
				weights = append(weights, a.What)
			}
		}
		if got := strings.Join(weights, ", "); got != "kill-switch off, weight 25%, weight 50%, weight 100%" {
			t.Errorf("actions on traffic: %s", got)
		}
		for _, l := range rec.Looks {
			if l.Assessment.Status == canary.Fail {
				t.Errorf("a look failed the good canary: %+v", l.Assessment.Failed())
			}
		}
		prodIs(t, good)
		st, err := rc.State(ctx)
		must(t, err)
		if st.Stable.Digest != good || st.Canary != nil || st.KillSwitch.On {
			t.Errorf("router after the promotion: stable %s, canary %v, kill-switch %v", st.Stable.Digest, st.Canary, st.KillSwitch.On)
		}
		recordAttached(t, good)
	})

	t.Run("canary with too little traffic is extended, not failed", func(t *testing.T) {
		setUpstreams(t, goodAddr, good, stableAddr, quiet)
		rate.Store(2)
		defer rate.Store(40)
		_, stderr, rec := promote(t, quiet, "quiet.json", 2)
		if rec.Phase != canary.Paused || !strings.Contains(rec.Reason, "still no data after 1 extensions") {
			t.Fatalf("%s: %s", rec.Phase, rec.Reason)
		}
		extended := false
		for _, a := range rec.Actions {
			extended = extended || a.What == "extended"
		}
		for _, l := range rec.Looks {
			if l.Assessment.Status == canary.Fail {
				t.Errorf("a look failed the quiet canary: %v", l.Assessment.Failed())
			}
		}
		if !extended || !strings.Contains(stderr, "--resume") {
			t.Errorf("extended %v; the message should say how to resume:\n%s", extended, stderr)
		}
		st, err := rc.State(ctx)
		must(t, err)
		if st.KillSwitch.On {
			t.Error("a canary without data engaged the kill-switch")
		}
		prodIs(t, good)
	})
	if t.Failed() {
		t.Logf("load: %d requests sent, %d failed to connect\nPrometheus log:\n%s", sent.Load(), failed.Load(), tail(prom.Logs(), 2000))
	}
}
