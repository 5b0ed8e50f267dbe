package fsstore

import (
	"context"
	"crypto/sha256"
	_ "crypto/sha512" // links digest.SHA512, which Commit hashes with
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/internal/writeback"
	"github.com/airlock-dev/airlock/registry/store"
)

const (
	dataFile  = "data"
	stateFile = "state"
)

// state is what Close saves next to an upload's data: the byte count and
// the sha256 state after exactly that many bytes, so that a resumed
// session (also in a new process) continues hashing without re-reading.
type state struct {
	Size   int64  `json:"size"`
	SHA256 []byte `json:"sha256"`
}

// upload is one open session; see store.Upload.
type upload struct {
	s    *Store
	id   string
	dir  string
	f    *os.File // data, open for appending; nil once released
	wb   *writeback.Writer
	h    hash.Hash
	size int64
	// dirty: bytes were written (or the hash recovered) since the state
	// file was last saved.
	dirty bool
	// ended: committed or cancelled; the session no longer exists.
	ended bool
}

// NewUpload starts a session under a fresh random ID.
func (s *Store) NewUpload(ctx context.Context) (store.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.uploadsDir(), id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating upload %s: %w", id, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("creating upload %s: %w", id, err)
	}
	u := &upload{s: s, id: id, dir: dir, f: f, h: sha256.New()}
	if err := u.saveState(); err != nil {
		f.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return u, nil
}

// ResumeUpload reopens a session. When the saved state does not match the
// data file (a crash between a write and the state save), it recovers by
// hashing the bytes the file actually holds: from the saved state onwards
// when the file is longer, from the start otherwise. A wrong or missing
// state file therefore costs time, never correctness.
func (s *Store) ResumeUpload(ctx context.Context, id string) (store.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, fmt.Errorf("upload %q: %w", id, store.ErrUploadUnknown)
	}
	dir := filepath.Join(s.uploadsDir(), id)
	dataPath := filepath.Join(dir, dataFile)
	f, err := os.OpenFile(dataPath, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("upload %s: %w", id, store.ErrUploadUnknown)
	}
	if err != nil {
		return nil, fmt.Errorf("opening upload %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stating upload %s: %w", id, err)
	}
	u := &upload{s: s, id: id, dir: dir, f: f, size: fi.Size()}
	from := int64(0)
	if h, n, ok := loadState(dir); ok && n <= u.size {
		u.h, from = h, n
	} else {
		u.h = sha256.New()
	}
	if from < u.size {
		if err := rehash(u.h, dataPath, from, u.size-from); err != nil {
			f.Close()
			return nil, fmt.Errorf("recovering upload %s: %w", id, err)
		}
		u.dirty = true
	}
	return u, nil
}

// loadState reads a saved state; ok is false if it is missing or unusable.
func loadState(dir string) (hash.Hash, int64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, 0, false
	}
	var st state
	if json.Unmarshal(b, &st) != nil || st.Size < 0 {
		return nil, 0, false
	}
	h := sha256.New()
	if h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA256) != nil {
		return nil, 0, false
	}
	return h, st.Size, true
}

// rehash feeds n bytes of path, starting at off, into h.
func rehash(h hash.Hash, path string, off, n int64) error {
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.CopyN(h, r, n); err != nil {
		return err
	}
	return nil
}

// saveState writes the state file by rename, so it is either the old or
// the new one, and stamps it with the store's clock (Uploads reports it as
// the session's last activity).
func (u *upload) saveState() error {
	b, err := u.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("saving upload %s: %w", u.id, err)
	}
	js, err := json.Marshal(state{Size: u.size, SHA256: b})
	if err != nil {
		return fmt.Errorf("saving upload %s: %w", u.id, err)
	}
	tmp := filepath.Join(u.dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, js, 0o600); err != nil {
		return fmt.Errorf("saving upload %s: %w", u.id, err)
	}
	dst := filepath.Join(u.dir, stateFile)
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("saving upload %s: %w", u.id, err)
	}
	now := u.s.now()
	if err := os.Chtimes(dst, now, now); err != nil {
		return fmt.Errorf("saving upload %s: %w", u.id, err)
	}
	u.dirty = false
	return nil
}

func (u *upload) ID() string  { return u.id }
func (u *upload) Size() int64 { return u.size }

func (u *upload) usable() error {
	if u.ended || u.f == nil {
		return fmt.Errorf("upload %s is closed: %w", u.id, store.ErrUploadUnknown)
	}
	return nil
}

// Write appends to the data file and hashes exactly the bytes the file
// took, so that a short write keeps data and hash in step.
func (u *upload) Write(p []byte) (int, error) {
	if err := u.usable(); err != nil {
		return 0, err
	}
	if err := u.startWriteback(); err != nil {
		return 0, err
	}
	n, err := u.f.Write(p)
	u.h.Write(p[:n])
	u.size += int64(n)
	u.wb.Wrote(int64(n))
	if n > 0 {
		u.dirty = true
	}
	if err != nil {
		return n, fmt.Errorf("writing upload %s: %w", u.id, err)
	}
	return n, nil
}

