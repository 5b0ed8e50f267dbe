package writeback

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}

func TestCopyWritesAndHashesEverything(t *testing.T) {
	data := randomBytes(5*bufSize + 12345) // several buffers and a partial one
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	var progress int64
	// Short reads (HalfReader) exercise Fill.
	n, err := Copy(context.Background(), f, h, iotest.HalfReader(bytes.NewReader(data)), CopyOptions{Progress: func(k int64) { progress += k }})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) || progress != n {
		t.Fatalf("copied %d, progress %d, want %d", n, progress, len(data))
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got, data) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("file or hash differs from the source")
	}
}

func TestCopyBrokenSourceKeepsWhatArrived(t *testing.T) {
	data := randomBytes(3*bufSize + 7)
	cut := 2*bufSize + 100
	src := io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(io.ErrUnexpectedEOF))
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := Copy(context.Background(), f, h, src, CopyOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrWrite) {
		t.Fatalf("err = %v, want the source's io.ErrUnexpectedEOF", err)
	}
	if n != int64(cut) {
		t.Fatalf("n = %d, want %d", n, cut)
	}
	want := sha256.Sum256(data[:cut])
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("the hash does not cover exactly the bytes written")
	}
}

func TestCopyWriteErrorIsMarked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := Copy(context.Background(), f, h, bytes.NewReader(randomBytes(bufSize)), CopyOptions{})
	if !errors.Is(err, ErrWrite) || n != 0 {
		t.Fatalf("n, err = %d, %v; want 0 and ErrWrite", n, err)
	}
	empty := sha256.Sum256(nil)
	if !bytes.Equal(h.Sum(nil), empty[:]) {
		t.Fatal("bytes the file did not take were hashed")
	}
}

func TestCopyStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// An endless source: only the context can end the copy.
	_, err = Copy(ctx, f, sha256.New(), endless{}, CopyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }
