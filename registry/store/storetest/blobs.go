package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "crypto/sha512" // digest.SHA512.FromBytes needs it linked
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

// TestBlobs runs the store.Blobs conformance suite. newBlobs returns an
// empty store for each subtest; it registers its own cleanup.
func TestBlobs(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
	tests := []struct {
		name string
		run  func(t *testing.T, b store.Blobs)
	}{
		{"Unknown", blobsUnknown},
		{"UploadCommit", blobsUploadCommit},
		{"EmptyBlob", blobsEmpty},
		{"ChunkedLarge", blobsChunkedLarge},
		{"SHA512", blobsSHA512},
		{"DigestMismatchKeepsSession", blobsDigestMismatch},
		{"SizeMismatchKeepsSession", blobsSizeMismatch},
		{"InvalidDigest", blobsInvalidDigest},
		{"ResumeAfterClose", blobsResume},
		{"ResumeUnknownIDs", blobsResumeUnknown},
		{"Cancel", blobsCancel},
		{"Uploads", blobsUploads},
		{"UniqueIDs", blobsUniqueIDs},
		{"CommitExisting", blobsCommitExisting},
		{"ConcurrentCommitSameBlob", blobsConcurrentCommit},
		{"Delete", blobsDelete},
		{"OpenSeek", blobsOpenSeek},
		{"Walk", blobsWalk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newBlobs(t))
		})
	}
}

