package pack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/opencontainers/go-digest"
)

// bufSize is the read size for hashing and uploads: large enough that
// syscalls cost nothing next to SHA-256.
const bufSize = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Buffer borrows a read buffer of bufSize; return it with PutBuffer.
func Buffer() *[]byte { return bufPool.Get().(*[]byte) }

// PutBuffer returns a buffer taken with Buffer.
func PutBuffer(b *[]byte) { bufPool.Put(b) }

// Progress receives byte counts as files are read. It must be safe for
// concurrent use; nil means no reporting.
type Progress func(path string, n int64)

// HashFiles computes the sha256 of every entry, reading each file once,
// several files at a time. Entries whose digest the cache knows are not
// read. The result is in entry order.
func HashFiles(ctx context.Context, entries []Entry, workers int, cache *HashCache, progress Progress) ([]digest.Digest, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]digest.Digest, len(entries))
	jobs := make(chan int)
	errs := make(chan error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(entries)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				e := entries[i]
				if d, ok := cache.Get(e.Abs); ok {
					out[i] = d
					if progress != nil {
						progress(e.Path, e.Size)
					}
					continue
				}
				d, err := HashFile(ctx, e.Abs, e.Size, func(n int64) {
					if progress != nil {
						progress(e.Path, n)
					}
				})
				if err != nil {
					errs <- fmt.Errorf("hashing %s: %w", e.Path, err)
					cancel()
					return
				}
				cache.Put(e.Abs, d)
				out[i] = d
			}
		}()
	}
feed:
	for i := range entries {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// HashFile streams one file through sha256. It fails if the file's size
// is not want (the file changed since it was listed); want < 0 skips that
// check.
func HashFile(ctx context.Context, name string, want int64, progress func(int64)) (digest.Digest, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := copyCtx(ctx, h, f, progress)
	if err != nil {
		return "", err
	}
	if want >= 0 && n != want {
		return "", fmt.Errorf("file changed while packing: %d bytes, listed as %d", n, want)
	}
	return NewDigest(h), nil
}

// NewDigest formats a finished sha256 hash as a digest.
func NewDigest(h hash.Hash) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

// copyCtx copies with a pooled buffer, stopping when ctx ends.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader, progress func(int64)) (int64, error) {
	bp := Buffer()
	defer PutBuffer(bp)
	buf := *bp
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
			if progress != nil {
				progress(int64(n))
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// HashCache remembers file digests across runs, keyed by path and the
// file's identity (device, inode, size, modification and change times),
// the way git's index does. A file touched in any way is hashed again.
// The zero value and nil disable caching.
type HashCache struct {
	Dir string // where entries live; empty disables the cache
}

type cacheEntry struct {
	Path   string        `json:"path"`
	Dev    uint64        `json:"dev"`
	Ino    uint64        `json:"ino"`
	Size   int64         `json:"size"`
	Mtime  int64         `json:"mtimeNs"`
	Ctime  int64         `json:"ctimeNs"`
	Digest digest.Digest `json:"digest"`
}

func (c *HashCache) key(abs string) (string, cacheEntry, bool) {
	if c == nil || c.Dir == "" {
		return "", cacheEntry{}, false
	}
	e, ok := statEntry(abs)
	if !ok {
		return "", cacheEntry{}, false
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:16])+".json"), e, true
}

// Get returns the cached digest of a file that has not changed.
func (c *HashCache) Get(abs string) (digest.Digest, bool) {
	name, want, ok := c.key(abs)
	if !ok {
		return "", false
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return "", false
	}
	var got cacheEntry
	if json.Unmarshal(data, &got) != nil || got.Digest.Validate() != nil {
		return "", false
	}
	d := got.Digest
	got.Digest = ""
	if got != want {
		return "", false
	}
	return d, true
}

// Put records a digest. Failures are ignored: the cache only saves time.
func (c *HashCache) Put(abs string, d digest.Digest) {
	name, e, ok := c.key(abs)
	if !ok {
		return
	}
	e.Digest = d
	data, _ := json.Marshal(e)
	if os.MkdirAll(c.Dir, 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(c.Dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), name) != nil {
		os.Remove(tmp.Name())
	}
}
