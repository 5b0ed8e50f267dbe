package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

// TestGGCRPushPull pushes and pulls images and an index the way crane
// does (a streamed PATCH per layer), and mounts layers across
// repositories.
func TestGGCRPushPull(t *testing.T) {
	f := start(t, Config{})
	img, err := random.Image(1<<16, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(f.host + "/crane/img:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	got, _ := pulled.Digest()
	if got != want {
		t.Fatalf("pulled %s, pushed %s", got, want)
	}
	layers, _ := pulled.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(rc); err != nil { // ggcr verifies the digest while reading
			t.Fatal(err)
		}
		rc.Close()
	}
	// Pushing the pulled image to another repository mounts its layers.
	// One job: ggcr v0.20.6 races on its client when it widens the token
	// scope for a mount from several uploads at once (its bug, seen with
	// -race).
	ref2, _ := name.ParseReference(f.host + "/crane/copy:v1")
	if err := remote.Write(ref2, pulled, remote.WithJobs(1)); err != nil {
		t.Fatal(err)
	}
	mounts := 0
	_ = f.meta.Events(context.Background(), time.Time{}, func(ev store.Event) error {
		if ev.Action == "mount-blob" && ev.Repository == "crane/copy" {
			mounts++
		}
		return nil
	})
	if mounts != 4 {
		t.Fatalf("%d layers mounted into crane/copy, want 4 (3 layers and the config)", mounts)
	}
	idx, err := random.Index(1024, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(f.host + "/crane/idx:v1")
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatal(err)
	}
	pidx, err := remote.Index(iref)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustDigest(t, pidx.Digest), mustDigest(t, idx.Digest); a != b {
		t.Fatalf("index %s, pushed %s", a, b)
	}
}

func mustDigest[T fmt.Stringer](t *testing.T, fn func() (T, error)) string {
	t.Helper()
	d, err := fn()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestChunkedUpload walks the session protocol: POST, PATCH with ranges,
// status, a wrong range (416), final PUT with a last chunk, then GET with
// a Range.
func TestChunkedUpload(t *testing.T) {
	f := start(t, Config{})
	data := []byte("0123456789abcdefghij")
	d := digest.FromBytes(data)
	res := f.do(t, http.MethodPost, "/v2/c/blobs/uploads/", nil)
	loc := res.header.Get("Location")
	if res.status != http.StatusAccepted || !strings.HasPrefix(loc, "/v2/c/blobs/uploads/") || res.header.Get("Range") != "0-0" {
		t.Fatalf("POST: %d %v", res.status, res.header)
	}
	res = f.do(t, http.MethodPatch, loc, data[:10], "Content-Range", "0-9", "Content-Type", "application/octet-stream")
	if res.status != http.StatusAccepted || res.header.Get("Range") != "0-9" {
		t.Fatalf("PATCH 1: %d %v %s", res.status, res.header, res.body)
	}
	for _, cr := range []string{"0-9", "11-15", "5-14", "10-5", "junk"} {
		res = f.do(t, http.MethodPatch, loc, data[10:15], "Content-Range", cr)
		if res.status != http.StatusRequestedRangeNotSatisfiable || res.header.Get("Range") != "0-9" && cr != "junk" {
			t.Fatalf("PATCH %s: %d %v", cr, res.status, res.header)
		}
	}
	res = f.do(t, http.MethodPatch, loc, data[10:15]) // streamed, no Content-Range
	if res.status != http.StatusAccepted || res.header.Get("Range") != "0-14" {
		t.Fatalf("streamed PATCH: %d %v", res.status, res.header)
	}
	res = f.do(t, http.MethodGet, loc, nil)
	if res.status != http.StatusNoContent || res.header.Get("Range") != "0-14" {
		t.Fatalf("status: %d %v", res.status, res.header)
	}
	bad := digest.FromString("other")
	if res = f.do(t, http.MethodPut, loc+"?digest="+bad.String(), nil); res.status != http.StatusBadRequest || res.errorCode() != "DIGEST_INVALID" {
		t.Fatalf("PUT wrong digest: %d %s", res.status, res.body)
	}
	// The session survived the mismatch.
	res = f.do(t, http.MethodPut, loc+"?digest="+d.String(), data[15:], "Content-Range", "15-19")
	if res.status != http.StatusCreated || res.header.Get("Location") != "/v2/c/blobs/"+d.String() || res.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT: %d %v %s", res.status, res.header, res.body)
	}
	if res = f.do(t, http.MethodGet, loc, nil); res.status != http.StatusNotFound || res.errorCode() != "BLOB_UPLOAD_UNKNOWN" {
		t.Fatalf("status after commit: %d %s", res.status, res.body)
	}
	res = f.do(t, http.MethodGet, "/v2/c/blobs/"+d.String(), nil, "Range", "bytes=5-9")
	if res.status != http.StatusPartialContent || string(res.body) != "56789" {
		t.Fatalf("range GET: %d %q", res.status, res.body)
	}
	res = f.do(t, http.MethodGet, "/v2/c/blobs/"+d.String(), nil, "Range", "bytes=500-1000")
	if res.status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d", res.status)
	}
	res = f.do(t, http.MethodHead, "/v2/c/blobs/"+d.String(), nil)
	if res.status != http.StatusOK || res.header.Get("Content-Length") != "20" || res.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("HEAD: %d %v", res.status, res.header)
	}
	// Linked in c only.
	if res = f.do(t, http.MethodGet, "/v2/other/blobs/"+d.String(), nil); res.status != http.StatusNotFound || res.errorCode() != "BLOB_UNKNOWN" {
		t.Fatalf("GET from another repo: %d %s", res.status, res.body)
	}
	// Cancel.
	loc = f.do(t, http.MethodPost, "/v2/c/blobs/uploads/", nil).header.Get("Location")
	if res = f.do(t, http.MethodDelete, loc, nil); res.status != http.StatusNoContent {
		t.Fatalf("cancel: %d", res.status)
	}
	if res = f.do(t, http.MethodPatch, loc, []byte("x")); res.status != http.StatusNotFound {
		t.Fatalf("PATCH after cancel: %d", res.status)
	}
	// A session belongs to its repository.
	loc = f.do(t, http.MethodPost, "/v2/c/blobs/uploads/", nil).header.Get("Location")
	if res = f.do(t, http.MethodGet, strings.Replace(loc, "/v2/c/", "/v2/d/", 1), nil); res.status != http.StatusNotFound {
		t.Fatalf("session from another repo: %d", res.status)
	}
}