// TestBlobsRestart checks that what one instance leaves in a directory a
// new instance on the same directory continues: committed blobs and open
// upload sessions, resumed at the right byte. open is called more than
// once per directory.
func TestBlobsRestart(t *testing.T, open func(t *testing.T, dir string) store.Blobs) {
	ctx := t.Context()
	dir := t.TempDir()
	data := randomBytes(t, 3<<20+17)
	d := digest.FromBytes(data)
	kept := randomBytes(t, 1000)

	first := open(t, dir)
	commit(t, first, kept)
	u, err := first.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := u.ID()
	write(t, u, data[:1<<20])
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}

	second := open(t, dir)
	u, err = second.ResumeUpload(ctx, id)
	if err != nil {
		t.Fatalf("resuming after restart: %v", err)
	}
	if u.Size() != 1<<20 {
		t.Fatalf("resumed at %d, want %d", u.Size(), 1<<20)
	}
	write(t, u, data[1<<20:2<<20])
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}

	third := open(t, dir)
	var listed bool
	err = third.Uploads(ctx, func(got string, size int64, _ time.Time) error {
		if got == id {
			listed = true
			if size != 2<<20 {
				t.Errorf("Uploads reports %d bytes, want %d", size, 2<<20)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !listed {
		t.Errorf("session %s not listed after restart", id)
	}
	u, err = third.ResumeUpload(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, data[2<<20:])
	if err := u.Commit(ctx, d, int64(len(data))); err != nil {
		t.Fatalf("committing after restarts: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, open(t, dir), d, data)
	checkBlob(t, open(t, dir), digest.FromBytes(kept), kept)
}

func blobsUnknown(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	d := digest.FromString("never uploaded")
	if _, err := b.Stat(ctx, d); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("Stat: %v, want ErrBlobUnknown", err)
	}
	if r, _, err := b.Open(ctx, d); !errors.Is(err, store.ErrBlobUnknown) {
		if err == nil {
			r.Close()
		}
		t.Errorf("Open: %v, want ErrBlobUnknown", err)
	}
	if err := b.Delete(ctx, d); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("Delete: %v, want ErrBlobUnknown", err)
	}
	// A malformed digest must not reach a file name or a key: it is
	// unknown or invalid, never found.
	for _, bad := range []digest.Digest{"", "sha256:../../../etc/passwd", "sha256:" + digest.Digest(strings.Repeat("0", 63)), "md5:d41d8cd98f00b204e9800998ecf8427e"} {
		if _, err := b.Stat(ctx, bad); !errors.Is(err, store.ErrBlobUnknown) && !errors.Is(err, store.ErrDigestInvalid) {
			t.Errorf("Stat(%q): %v, want ErrBlobUnknown or ErrDigestInvalid", bad, err)
		}
	}
}

func blobsUploadCommit(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := []byte("hello, registry")
	d := digest.FromBytes(data)
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID() == "" {
		t.Fatal("empty upload ID")
	}
	if u.Size() != 0 {
		t.Fatalf("new upload has size %d", u.Size())
	}
	write(t, u, data[:5])
	if u.Size() != 5 {
		t.Fatalf("Size after 5 bytes = %d", u.Size())
	}
	write(t, u, data[5:])
	if _, err := b.Stat(ctx, d); !errors.Is(err, store.ErrBlobUnknown) {
		t.Fatalf("blob visible before Commit: Stat = %v", err)
	}
	if err := u.Commit(ctx, d, int64(len(data))); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close after Commit: %v", err)
	}
	checkBlob(t, b, d, data)
	if _, err := b.ResumeUpload(ctx, u.ID()); !errors.Is(err, store.ErrUploadUnknown) {
		t.Errorf("ResumeUpload after Commit: %v, want ErrUploadUnknown", err)
	}
	if ids := uploadIDs(t, b); len(ids) != 0 {
		t.Errorf("Uploads after Commit lists %v", ids)
	}
}

func blobsEmpty(t *testing.T, b store.Blobs) {
	commit(t, b, nil)
	checkBlob(t, b, digest.FromBytes(nil), nil)
}

func blobsChunkedLarge(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := randomBytes(t, 5<<20+3)
	d := digest.FromBytes(data)
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Odd chunk sizes, across Close and ResumeUpload, like regctl's
	// PATCHes.
	for off, n := 0, 1; off < len(data); n = n*3 + 7 {
		end := min(off+n, len(data))
		write(t, u, data[off:end])
		off = end
		if err := u.Close(); err != nil {
			t.Fatal(err)
		}
		if u, err = b.ResumeUpload(ctx, u.ID()); err != nil {
			t.Fatal(err)
		}
		if u.Size() != int64(off) {
			t.Fatalf("resumed at %d, want %d", u.Size(), off)
		}
	}
	if err := u.Commit(ctx, d, -1); err != nil {
		t.Fatalf("Commit with size -1: %v", err)
	}
	checkBlob(t, b, d, data)
}

func blobsSHA512(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := randomBytes(t, 100<<10)
	d := digest.SHA512.FromBytes(data)
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, data)
	if err := u.Commit(ctx, digest.SHA512.FromBytes([]byte("other")), -1); !errors.Is(err, store.ErrDigestInvalid) {
		t.Fatalf("Commit with wrong sha512: %v, want ErrDigestInvalid", err)
	}
	if err := u.Commit(ctx, d, int64(len(data))); err != nil {
		t.Fatalf("Commit sha512: %v", err)
	}
	checkBlob(t, b, d, data)
	if _, err := b.Stat(ctx, digest.FromBytes(data)); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("sha512 commit also visible as sha256: %v", err)
	}
	if got := walk(t, b); got[d] != int64(len(data)) {
		t.Errorf("Walk = %v, want %s", got, d)
	}
}

func blobsDigestMismatch(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := []byte("the right bytes")
	wrong := digest.FromString("other bytes")
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, data)
	if err := u.Commit(ctx, wrong, int64(len(data))); !errors.Is(err, store.ErrDigestInvalid) {
		t.Fatalf("Commit(wrong digest): %v, want ErrDigestInvalid", err)
	}
	if _, err := b.Stat(ctx, wrong); !errors.Is(err, store.ErrBlobUnknown) {
		t.Fatalf("mismatched bytes visible under the wrong digest: %v", err)
	}
	if u.Size() != int64(len(data)) {
		t.Fatalf("Size after failed Commit = %d", u.Size())
	}
	// The session stays open: more bytes, then the digest of them all.
	write(t, u, []byte("!"))
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	u, err = b.ResumeUpload(ctx, u.ID())
	if err != nil {
		t.Fatalf("session gone after failed Commit: %v", err)
	}
	all := append(data, '!')
	if err := u.Commit(ctx, digest.FromBytes(all), int64(len(all))); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, b, digest.FromBytes(all), all)
}

