package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/opencontainers/go-digest"
)

// faultyNetwork is a fake network between a real client and a real
// registry: it cuts or corrupts blob downloads on demand, which no real
// registry does when asked. It records the Range header of every blob GET.
type faultyNetwork struct {
	target  digest.Digest // only this blob is touched
	cutAt   int64         // cut each response body after this many bytes (0: never)
	cuts    int           // how many responses to cut (-1: all)
	corrupt bool          // flip one byte instead

	mu     sync.Mutex
	ranges []string
}

func (f *faultyNetwork) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/blobs/"+f.target.String()) {
		return resp, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ranges = append(f.ranges, req.Header.Get("Range"))
	switch {
	case f.corrupt:
		resp.Body = &flipReader{r: resp.Body}
	case f.cutAt > 0 && f.cuts != 0:
		f.cuts--
		resp.Body = &cutReader{r: resp.Body, left: f.cutAt}
	}
	return resp, nil
}

func (f *faultyNetwork) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ranges...)
}

type cutReader struct {
	r    io.ReadCloser
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cutReader) Close() error { return c.r.Close() }

type flipReader struct {
	r    io.ReadCloser
	done bool
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 0xff
		f.done = true
	}
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

// pushBig pushes a release with size bytes of weights to docker-registry,
// which serves byte ranges as the distribution spec allows.
func pushBig(t *testing.T, size int64) (registry.Ref, []byte) {
	t.Helper()
	srv := regtest.Distribution(t)
	dir, weights := bigRelease(t, size)
	r := ref(t, srv.Host+"/acme/big:1.0.0")
	if _, err := newClient(t, client.Options{}).PushDir(context.Background(), load(t, dir), r, client.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	return r, weights
}

func TestPullResumesAfterABrokenConnection(t *testing.T) {
	r, weights := pushBig(t, 8<<20)
	net := &faultyNetwork{target: digest.FromBytes(weights), cutAt: 3 << 20, cuts: 2}
	out := t.TempDir()
	res, err := newClient(t, client.Options{Transport: net}).Pull(context.Background(), r, out, client.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "model/weights.safetensors"))
	if err != nil || !bytes.Equal(got, weights) {
		t.Fatalf("weights differ after resume (%v)", err)
	}
	want := []string{"", "bytes=3145728-8388607", "bytes=6291456-8388607"}
	if s := net.seen(); strings.Join(s, "|") != strings.Join(want, "|") {
		t.Fatalf("Range headers %q, want %q", s, want)
	}
	if res.Bytes != int64(len(weights))+int64(len("{\"hidden\": 8}")+len("Be brief.")+len("refuse: [weapons]\n")) {
		t.Errorf("downloaded %d bytes: resumed bytes were fetched twice?", res.Bytes)
	}
}

// TestInterruptedPullResumesNextRun checks the promise made to a user whose
// pull died: nothing unverified under the final name, and the next pull
// starts where the last one stopped.
func TestInterruptedPullResumesNextRun(t *testing.T) {
	r, weights := pushBig(t, 8<<20)
	out := t.TempDir()
	final := filepath.Join(out, "model/weights.safetensors")
	net := &faultyNetwork{target: digest.FromBytes(weights), cutAt: 2 << 20, cuts: -1} // two attempts reach 4 of 8 MiB
	_, err := newClient(t, client.Options{Transport: net}).Pull(context.Background(), r, out, client.PullOptions{Retries: 1})
	if err == nil {
		t.Fatal("pull through a network that always breaks succeeded")
	}
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a partial download is under the final name: %v", err)
	}
	part := filepath.Join(out, client.PartialDir, digest.FromBytes(weights).Encoded())
	fi, err := os.Stat(part)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("no partial download kept: %v", err)
	}

	good := &faultyNetwork{target: digest.FromBytes(weights)}
	res, err := newClient(t, client.Options{Transport: good}).Pull(context.Background(), r, out, client.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := good.seen(); len(s) != 1 || s[0] == "" {
		t.Fatalf("second run did not resume with a Range request: %q", s)
	}
	var resumed int64
	for _, f := range res.Files {
		if f.Path == "model/weights.safetensors" {
			resumed = f.Resumed
		}
	}
	if resumed != fi.Size() {
		t.Errorf("resumed at %d, partial file had %d", resumed, fi.Size())
	}
	got, err := os.ReadFile(final)
	if err != nil || !bytes.Equal(got, weights) {
		t.Fatalf("weights differ after resuming (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(out, client.PartialDir)); !errors.Is(err, os.ErrNotExist) {
		t.Error("partial directory left after a complete pull")
	}
}

func TestPullRejectsCorruptContent(t *testing.T) {
	r, weights := pushBig(t, 1<<20)
	out := t.TempDir()
	net := &faultyNetwork{target: digest.FromBytes(weights), corrupt: true}
	_, err := newClient(t, client.Options{Transport: net}).Pull(context.Background(), r, out, client.PullOptions{})
	if !errors.Is(err, registry.ErrDigestMismatch) {
		t.Fatalf("got %v, want a digest mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(out, "model/weights.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("corrupt content written under the final name")
	}
	if _, err := os.Stat(filepath.Join(out, client.PartialDir, digest.FromBytes(weights).Encoded())); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("corrupt partial download kept for resuming")
	}
}