// closeSignal wraps memstore's Blobs to report when a request has closed
// its session handle: the test's only way to know the server is done with
// a broken PATCH without sleeping.
type closeSignal struct {
	store.Blobs
	closed chan string
}

type signalUpload struct {
	store.Upload
	closed chan string
}

func (c closeSignal) ResumeUpload(ctx context.Context, id string) (store.Upload, error) {
	u, err := c.Blobs.ResumeUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	return signalUpload{u, c.closed}, nil
}

func (u signalUpload) Close() error {
	err := u.Upload.Close()
	u.closed <- u.ID()
	return err
}

// TestResumeAfterDisconnect cuts a PATCH off half way, then resumes from
// the upload status as a client would.
func TestResumeAfterDisconnect(t *testing.T) {
	closed := make(chan string, 8)
	f := start(t, Config{})
	f = start(t, Config{Blobs: closeSignal{f.blobs, closed}})
	f.blobs = nil
	data := bytes.Repeat([]byte("0123456789"), 100)
	d := digest.FromBytes(data)
	loc := f.do(t, http.MethodPost, "/v2/r/blobs/uploads/", nil).header.Get("Location")

	conn, err := net.Dial("tcp", f.host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nContent-Range: 0-%d\r\n\r\n", loc, f.host, len(data), len(data)-1)
	if _, err := conn.Write(data[:400]); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	<-closed // the server gave up on the body and kept what arrived

	res := f.do(t, http.MethodGet, loc, nil)
	<-closed
	if res.status != http.StatusNoContent || res.header.Get("Range") != "0-399" {
		t.Fatalf("status after disconnect: %d Range=%q", res.status, res.header.Get("Range"))
	}
	res = f.do(t, http.MethodPatch, loc, data[400:], "Content-Range", fmt.Sprintf("400-%d", len(data)-1))
	<-closed
	if res.status != http.StatusAccepted {
		t.Fatalf("resume: %d %s", res.status, res.body)
	}
	if res = f.do(t, http.MethodPut, loc+"?digest="+d.String(), nil); res.status != http.StatusCreated {
		t.Fatalf("commit: %d %s", res.status, res.body)
	}
	if res = f.do(t, http.MethodGet, "/v2/r/blobs/"+d.String(), nil); !bytes.Equal(res.body, data) {
		t.Fatalf("blob after resume differs (%d bytes)", len(res.body))
	}
}

// TestConcurrentPushes pushes one blob and one tag from many clients at
// once; run with -race.
func TestConcurrentPushes(t *testing.T) {
	f := start(t, Config{})
	data := bytes.Repeat([]byte("x"), 1<<16)
	d := digest.FromBytes(data)
	manifests := make([][]byte, 8)
	for i := range manifests {
		manifests[i] = f.imageManifest(t, "c", nil)
		manifests[i] = bytes.Replace(manifests[i], []byte(`"schemaVersion":2`), []byte(fmt.Sprintf(`"schemaVersion":2,"annotations":{"n":"%d"}`, i)), 1)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			loc := f.do(t, http.MethodPost, "/v2/c/blobs/uploads/", nil).header.Get("Location")
			f.do(t, http.MethodPatch, loc, data)
			if res := f.do(t, http.MethodPut, loc+"?digest="+d.String(), nil); res.status != http.StatusCreated {
				errs <- fmt.Sprintf("blob: %d %s", res.status, res.body)
			}
		}()
		go func() {
			defer wg.Done()
			if res := f.putManifest(t, "c", "latest", manifests[i]); res.status != http.StatusCreated {
				errs <- fmt.Sprintf("tag: %d %s", res.status, res.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	res := f.do(t, http.MethodGet, "/v2/c/manifests/latest", nil)
	found := false
	for _, m := range manifests {
		found = found || bytes.Equal(res.body, m)
	}
	if !found || res.header.Get("Docker-Content-Digest") != digest.FromBytes(res.body).String() {
		t.Fatalf("latest is not one of the pushed manifests: %s", res.body)
	}
	if res := f.do(t, http.MethodGet, "/v2/c/blobs/"+d.String(), nil); !bytes.Equal(res.body, data) {
		t.Fatal("blob differs after concurrent pushes")
	}
}
