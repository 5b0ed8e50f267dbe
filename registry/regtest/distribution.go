package regtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts for starting and stopping docker-registry. It normally answers
// /v2/ within a few tens of milliseconds; the start deadline only has to
// absorb a loaded CI machine.
const (
	startTimeout = 10 * time.Second
	pollInterval = 20 * time.Millisecond
	stopTimeout  = 5 * time.Second
)

// portAttempts bounds how often RunDistribution picks a new free port when
// the one it picked was taken between closing its probe listener and
// docker-registry binding it.
const portAttempts = 3

// DistributionConfig says how RunDistribution starts docker-registry. Only
// Dir is required.
type DistributionConfig struct {
	// Dir holds everything the registry writes: config.yml, registry.log and
	// the storage root storage/. It is created if missing and left in place
	// by Stop, so a demo or benchmark can inspect it afterwards.
	Dir string
	// Addr is the host:port to listen on. Empty picks a free port on
	// 127.0.0.1, which is what tests want; a demo may want a fixed one.
	Addr string
	// Binary is the docker-registry executable. Empty finds it with
	// FindTool("docker-registry"). distribution v3's registry reads the same
	// configuration, so its binary works here too.
	Binary string
	// LogLevel is distribution's log level: error, warn, info or debug.
	// Empty means warn, which keeps the log to problems and access lines.
	LogLevel string
	// Htpasswd is the path of an htpasswd file (bcrypt entries). When set,
	// the registry requires HTTP basic authentication for everything.
	Htpasswd string
}

// Proc is a registry process started by RunDistribution or RunAirlock.
type Proc struct {
	// Host is the address clients use in references, "127.0.0.1:PORT".
	Host string
	// URL is the registry's base URL, "http://127.0.0.1:PORT".
	URL string
	// Root is the filesystem storage root, for tests that inspect or corrupt
	// stored blobs directly.
	Root string
	// LogPath is the file that receives the registry's stdout and stderr.
	LogPath string
	// PID is the process ID, for benchmarks that read its /proc entries.
	PID int

	name string // "docker-registry", "airlock registry serve": for errors

	ctx      context.Context // the process's context; done once a stop was asked for
	cancel   context.CancelFunc
	done     chan struct{} // closed when the process has exited
	waitErr  error         // set before done is closed
	stopOnce sync.Once
	stopErr  error
}

// RunDistribution starts Debian's docker-registry (distribution v2.8.2) as a
// child process and returns once GET /v2/ answers 200. The registry has
// filesystem storage under cfg.Dir, deletion enabled and no authentication;
// it is plain HTTP, so it must only listen on loopback.
//
// Cancelling ctx stops the process as Stop does; call Stop when done in any
// case to wait for it to exit. It is the non-testing form of Distribution,
// for benchmark programs and demos.
func RunDistribution(ctx context.Context, cfg DistributionConfig) (*Proc, error) {
	if cfg.Dir == "" {
		return nil, errors.New("starting docker-registry: DistributionConfig.Dir is empty")
	}
	if cfg.Binary == "" {
		bin, err := FindTool("docker-registry")
		if err != nil {
			return nil, fmt.Errorf("starting docker-registry: %w", err)
		}
		cfg.Binary = bin
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	cfg.Dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}

	attempts := 1
	if cfg.Addr == "" {
		attempts = portAttempts
	}
	for i := 1; ; i++ {
		addr := cfg.Addr
		if addr == "" {
			if addr, err = FreeLoopbackAddr(); err != nil {
				return nil, fmt.Errorf("starting docker-registry: %w", err)
			}
		} else if err := checkFree(addr); err != nil {
			// Otherwise whatever already listens there could answer the
			// readiness probe in place of the registry that failed to bind.
			return nil, fmt.Errorf("starting docker-registry: %w", err)
		}
		p, err := startDistribution(ctx, cfg, addr)
		if err == nil {
			return p, nil
		}
		if i >= attempts || !errors.Is(err, errAddrInUse) {
			return nil, err
		}
	}
}

// errAddrInUse marks a start that failed only because the port was taken.
var errAddrInUse = errors.New("address already in use")

