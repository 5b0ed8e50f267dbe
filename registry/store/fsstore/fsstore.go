package fsstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

var _ store.Blobs = (*Store)(nil)

// Store is a store.Blobs rooted at one directory. It holds no state in
// memory besides its configuration, so several Stores (or a restarted
// process) on the same root see the same blobs and upload sessions.
type Store struct {
	root string
	now  func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithNow sets the clock used for the modification times of committed
// blobs and upload sessions, which garbage collection's grace period is
// measured against; tests inject a fake one. The default is time.Now.
func WithNow(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New opens (creating if needed) a blob store rooted at root.
func New(root string, opts ...Option) (*Store, error) {
	s := &Store{root: root, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{s.blobsDir(), s.uploadsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return s, nil
}

func (s *Store) blobsDir() string   { return filepath.Join(s.root, "blobs") }
func (s *Store) uploadsDir() string { return filepath.Join(s.root, "uploads") }

// supported reports whether d is a well-formed digest of an algorithm the
// store keeps. Only these ever become file names, so a digest can never
// name a path outside blobs/.
func supported(d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	a := d.Algorithm()
	return a == digest.SHA256 || a == digest.SHA512
}

// blobPath is where blob d lives; d must be supported.
func (s *Store) blobPath(d digest.Digest) string {
	h := d.Encoded()
	return filepath.Join(s.blobsDir(), string(d.Algorithm()), h[:2], h)
}

func checkDigest(d digest.Digest) error {
	if !supported(d) {
		return fmt.Errorf("%q: %w", d, store.ErrDigestInvalid)
	}
	return nil
}

// Stat returns a blob's size.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkDigest(d); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return 0, notExist(d, err)
	}
	return fi.Size(), nil
}

// Open returns the blob as an *os.File, so the server can serve it with
// http.ServeContent (and the kernel's sendfile).
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := checkDigest(d); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, 0, notExist(d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stating blob %s: %w", d, err)
	}
	return f, fi.Size(), nil
}

// Delete removes a blob. It leaves the now possibly empty parent directory
// in place: removing it could race with a commit renaming into it.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkDigest(d); err != nil {
		return err
	}
	if err := os.Remove(s.blobPath(d)); err != nil {
		return notExist(d, err)
	}
	return nil
}

// Walk calls fn for every committed blob. Files whose path is not a valid
// blob name (stray temp files, foreign files) are skipped.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, size int64, modified time.Time) error) error {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		algDir := filepath.Join(s.blobsDir(), string(alg))
		prefixes, err := readDir(algDir)
		if err != nil {
			return err
		}
		for _, p := range prefixes {
			if !p.IsDir() || len(p.Name()) != 2 {
				continue
			}
			entries, err := readDir(filepath.Join(algDir, p.Name()))
			if err != nil {
				return err
			}
			for _, e := range entries {
				if err := ctx.Err(); err != nil {
					return err
				}
				d := digest.NewDigestFromEncoded(alg, e.Name())
				if !e.Type().IsRegular() || !supported(d) || e.Name()[:2] != p.Name() {
					continue
				}
				fi, err := e.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted since the directory was read
				}
				if err != nil {
					return fmt.Errorf("stating blob %s: %w", d, err)
				}
				if err := fn(d, fi.Size(), fi.ModTime()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readDir lists a directory; a missing one is empty.
func readDir(dir string) ([]os.DirEntry, error) {
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return es, nil
}

func notExist(d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", d, store.ErrBlobUnknown)
	}
	return fmt.Errorf("accessing blob %s: %w", d, err)
}

// newID returns 128 random bits in hex: unguessable, and safe as a single
// path element.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating upload id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// validID reports whether id could have come from newID: exactly 32
// lowercase hex digits, so no ID from a URL can walk out of uploads/.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// syncDir fsyncs a directory so that entries created or renamed in it
// survive a crash.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// mkdirSynced creates dir and any missing parents below stop, fsyncing
// the parent of each directory it creates.
func mkdirSynced(dir, stop string) error {
	if dir == stop {
		return nil
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := mkdirSynced(parent, stop); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// A concurrent commit made it; sync anyway, since we cannot
			// know whether that commit has synced the parent yet.
			return syncDir(parent)
		}
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return syncDir(parent)
}
