package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRegistryServeGCFsck runs `airlock registry serve` in-process, pushes
// and pulls through it, stops it, and checks the store with fsck and gc.
func TestRegistryServeGCFsck(t *testing.T) {
	isolate(t)
	root := filepath.Join(t.TempDir(), "reg")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serveErr lockedBuffer
	go func() {
		done <- Run(ctx, []string{"registry", "serve", "--addr", host, "--root", root}, strings.NewReader(""), &bytes.Buffer{}, &serveErr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry did not start: %s", serveErr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for the listener, bounded by the deadline
	}
	ref := host + "/acme/support-bot"
	if code, _, stderr := airlock(t, "push", example, ref); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	if code, _, stderr := airlock(t, "pull", ref+":1.4.0", "-o", t.TempDir()); code != 0 {
		t.Fatalf("pull: %s", stderr)
	}
	resp, err := http.Get("http://" + host + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), "airlock_registry_requests_total") {
		t.Error("no airlock_registry_requests_total on /metrics")
	}
	// While it serves, the registry holds its storage: gc --root says so,
	// gc --server runs inside it.
	if code, _, stderr := airlock(t, "registry", "gc", "--root", root); code != ExitError || !strings.Contains(stderr, "gc --server") {
		t.Fatalf("gc --root of a served registry: exit %d %s", code, stderr)
	}
	// A re-pushed tag would leave garbage, but release tags are immutable;
	// an unreferenced blob is garbage once older than the (zero) grace.
	orphan := []byte("orphan blob")
	od := "sha256:" + fmt.Sprintf("%x", sha256.Sum256(orphan))
	resp, err = http.Post("http://"+host+"/v2/acme/orphan/blobs/uploads/?digest="+od, "application/octet-stream", bytes.NewReader(orphan))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("orphan blob: %v %v", err, resp)
	}
	resp.Body.Close()
	code, out, stderr := airlock(t, "registry", "gc", "--server", "http://"+host, "--grace", "1ns", "--apply")
	var remote struct {
		DryRun bool
		Swept  []struct{ Digest string }
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &remote) != nil || remote.DryRun || len(remote.Swept) != 1 || remote.Swept[0].Digest != od {
		t.Fatalf("gc --server --apply: exit %d %s %s", code, out, stderr)
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, serveErr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}

	code, out, stderr = airlock(t, "registry", "fsck", "--root", root, "--verify-content")
	var rep struct {
		Blobs, Manifests int
		Problems         []any
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Blobs != 10 || rep.Manifests != 1 || len(rep.Problems) != 0 {
		t.Fatalf("fsck: exit %d %s %s", code, out, stderr)
	}
	code, out, _ = airlock(t, "registry", "gc", "--root", root)
	var gc struct {
		DryRun bool
		Swept  []any
	}
	if code != 0 || json.Unmarshal([]byte(out), &gc) != nil || !gc.DryRun || len(gc.Swept) != 0 {
		t.Fatalf("gc: exit %d %s", code, out)
	}
	if code, _, stderr := airlock(t, "registry", "fsck", "--root", filepath.Join(root, "typo")); code != ExitError || !strings.Contains(stderr, "no registry at") {
		t.Fatalf("fsck of a missing root: exit %d %s", code, stderr)
	}
}

// lockedBuffer lets the test read what the server writes while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