func blobsSizeMismatch(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := []byte("twelve bytes")
	d := digest.FromBytes(data)
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, data)
	for _, size := range []int64{0, int64(len(data)) - 1, int64(len(data)) + 1} {
		if err := u.Commit(ctx, d, size); !errors.Is(err, store.ErrSizeInvalid) {
			t.Fatalf("Commit(size %d): %v, want ErrSizeInvalid", size, err)
		}
	}
	if _, err := b.Stat(ctx, d); !errors.Is(err, store.ErrBlobUnknown) {
		t.Fatalf("blob visible after size mismatch: %v", err)
	}
	if err := u.Commit(ctx, d, int64(len(data))); err != nil {
		t.Fatalf("Commit after size mismatch: %v", err)
	}
	checkBlob(t, b, d, data)
}

func blobsInvalidDigest(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := []byte("x")
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, data)
	for _, d := range []digest.Digest{
		"",
		"sha256",
		"sha256:zz",
		"sha256:" + digest.Digest(strings.ToUpper(digest.FromBytes(data).Encoded())),
		"sha256:../../blobs/x",
		digest.SHA384.FromBytes(data), // valid, but not an algorithm the store keeps
		"md5:9dd4e461268c8034f5c8564e155c67a6",
	} {
		if err := u.Commit(ctx, d, -1); !errors.Is(err, store.ErrDigestInvalid) {
			t.Errorf("Commit(%q): %v, want ErrDigestInvalid", d, err)
		}
	}
	if err := u.Commit(ctx, digest.FromBytes(data), 1); err != nil {
		t.Fatalf("session unusable after invalid digests: %v", err)
	}
}