// ReadFrom appends r to the data file until r ends. Receiving, writing and
// hashing overlap (writeback.Copy), so a large upload costs about the
// slowest of the three rather than their sum; the hash still covers
// exactly the bytes the file took, also when r breaks off.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	if err := u.usable(); err != nil {
		return 0, err
	}
	if err := u.startWriteback(); err != nil {
		return 0, err
	}
	n, err := writeback.Copy(context.Background(), u.f, u.h, r, writeback.CopyOptions{Writeback: u.wb})
	u.size += n
	if n > 0 {
		u.dirty = true
	}
	if errors.Is(err, writeback.ErrWrite) {
		return n, fmt.Errorf("writing upload %s: %w", u.id, err)
	}
	return n, err
}

// startWriteback positions the data file at its end (an O_APPEND file
// reports offset 0 until its first write) and starts writeback tracking
// there. Written pages are dropped behind the writer, as pulls drop them:
// keeping them made a 2 GiB ingest 40–80% slower here (docs/benchmarks.md).
func (u *upload) startWriteback() error {
	if u.wb != nil {
		return nil
	}
	if _, err := u.f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("writing upload %s: %w", u.id, err)
	}
	u.wb = writeback.New(u.f)
	return nil
}

// Commit verifies, then publishes the data file as blob d by rename.
func (u *upload) Commit(ctx context.Context, d digest.Digest, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := u.usable(); err != nil {
		return err
	}
	if err := checkDigest(d); err != nil {
		return err
	}
	if size >= 0 && size != u.size {
		return fmt.Errorf("upload %s holds %d bytes, not %d: %w", u.id, u.size, size, store.ErrSizeInvalid)
	}
	dataPath := filepath.Join(u.dir, dataFile)
	got := digest.NewDigest(digest.SHA256, u.h)
	if d.Algorithm() != digest.SHA256 {
		// Only sha256 is hashed while streaming; others read the data once.
		h := d.Algorithm().Hash()
		if err := rehash(h, dataPath, 0, u.size); err != nil {
			return fmt.Errorf("hashing upload %s: %w", u.id, err)
		}
		got = digest.NewDigest(d.Algorithm(), h)
	}
	if got != d {
		return fmt.Errorf("upload %s is %s, not %s: %w", u.id, got, d, store.ErrDigestInvalid)
	}

	now := u.s.now()
	dst := u.s.blobPath(d)
	// An existing blob is identical by construction. Restamping it
	// restarts GC's grace period, which a push of an unreferenced blob
	// relies on as much as a new one does.
	if err := os.Chtimes(dst, now, now); err == nil {
		return u.end()
	}
	if err := u.f.Sync(); err != nil {
		return fmt.Errorf("syncing upload %s: %w", u.id, err)
	}
	if err := u.release(); err != nil {
		return err
	}
	// From here the data file is closed; on failure the session can
	// still be resumed, and recovers its hash from the data.
	if err := os.Chtimes(dataPath, now, now); err != nil {
		return fmt.Errorf("stamping upload %s: %w", u.id, err)
	}
	parent := filepath.Dir(dst)
	if err := mkdirSynced(parent, u.s.blobsDir()); err != nil {
		return err
	}
	if err := os.Rename(dataPath, dst); err != nil {
		return fmt.Errorf("publishing blob %s: %w", d, err)
	}
	if err := syncDir(parent); err != nil {
		return err
	}
	return u.end()
}

// end removes the session after a commit or a cancel.
func (u *upload) end() error {
	if u.f != nil {
		u.f.Close()
		u.f = nil
	}
	u.ended = true
	if err := os.RemoveAll(u.dir); err != nil {
		return fmt.Errorf("removing upload %s: %w", u.id, err)
	}
	return nil
}

// release closes the data file without ending the session.
func (u *upload) release() error {
	f := u.f
	u.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing upload %s: %w", u.id, err)
	}
	return nil
}

// Cancel ends the session and deletes its data.
func (u *upload) Cancel(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if u.ended {
		return fmt.Errorf("upload %s: %w", u.id, store.ErrUploadUnknown)
	}
	return u.end()
}

// Close saves the hash state of what was written and releases the data
// file. It does not fsync: Commit does, before a blob becomes visible, and
// a session that a power cut shortened is recovered by ResumeUpload (the
// data file is rehashed when it is shorter than the saved state; bytes the
// kernel lost show up as a digest mismatch at commit, never as a blob). A
// killed process loses nothing, as written pages survive it. Close is a
// no-op after Commit or Cancel, and cheap when nothing was written.
func (u *upload) Close() error {
	if u.ended || u.f == nil {
		return nil
	}
	if u.dirty {
		if err := u.saveState(); err != nil {
			_ = u.release() // the save error is the one to report
			return err
		}
	}
	return u.release()
}

// Uploads lists open sessions. A session's modified time is that of its
// last saved state: the last Close after a write.
func (s *Store) Uploads(ctx context.Context, fn func(id string, size int64, modified time.Time) error) error {
	entries, err := readDir(s.uploadsDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		dir := filepath.Join(s.uploadsDir(), e.Name())
		data, err := os.Stat(filepath.Join(dir, dataFile))
		if errors.Is(err, fs.ErrNotExist) {
			continue // committed or cancelled meanwhile
		}
		if err != nil {
			return fmt.Errorf("stating upload %s: %w", e.Name(), err)
		}
		mod := data.ModTime()
		if st, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
			mod = st.ModTime()
		}
		if err := fn(e.Name(), data.Size(), mod); err != nil {
			return err
		}
	}
	return nil
}

var _ store.Upload = (*upload)(nil)
