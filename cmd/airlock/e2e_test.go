package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/opencontainers/go-digest"
)

// buildAirlock compiles this command for tests that need a process to kill.
func buildAirlock(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "airlock")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// slowReader trickles a response so a test can kill the reader mid-way.
// It is a fake network: no real part slows down on demand.
type slowReader struct {
	r    io.ReadCloser
	slow *atomic.Bool
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.slow.Load() {
		if len(p) > 64<<10 {
			p = p[:64<<10]
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s.r.Read(p)
}

func (s *slowReader) Close() error { return s.r.Close() }

// TestKilledPullResumes kills `airlock pull` in the middle of a layer and
// checks that nothing is under the final name, then that the next pull
// resumes from where the killed one stopped.
func TestKilledPullResumes(t *testing.T) {
	bin := buildAirlock(t)
	srv := regtest.Distribution(t)
	env := append(os.Environ(), "AIRLOCK_CACHE_DIR="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir())

	rel := t.TempDir()
	weights := make([]byte, 48<<20)
	if _, err := rand.Read(weights); err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(rel, "model"), 0o755))
	must(t, os.WriteFile(filepath.Join(rel, "model", "w.safetensors"), weights, 0o644))
	must(t, os.WriteFile(filepath.Join(rel, "airlock.yaml"), []byte("apiVersion: airlock.dev/v1\nkind: Release\nmetadata: {name: w, version: 1.0.0}\nmodel: {path: model}\n"), 0o644))
	push := exec.Command(bin, "push", rel, srv.Host+"/acme/w:1.0.0")
	push.Env = env
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}

	var slow atomic.Bool
	slow.Store(true)
	upstream, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.ModifyResponse = func(r *http.Response) error {
		if strings.Contains(r.Request.URL.Path, "/blobs/") {
			r.Body = &slowReader{r: r.Body, slow: &slow}
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	defer front.Close()
	ref := strings.TrimPrefix(front.URL, "http://") + "/acme/w:1.0.0"

	out := t.TempDir()
	final := filepath.Join(out, "model", "w.safetensors")
	part := filepath.Join(out, ".airlock-partial", digest.FromBytes(weights).Encoded())
	pull := exec.Command(bin, "pull", ref, "-o", out)
	pull.Env = env
	must(t, pull.Start())
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(part); err == nil && fi.Size() >= 4<<20 {
			break
		}
		if time.Now().After(deadline) {
			pull.Process.Kill()
			t.Fatal("pull never got 4 MiB into the layer")
		}
		time.Sleep(20 * time.Millisecond) // polling for the file, bounded by the deadline
	}
	must(t, pull.Process.Kill())
	pull.Wait()
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("killed pull left a file under the final name: %v", err)
	}
	fi, err := os.Stat(part)
	must(t, err)

	slow.Store(false)
	again := exec.CommandContext(context.Background(), bin, "pull", ref, "-o", out, "--json")
	again.Env = env
	var stdout, stderr bytes.Buffer
	again.Stdout, again.Stderr = &stdout, &stderr
	if err := again.Run(); err != nil {
		t.Fatalf("second pull: %v\n%s", err, stderr.String())
	}
	var res struct {
		Files []struct {
			Path    string
			Resumed int64
		}
	}
	must(t, json.Unmarshal(stdout.Bytes(), &res))
	if len(res.Files) != 1 || res.Files[0].Resumed < fi.Size() {
		t.Fatalf("second pull did not resume from %d bytes: %s", fi.Size(), stdout.String())
	}
	got, err := os.ReadFile(final)
	if err != nil || !bytes.Equal(got, weights) {
		t.Fatalf("resumed file differs (%v)", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