func blobsResume(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := randomBytes(t, 64<<10)
	d := digest.FromBytes(data)
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := u.ID()
	if err := u.Close(); err != nil { // POST: a session with no bytes yet
		t.Fatal(err)
	}
	parts := [][]byte{data[:1], data[1:40000], data[40000:]}
	for i, p := range parts {
		if u, err = b.ResumeUpload(ctx, id); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if u.ID() != id {
			t.Fatalf("resumed ID %q, want %q", u.ID(), id)
		}
		want := 0
		for _, q := range parts[:i] {
			want += len(q)
		}
		if u.Size() != int64(want) {
			t.Fatalf("part %d: resumed at %d, want %d", i, u.Size(), want)
		}
		write(t, u, p)
		if i < len(parts)-1 {
			if err := u.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := u.Commit(ctx, d, int64(len(data))); err != nil {
		t.Fatalf("Commit after resumes: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, b, d, data)
}

func blobsResumeUnknown(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := u.ID()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"x",
		"..",
		"../x",
		"../../etc/passwd",
		"/etc/passwd",
		id + "/..",
		id + "/../" + id,
		"./" + id,
		id + "\x00",
		id + " ",
		strings.Repeat("0", 32),
		strings.Repeat("f", 64),
	} {
		if bad == id {
			continue
		}
		if u, err := b.ResumeUpload(ctx, bad); !errors.Is(err, store.ErrUploadUnknown) {
			if err == nil {
				_ = u.Close() // an unexpected success is the failure reported
			}
			t.Errorf("ResumeUpload(%q): %v, want ErrUploadUnknown", bad, err)
		}
	}
	if u, err = b.ResumeUpload(ctx, id); err != nil {
		t.Fatalf("the real session: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
}

func blobsCancel(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := []byte("cancelled")
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, data)
	if err := u.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close after Cancel: %v", err)
	}
	if _, err := b.ResumeUpload(ctx, u.ID()); !errors.Is(err, store.ErrUploadUnknown) {
		t.Errorf("ResumeUpload after Cancel: %v, want ErrUploadUnknown", err)
	}
	if ids := uploadIDs(t, b); len(ids) != 0 {
		t.Errorf("Uploads after Cancel: %v", ids)
	}
	if _, err := b.Stat(ctx, digest.FromBytes(data)); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("cancelled upload visible as a blob: %v", err)
	}
}

func blobsUploads(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	want := map[string]int64{}
	for _, n := range []int{0, 1, 1000} {
		u, err := b.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		write(t, u, make([]byte, n))
		if err := u.Close(); err != nil {
			t.Fatal(err)
		}
		want[u.ID()] = int64(n)
	}
	got := uploadIDs(t, b)
	if len(got) != len(want) {
		t.Fatalf("Uploads = %v, want %v", got, want)
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("Uploads[%s] = %d, want %d", id, got[id], n)
		}
	}
	stop := errors.New("stop")
	if err := b.Uploads(ctx, func(string, int64, time.Time) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Uploads did not return fn's error: %v", err)
	}
}

func blobsUniqueIDs(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	seen := map[string]bool{}
	for range 64 {
		u, err := b.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id := u.ID()
		if seen[id] {
			t.Fatalf("ID %q issued twice", id)
		}
		seen[id] = true
		// IDs go into upload URLs as one path segment.
		if strings.ContainsAny(id, "/?#% \\") || id == "." || id == ".." {
			t.Fatalf("ID %q is not a safe URL path segment", id)
		}
		if len(id) < 16 {
			t.Fatalf("ID %q is too short to be unguessable", id)
		}
		if err := u.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func blobsCommitExisting(t *testing.T, b store.Blobs) {
	data := []byte("pushed twice")
	d := digest.FromBytes(data)
	commit(t, b, data)
	commit(t, b, data)
	checkBlob(t, b, d, data)
	if got := walk(t, b); len(got) != 1 {
		t.Errorf("Walk after two commits of one blob = %v", got)
	}
	if ids := uploadIDs(t, b); len(ids) != 0 {
		t.Errorf("sessions left after committing an existing blob: %v", ids)
	}
}

func blobsConcurrentCommit(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := randomBytes(t, 256<<10)
	d := digest.FromBytes(data)
	const n = 16
	uploads := make([]store.Upload, n)
	for i := range uploads {
		u, err := b.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		write(t, u, data)
		uploads[i] = u
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i, u := range uploads {
		wg.Go(func() {
			<-start
			errs[i] = u.Commit(ctx, d, int64(len(data)))
			if err := u.Close(); err != nil {
				t.Errorf("Close after Commit: %v", err)
			}
		})
	}
	// Readers during the commits must see the whole blob or nothing.
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			r, size, err := b.Open(ctx, d)
			if errors.Is(err, store.ErrBlobUnknown) {
				continue
			}
			if err != nil {
				t.Errorf("Open during commits: %v", err)
				return
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || size != int64(len(data)) || !bytes.Equal(got, data) {
				t.Errorf("read a partial blob during commits: size %d, %d bytes, err %v", size, len(got), err)
				return
			}
		}
	})
	close(start)
	wg.Wait()
	close(done)
	readers.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("commit %d: %v", i, err)
		}
	}
	checkBlob(t, b, d, data)
	if got := walk(t, b); len(got) != 1 {
		t.Errorf("Walk = %v, want one blob", got)
	}
	if ids := uploadIDs(t, b); len(ids) != 0 {
		t.Errorf("sessions left: %v", ids)
	}
}

func blobsDelete(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	keep := []byte("keep")
	gone := []byte("gone")
	commit(t, b, keep)
	commit(t, b, gone)
	if err := b.Delete(ctx, digest.FromBytes(gone)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, digest.FromBytes(gone)); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("Stat after Delete: %v", err)
	}
	if _, _, err := b.Open(ctx, digest.FromBytes(gone)); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("Open after Delete: %v", err)
	}
	if err := b.Delete(ctx, digest.FromBytes(gone)); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("second Delete: %v, want ErrBlobUnknown", err)
	}
	checkBlob(t, b, digest.FromBytes(keep), keep)
	// A deleted blob can be pushed again.
	commit(t, b, gone)
	checkBlob(t, b, digest.FromBytes(gone), gone)
}

