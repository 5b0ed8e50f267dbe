package fsstore_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/fsstore"
)

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// startUpload writes data in a session and closes it, as a PATCH does,
// and returns the session's directory.
func startUpload(t *testing.T, s *fsstore.Store, root string, data []byte) (string, string) {
	t.Helper()
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	return u.ID(), filepath.Join(root, "uploads", u.ID())
}

func readBlob(t *testing.T, s *fsstore.Store, d digest.Digest) []byte {
	t.Helper()
	r, _, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCrashRecovery simulates what a crash can leave in a session
// directory, then resumes in a new Store: the session must resume at the
// byte the data file holds and commit only bytes that hash right.
func TestCrashRecovery(t *testing.T) {
	first := random(t, 200<<10)
	tail := random(t, 50<<10)
	all := append(append([]byte{}, first...), tail...)
	tests := []struct {
		name string
		// crash edits the session directory after first was written and
		// closed; it returns the bytes the data file now holds.
		crash func(t *testing.T, dir string) []byte
	}{
		{"state lost", func(t *testing.T, dir string) []byte {
			os.Remove(filepath.Join(dir, "state"))
			return first
		}},
		{"state garbage", func(t *testing.T, dir string) []byte {
			os.WriteFile(filepath.Join(dir, "state"), []byte("{not json"), 0o600)
			return first
		}},
		{"state torn to zero bytes", func(t *testing.T, dir string) []byte {
			os.WriteFile(filepath.Join(dir, "state"), nil, 0o600)
			return first
		}},
		{"written but not closed", func(t *testing.T, dir string) []byte {
			f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(tail); err != nil {
				t.Fatal(err)
			}
			return all
		}},
		{"unsynced tail lost", func(t *testing.T, dir string) []byte {
			// The state describes more bytes than survived.
			if err := os.Truncate(filepath.Join(dir, "data"), 1000); err != nil {
				t.Fatal(err)
			}
			return first[:1000]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s, err := fsstore.New(root)
			if err != nil {
				t.Fatal(err)
			}
			id, dir := startUpload(t, s, root, first)
			held := tt.crash(t, dir)

			restarted, err := fsstore.New(root)
			if err != nil {
				t.Fatal(err)
			}
			u, err := restarted.ResumeUpload(t.Context(), id)
			if err != nil {
				t.Fatalf("resuming: %v", err)
			}
			if u.Size() != int64(len(held)) {
				t.Fatalf("resumed at %d, want %d", u.Size(), len(held))
			}
			// The client continues from where the server says.
			rest := all[len(held):]
			if _, err := u.Write(rest); err != nil {
				t.Fatal(err)
			}
			d := digest.FromBytes(all)
			if err := u.Commit(t.Context(), d, int64(len(all))); err != nil {
				t.Fatalf("commit after recovery: %v", err)
			}
			if !bytes.Equal(readBlob(t, restarted, d), all) {
				t.Fatal("committed blob differs from the uploaded bytes")
			}
		})
	}
}

// TestResumeTrustsSavedState shows that ResumeUpload does not re-read a
// session whose saved state matches its size (the point of saving it):
// bytes changed behind the store's back, same length, go unnoticed at
// resume. fsck's content check is what finds such rot.
func TestResumeTrustsSavedState(t *testing.T) {
	root := t.TempDir()
	s, err := fsstore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	data := random(t, 4096)
	id, dir := startUpload(t, s, root, data)
	rotted := append([]byte{}, data...)
	rotted[10] ^= 0xff
	if err := os.WriteFile(filepath.Join(dir, "data"), rotted, 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := s.ResumeUpload(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(t.Context(), digest.FromBytes(rotted), -1); !errors.Is(err, store.ErrDigestInvalid) {
		t.Fatalf("the resumed hash was recomputed from the file (commit of its bytes: %v)", err)
	}
}

// TestTimes checks the modification times GC relies on: a committed blob
// is stamped at commit, not at its upload's first write, and committing
// an existing blob restamps it.
func TestTimes(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := fsstore.New(root, fsstore.WithNow(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	data := []byte("stamped")
	d := digest.FromBytes(data)
	id, _ := startUpload(t, s, root, data)
	err = s.Uploads(ctx, func(got string, _ int64, mod time.Time) error {
		if got == id && !mod.Equal(now) {
			t.Errorf("session modified %v, want %v", mod, now)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	commitAt := func(at time.Time) {
		t.Helper()
		now = at
		u, err := s.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		u.Write(data)
		if err := u.Commit(ctx, d, -1); err != nil {
			t.Fatal(err)
		}
	}
	modified := func() time.Time {
		var m time.Time
		if err := s.Walk(ctx, func(_ digest.Digest, _ int64, mod time.Time) error { m = mod; return nil }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	commitAt(now.Add(2 * time.Hour))
	if got := modified(); !got.Equal(now) {
		t.Fatalf("blob modified %v, want commit time %v", got, now)
	}
	commitAt(now.Add(2 * time.Hour))
	if got := modified(); !got.Equal(now) {
		t.Fatalf("recommitted blob modified %v, want %v", got, now)
	}
}

// TestWalkSkipsStrays checks that files which are not blobs (temp files,
// a wrong prefix directory, foreign files) are neither reported nor
// served.
func TestWalkSkipsStrays(t *testing.T) {
	root := t.TempDir()
	s, err := fsstore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	good := digest.FromString("good")
	u, _ := s.NewUpload(ctx)
	u.Write([]byte("good"))
	if err := u.Commit(ctx, good, -1); err != nil {
		t.Fatal(err)
	}
	other := digest.FromString("other").Encoded()
	strays := []string{
		"blobs/sha256/" + good.Encoded()[:2] + "/.tmp-123",
		"blobs/sha256/" + good.Encoded()[:2] + "/" + other, // under the wrong prefix
		"blobs/sha256/zz/" + other,
		"blobs/md5/d4/d41d8cd98f00b204e9800998ecf8427e",
		"blobs/README",
		"uploads/not-an-id/data",
	}
	for _, p := range strays {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []digest.Digest
	if err := s.Walk(ctx, func(d digest.Digest, _ int64, _ time.Time) error { got = append(got, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != good {
		t.Errorf("Walk = %v, want [%s]", got, good)
	}
	n := 0
	if err := s.Uploads(ctx, func(string, int64, time.Time) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("Uploads lists %d stray sessions", n)
	}
}

// TestNoPartialBlob: a session that was written and never committed
// (a killed client) leaves nothing under blobs/.
func TestNoPartialBlob(t *testing.T) {
	root := t.TempDir()
	s, err := fsstore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	data := random(t, 1<<20)
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	u.Write(data[:1000]) // the client dies here; the server closes
	u.Close()
	err = filepath.WalkDir(filepath.Join(root, "blobs"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			t.Errorf("file under blobs/ from an uncommitted upload: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), digest.FromBytes(data)); !errors.Is(err, store.ErrBlobUnknown) {
		t.Errorf("Stat = %v", err)
	}
}
