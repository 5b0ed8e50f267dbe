package regtest

import (
	"bytes"
	"context"
	"log"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Server is a registry started for one test. It is plain HTTP on loopback
// with no authentication, and it is stopped by t.Cleanup.
type Server struct {
	// Host is the registry's address as it appears in references,
	// "127.0.0.1:PORT".
	Host string
	// URL is the registry's base URL, "http://127.0.0.1:PORT".
	URL string
	// Root is the filesystem storage root of a Distribution server, for
	// tests that inspect or damage stored blobs; it is empty for InProcess.
	Root string
	// Close stops an Airlock server before the test ends (an outage);
	// nil for the others.
	Close func()
}

// Distribution starts Debian's docker-registry (distribution v2.8.2) for the
// test, in a temporary directory, and stops it when the test ends. Its log
// is passed to t.Log only if the test failed. If docker-registry is not
// installed the test is skipped, or fails when AIRLOCK_REQUIRE_INTEROP=1.
func Distribution(t testing.TB) *Server {
	t.Helper()
	bin := Tool(t, "docker-registry")
	// TempDir before Cleanup: cleanups run last-registered first, so the
	// process is stopped before its directory is removed.
	dir := t.TempDir()
	p, err := RunDistribution(context.Background(), DistributionConfig{Dir: dir, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("docker-registry log (%s):\n%s", p.Host, p.Logs())
		}
	})
	return &Server{Host: p.Host, URL: p.URL, Root: p.Root}
}

// InProcess starts go-containerregistry's registry with the OCI 1.1
// referrers API under httptest, and closes it when the test ends. It needs
// no external program, so it never skips. It keeps every blob and upload in
// memory: use it for small artifacts and Distribution for large ones. Its
// request log is passed to t.Log only if the test failed.
func InProcess(t testing.TB) *Server {
	t.Helper()
	var logs LockedBuffer
	h := registry.New(
		registry.WithReferrersSupport(true),
		registry.Logger(log.New(&logs, "", log.Lmicroseconds)),
	)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("in-process registry log (%s):\n%s", srv.Listener.Addr(), logs.String())
		}
	})
	return &Server{Host: srv.Listener.Addr().String(), URL: srv.URL}
}

// LockedBuffer is a bytes.Buffer that goroutines (a server's handlers, a
// child process's output copiers) can write to concurrently.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