func blobsOpenSeek(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	data := randomBytes(t, 10000)
	d := digest.FromBytes(data)
	commit(t, b, data)
	r, size, err := b.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if size != int64(len(data)) {
		t.Fatalf("Open size = %d", size)
	}
	for _, off := range []int64{9999, 0, 4096, 10000} {
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.LimitReader(r, 100))
		if err != nil {
			t.Fatal(err)
		}
		want := data[off:min(off+100, int64(len(data)))]
		if !bytes.Equal(got, want) {
			t.Fatalf("at offset %d read %d bytes, not the blob's", off, len(got))
		}
	}
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != size {
		t.Fatalf("Seek(0, End) = %d, %v", end, err)
	}
}

func blobsWalk(t *testing.T, b store.Blobs) {
	ctx := t.Context()
	if got := walk(t, b); len(got) != 0 {
		t.Fatalf("Walk of an empty store = %v", got)
	}
	want := map[digest.Digest]int64{}
	for i := range 20 {
		data := []byte(fmt.Sprintf("blob %d %s", i, strings.Repeat("x", i)))
		commit(t, b, data)
		want[digest.FromBytes(data)] = int64(len(data))
	}
	s512 := []byte("sha512 blob")
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, s512)
	if err := u.Commit(ctx, digest.SHA512.FromBytes(s512), -1); err != nil {
		t.Fatal(err)
	}
	want[digest.SHA512.FromBytes(s512)] = int64(len(s512))
	// An open upload is not a blob.
	open, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, open, []byte("not yet"))
	if err := open.Close(); err != nil {
		t.Fatal(err)
	}

	got := walk(t, b)
	if len(got) != len(want) {
		t.Errorf("Walk found %d blobs, want %d", len(got), len(want))
	}
	for d, n := range want {
		if got[d] != n {
			t.Errorf("Walk[%s] = %d, want %d", d, got[d], n)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err = b.Walk(ctx, func(digest.Digest, int64, time.Time) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with a failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Walk(cancelled, func(digest.Digest, int64, time.Time) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Walk with a cancelled context: %v", err)
	}
}

// helpers

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, u store.Upload, p []byte) {
	t.Helper()
	before := u.Size()
	n, err := u.Write(p)
	if err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
	if u.Size() != before+int64(n) {
		t.Fatalf("Size after writing %d bytes at %d = %d", n, before, u.Size())
	}
}

// commit uploads data in one session and commits it under its sha256.
func commit(t *testing.T, b store.Blobs, data []byte) digest.Digest {
	t.Helper()
	ctx := t.Context()
	u, err := b.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, u, data)
	d := digest.FromBytes(data)
	if err := u.Commit(ctx, d, int64(len(data))); err != nil {
		t.Fatalf("Commit %s: %v", d, err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkBlob asserts that blob d exists with exactly data.
func checkBlob(t *testing.T, b store.Blobs, d digest.Digest, data []byte) {
	t.Helper()
	ctx := t.Context()
	size, err := b.Stat(ctx, d)
	if err != nil {
		t.Fatalf("Stat %s: %v", d, err)
	}
	if size != int64(len(data)) {
		t.Fatalf("Stat %s = %d bytes, want %d", d, size, len(data))
	}
	r, osize, err := b.Open(ctx, d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if osize != size || !bytes.Equal(got, data) {
		t.Fatalf("blob %s holds %d bytes (Open says %d), not the %d committed", d, len(got), osize, len(data))
	}
}

func walk(t *testing.T, b store.Blobs) map[digest.Digest]int64 {
	t.Helper()
	got := map[digest.Digest]int64{}
	err := b.Walk(t.Context(), func(d digest.Digest, size int64, _ time.Time) error {
		if _, dup := got[d]; dup {
			t.Errorf("Walk reported %s twice", d)
		}
		got[d] = size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func uploadIDs(t *testing.T, b store.Blobs) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := b.Uploads(t.Context(), func(id string, size int64, _ time.Time) error {
		got[id] = size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
