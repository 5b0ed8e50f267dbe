package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// serveGGCR is the child process: go-containerregistry's in-memory
// registry on addr. It prints "listening HOST:PORT" on stdout once it
// accepts connections and serves until SIGTERM or SIGINT.
func serveGGCR(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	h := registry.New(
		registry.Logger(log.New(io.Discard, "", 0)), // it logs every request otherwise
		registry.WithReferrersSupport(true),
		registry.WithBlobHandler(&repoBlobs{repos: map[string]registry.BlobHandler{}}),
	)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Printf("listening %s\n", l.Addr())
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// repoBlobs is go-containerregistry's in-memory blob store
// (registry.NewInMemoryBlobHandler), one per repository. The stock store
// keys blobs by digest alone, so a blob pushed to one repository exists in
// all of them and whichever tool pushed second would skip its upload; every
// real registry scopes blobs to repositories.
type repoBlobs struct {
	mu    sync.Mutex
	repos map[string]registry.BlobHandler
}

// of returns repo's store, creating it on first use. Every method the
// registry calls is implemented by the stock store, which also supplies
// the "not found" error the registry turns into 404.
func (r *repoBlobs) of(repo string) registry.BlobHandler {
	// v0.20.6 passes "NAME/blobs" as the repository when an upload session
	// is closed (PUT /v2/NAME/blobs/uploads/ID) and "NAME" everywhere else.
	repo = strings.TrimSuffix(repo, "/blobs")
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.repos[repo]
	if !ok {
		h = registry.NewInMemoryBlobHandler()
		r.repos[repo] = h
	}
	return h
}

func (r *repoBlobs) Get(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	return r.of(repo).Get(ctx, repo, h)
}

func (r *repoBlobs) Stat(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	return r.of(repo).(registry.BlobStatHandler).Stat(ctx, repo, h)
}

func (r *repoBlobs) Put(ctx context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	return r.of(repo).(registry.BlobPutHandler).Put(ctx, repo, h, rc)
}

func (r *repoBlobs) Delete(ctx context.Context, repo string, h v1.Hash) error {
	return r.of(repo).(registry.BlobDeleteHandler).Delete(ctx, repo, h)
}

// ggcrServer is a running serveGGCR child.
type ggcrServer struct {
	host    string
	logPath string
	ctx     context.Context // the child's; done once a stop was asked for
	cancel  context.CancelFunc
	done    chan struct{}
	waitErr error
	stopped bool
	pid     int
	peak    int64 // VmHWM read just before stopping, bytes
}

// startGGCR re-executes this program as the registry and waits until it
// answers GET /v2/.
func startGGCR(ctx context.Context, dir string) (*ggcrServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "ggcr.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	pctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(pctx, self, serveFlag, "127.0.0.1:0")
	cmd.Stderr = logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	setParentDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	s := &ggcrServer{logPath: logPath, ctx: pctx, cancel: cancel, done: make(chan struct{}), pid: cmd.Process.Pid}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	fail := func(err error) (*ggcrServer, error) {
		_ = s.Stop()
		return nil, fmt.Errorf("starting ggcr registry: %w\n%s", err, s.Logs())
	}
	select {
	case line, ok := <-lines:
		addr, found := strings.CutPrefix(line, "listening ")
		if !ok || !found {
			return fail(fmt.Errorf("no address from the child (got %q)", line))
		}
		s.host = addr
	case <-time.After(10 * time.Second):
		return fail(errors.New("no address from the child within 10s"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if err := waitV2(ctx, "http://"+s.host); err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *ggcrServer) Host() string { return s.host }

// PeakRSS is the child's peak resident memory, known after Stop.
func (s *ggcrServer) PeakRSS() int64 { return s.peak }

// Stop sends SIGTERM (SIGKILL 5s later) and waits for the exit. It reports
// an error if the child had exited on its own.
func (s *ggcrServer) Stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.peak = benchkit.PeakRSS(s.pid)
	var err error
	select {
	case <-s.done:
		if s.ctx.Err() != nil {
			break // the caller's context was cancelled: not a crash
		}
		err = fmt.Errorf("ggcr registry exited on its own: %w", s.waitErr)
	default:
	}
	s.cancel()
	<-s.done
	return err
}

func (s *ggcrServer) Logs() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// waitV2 polls GET /v2/ until it answers 200, for up to 10s.
func waitV2(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("no 200 from %s/v2/: %w", base, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