func startDistribution(ctx context.Context, cfg DistributionConfig, addr string) (*Proc, error) {
	configPath := filepath.Join(cfg.Dir, "config.yml")
	root := filepath.Join(cfg.Dir, "storage")
	conf := distributionConfig(root, addr, cfg.LogLevel)
	if cfg.Htpasswd != "" {
		conf += fmt.Sprintf("auth:\n  htpasswd:\n    realm: airlock-test\n    path: %s\n", strconv.Quote(cfg.Htpasswd))
	}
	if err := os.WriteFile(configPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("starting docker-registry: writing config: %w", err)
	}
	p, err := startProc(ctx, "docker-registry", cfg.Dir, addr, root, cfg.Binary, "serve", configPath)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// startProc runs a registry binary with its output in dir/registry.log and
// waits until it answers GET /v2/ on addr. name is how errors refer to it.
func startProc(ctx context.Context, name, dir, addr, root, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, "registry.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting %s: opening log: %w", name, err)
	}
	defer logFile.Close() // the child has its own descriptor after Start
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: opening log: %w", name, err)
	}

	procCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(procCtx, bin, args...)
	cmd.Dir = dir
	cmd.Env = registryEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Ask politely first so the registry can finish writes; WaitDelay then
	// escalates to SIGKILL.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}

	p := &Proc{
		Host:    addr,
		URL:     "http://" + addr,
		Root:    root,
		LogPath: logPath,
		PID:     cmd.Process.Pid,
		name:    name,
		ctx:     procCtx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	if err := p.waitReady(ctx); err != nil {
		_ = p.Stop()
		log := readFrom(logPath, logStart)
		if strings.Contains(log, "address already in use") {
			err = fmt.Errorf("%w: %w", err, errAddrInUse)
		}
		return nil, fmt.Errorf("starting %s on %s: %w\nregistry.log:\n%s", name, addr, err, log)
	}
	return p, nil
}

// waitReady polls GET /v2/ until it answers 200, the process exits, ctx is
// done or the start deadline passes.
func (p *Proc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			// 401 is a ready registry that wants credentials.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("process exited before answering /v2/: %w", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("no 200 from /v2/ within %v: %w (last error: %w)", startTimeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Stop terminates the registry (SIGTERM, then SIGKILL after 5s) and waits
// for it to exit. It returns an error only if the process had already failed
// on its own. It is safe to call more than once.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			// It exited before Stop. Unless that was the caller cancelling
			// ctx, it crashed, and the caller should hear about it.
			if p.ctx.Err() == nil {
				p.stopErr = fmt.Errorf("%s exited on its own: %w; log in %s", p.name, p.waitErr, p.LogPath)
			}
		default:
		}
		p.cancel()
		<-p.done
	})
	return p.stopErr
}

// Logs returns what docker-registry has written so far, for reporting a
// failure. At log level warn this is access lines and problems only.
func (p *Proc) Logs() string {
	return readFrom(p.LogPath, 0)
}

// distributionConfig renders config.yml for distribution v2.8. Deletion is
// on because Airlock deletes tags and manifests; upload purging is off so a
// background job cannot race with a test; there is no blob descriptor cache
// because the in-memory one keeps answering for deleted blobs; the HTTP
// secret is random because distribution warns on every start without one.
func distributionConfig(root, addr, level string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: %s
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
  headers:
    X-Content-Type-Options: [nosniff]
`, strconv.Quote(level), strconv.Quote(root), strconv.Quote(addr), strconv.Quote(rand.Text()))
}

// registryEnv is the environment for docker-registry without REGISTRY_*
// variables, which distribution reads as config overrides and which would
// otherwise leak in from a developer's shell.
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// FreeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment
// ago. Another process can take it before docker-registry binds it, which
// RunDistribution handles by retrying.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	return addr, nil
}

// checkFree reports an error if nothing can listen on addr right now.
func checkFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is not free: %w", addr, err)
	}
	return l.Close()
}

// readFrom returns the contents of path from offset on, or a note saying
// why it could not be read; it is only used to explain failures.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", path, err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return string(b[offset:])
}
