package promtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/registry/regtest"
)

// Deadlines. Prometheus is ready in well under a second with a small TSDB;
// the start deadline only has to absorb a loaded CI machine.
const (
	startTimeout = 30 * time.Second
	pollInterval = 20 * time.Millisecond
	stopTimeout  = 10 * time.Second
	portAttempts = 3
)

// Options says how Start runs Prometheus. The zero value is an empty
// Prometheus that scrapes nothing.
type Options struct {
	// ScrapeTargets are host:port addresses scraped at /metrics, as one
	// job named "airlock-test". Prometheus applies new targets at most
	// every 5 seconds, so the first scrape lands about 5s after Start.
	ScrapeTargets []string
	// ScrapeInterval is how often they are scraped (default 1s); it is
	// also the scrape timeout.
	ScrapeInterval time.Duration
	// DataDir is the TSDB directory, such as one Backfill filled; empty is
	// a new directory under the test's temporary directory.
	DataDir string
}

// Server is a Prometheus started for one test.
type Server struct {
	// URL is its base URL, "http://127.0.0.1:PORT".
	URL string
	// DataDir is its TSDB directory.
	DataDir string

	logs *regtest.LockedBuffer
}

// Logs returns what Prometheus has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// Start runs Prometheus for the test and returns once GET /-/ready answers
// 200. It is stopped (SIGTERM, then SIGKILL after 10s) when the test ends,
// and its log is passed to t.Log if the test failed. If prometheus is not
// installed the test is skipped, or fails when AIRLOCK_REQUIRE_INTEROP=1.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := regtest.Tool(t, "prometheus")
	// TempDir before the process's Cleanup: cleanups run last-registered
	// first, so Prometheus is stopped before its directory is removed.
	dir := t.TempDir()
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(dir, "data")
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config(opts)), 0o600); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	for attempt := 1; ; attempt++ {
		addr, err := regtest.FreeLoopbackAddr()
		if err != nil {
			t.Fatalf("starting prometheus: %v", err)
		}
		s, err := start(t, bin, configPath, opts.DataDir, addr)
		if err == nil {
			return s
		}
		// Another process may take the port between FreeLoopbackAddr
		// closing its listener and Prometheus binding it.
		if attempt == portAttempts || !errors.Is(err, errAddrInUse) {
			t.Fatal(err)
		}
	}
}

// errAddrInUse marks a start that failed only because the port was taken.
var errAddrInUse = errors.New("address already in use")

func start(t testing.TB, bin, configPath, dataDir, addr string) (*Server, error) {
	t.Helper()
	logs := &regtest.LockedBuffer{}
	// t.Context is cancelled before cleanups run; Prometheus must outlive
	// the other cleanups (it is stopped by its own), so only its values
	// are kept.
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+configPath,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = logs, logs
	// SIGTERM lets Prometheus close its TSDB; WaitDelay then escalates.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	s := &Server{URL: "http://" + addr, DataDir: dataDir, logs: logs}
	if err := waitReady(ctx, s.URL, done); err != nil {
		cancel()
		<-done
		if strings.Contains(logs.String(), "address already in use") {
			err = fmt.Errorf("%w: %w", err, errAddrInUse)
		}
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w (%w)", err, waitErr)
		}
		return nil, fmt.Errorf("starting prometheus on %s: %w\nprometheus log:\n%s", addr, err, logs.String())
	}
	t.Cleanup(func() {
		select {
		case <-done:
			t.Errorf("prometheus on %s exited before the test ended: %v", addr, waitErr)
		default:
		}
		cancel()
		<-done
		if t.Failed() {
			t.Logf("prometheus log (%s):\n%s", addr, logs.String())
		}
	})
	return s, nil
}

var errExited = errors.New("prometheus exited before it was ready")

// waitReady polls GET /-/ready until it answers 200, the process exits or
// the start deadline passes.
func waitReady(ctx context.Context, base string, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /-/ready: %s", resp.Status)
		}
		last = err
		select {
		case <-done:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %w (last: %w)", startTimeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// config renders prometheus.yml.
func config(o Options) string {
	iv := model(o.ScrapeInterval)
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", iv, iv, iv)
	if len(o.ScrapeTargets) > 0 {
		b.WriteString("scrape_configs:\n  - job_name: airlock-test\n    static_configs:\n      - targets:\n")
		for _, t := range o.ScrapeTargets {
			fmt.Fprintf(&b, "          - %s\n", strconv.Quote(t))
		}
	}
	return b.String()
}

// model writes d as a Prometheus duration (whole milliseconds).
func model(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}

// Backfill writes openMetrics (OpenMetrics text with a timestamp on every
// sample, ending in "# EOF"; see OpenMetrics) to a file and turns it into
// TSDB blocks with promtool tsdb create-blocks-from openmetrics, in a new
// directory under the test's temporary directory, which it returns for
// Options.DataDir.
//
// promtool cuts blocks at two-hour boundaries and Prometheus keeps them
// while they are within its retention (15 days) of the newest block, so
// any history of the last few hours is served as written. A sample out of
// order within its series is an error. If promtool is not installed the
// test is skipped, or fails when AIRLOCK_REQUIRE_INTEROP=1.
func Backfill(t testing.TB, openMetrics []byte) string {
	t.Helper()
	bin := regtest.Tool(t, "promtool")
	dir := t.TempDir()
	in := filepath.Join(dir, "backfill.om")
	out := filepath.Join(dir, "data")
	if err := os.WriteFile(in, openMetrics, 0o600); err != nil {
		t.Fatalf("backfilling: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "tsdb", "create-blocks-from", "openmetrics", "--quiet", in, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backfilling: promtool tsdb create-blocks-from openmetrics: %v\n%s", err, b)
	}
	return out
}
