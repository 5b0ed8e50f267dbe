package memstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

// Blobs is an in-memory store.Blobs. It is safe for concurrent use.
type Blobs struct {
	now func() time.Time

	mu      sync.Mutex
	blobs   map[digest.Digest]blob
	uploads map[string]*session
}

type blob struct {
	data     []byte
	modified time.Time
}

// session is an upload's state; it outlives the Upload handles that
// write to it, as a file would.
type session struct {
	data     []byte
	sha256   hash.Hash
	modified time.Time
}

var _ store.Blobs = (*Blobs)(nil)

// NewBlobs returns an empty blob store. now stamps modification times; nil
// means time.Now.
func NewBlobs(now func() time.Time) *Blobs {
	if now == nil {
		now = time.Now
	}
	return &Blobs{now: now, blobs: map[digest.Digest]blob{}, uploads: map[string]*session{}}
}

// Stat implements store.Blobs.
func (b *Blobs) Stat(_ context.Context, d digest.Digest) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, ok := b.blobs[d]
	if !ok {
		return 0, fmt.Errorf("%s: %w", d, store.ErrBlobUnknown)
	}
	return int64(len(bl.data)), nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// Open implements store.Blobs. Blobs are immutable, so readers share the
// stored bytes.
func (b *Blobs) Open(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bl, ok := b.blobs[d]
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", d, store.ErrBlobUnknown)
	}
	return nopCloser{bytes.NewReader(bl.data)}, int64(len(bl.data)), nil
}

// Delete implements store.Blobs.
func (b *Blobs) Delete(_ context.Context, d digest.Digest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.blobs[d]; !ok {
		return fmt.Errorf("%s: %w", d, store.ErrBlobUnknown)
	}
	delete(b.blobs, d)
	return nil
}

// Walk implements store.Blobs. fn runs without the lock held, on a
// snapshot, so it may call back into the store.
func (b *Blobs) Walk(ctx context.Context, fn func(d digest.Digest, size int64, modified time.Time) error) error {
	type entry struct {
		d    digest.Digest
		size int64
		mod  time.Time
	}
	b.mu.Lock()
	all := make([]entry, 0, len(b.blobs))
	for d, bl := range b.blobs {
		all = append(all, entry{d, int64(len(bl.data)), bl.modified})
	}
	b.mu.Unlock()
	for _, e := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.d, e.size, e.mod); err != nil {
			return err
		}
	}
	return nil
}

// NewUpload implements store.Blobs.
func (b *Blobs) NewUpload(_ context.Context) (store.Upload, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("naming upload: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	b.mu.Lock()
	defer b.mu.Unlock()
	b.uploads[id] = &session{sha256: sha256.New(), modified: b.now()}
	return &upload{b: b, id: id}, nil
}

// ResumeUpload implements store.Blobs.
func (b *Blobs) ResumeUpload(_ context.Context, id string) (store.Upload, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.uploads[id]; !ok {
		return nil, fmt.Errorf("upload %q: %w", id, store.ErrUploadUnknown)
	}
	return &upload{b: b, id: id}, nil
}

// Uploads implements store.Blobs.
func (b *Blobs) Uploads(ctx context.Context, fn func(id string, size int64, modified time.Time) error) error {
	type entry struct {
		id   string
		size int64
		mod  time.Time
	}
	b.mu.Lock()
	all := make([]entry, 0, len(b.uploads))
	for id, s := range b.uploads {
		all = append(all, entry{id, int64(len(s.data)), s.modified})
	}
	b.mu.Unlock()
	for _, e := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.id, e.size, e.mod); err != nil {
			return err
		}
	}
	return nil
}

// upload is a handle on a session. After Commit, Cancel or Close it
// refuses every call.
type upload struct {
	b      *Blobs
	id     string
	closed bool
}

var errClosed = fmt.Errorf("upload handle closed: %w", store.ErrUploadUnknown)

func (u *upload) ID() string { return u.id }

// session returns the live session; the caller holds u.b.mu.
func (u *upload) session() (*session, error) {
	if u.closed {
		return nil, errClosed
	}
	s, ok := u.b.uploads[u.id]
	if !ok {
		return nil, fmt.Errorf("upload %q: %w", u.id, store.ErrUploadUnknown)
	}
	return s, nil
}

func (u *upload) Size() int64 {
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	s, err := u.session()
	if err != nil {
		return 0
	}
	return int64(len(s.data))
}

// Write appends p and feeds the running sha256.
func (u *upload) Write(p []byte) (int, error) {
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	s, err := u.session()
	if err != nil {
		return 0, err
	}
	s.data = append(s.data, p...)
	s.sha256.Write(p) // hash.Hash.Write never fails
	s.modified = u.b.now()
	return len(p), nil
}

// Commit checks the bytes against d: sha256 from the running hash, sha512
// by hashing the data once, anything else is refused.
func (u *upload) Commit(_ context.Context, d digest.Digest, size int64) error {
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	s, err := u.session()
	if err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%q: %w: %w", d, store.ErrDigestInvalid, err)
	}
	var got string
	switch d.Algorithm() {
	case digest.SHA256:
		got = hex.EncodeToString(s.sha256.Sum(nil))
	case digest.SHA512:
		sum := sha512.Sum512(s.data)
		got = hex.EncodeToString(sum[:])
	default:
		return fmt.Errorf("algorithm of %q: %w", d, store.ErrDigestInvalid)
	}
	if got != d.Encoded() {
		return fmt.Errorf("upload hashes to %s:%s, not %s: %w", d.Algorithm(), got, d, store.ErrDigestInvalid)
	}
	if size >= 0 && size != int64(len(s.data)) {
		return fmt.Errorf("upload has %d bytes, not %d: %w", len(s.data), size, store.ErrSizeInvalid)
	}
	if _, ok := u.b.blobs[d]; !ok {
		u.b.blobs[d] = blob{data: s.data, modified: u.b.now()}
	}
	delete(u.b.uploads, u.id)
	u.closed = true
	return nil
}

func (u *upload) Cancel(_ context.Context) error {
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	if _, err := u.session(); err != nil {
		return err
	}
	delete(u.b.uploads, u.id)
	u.closed = true
	return nil
}

// Close keeps the session for ResumeUpload; closing twice is harmless.
func (u *upload) Close() error {
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	u.closed = true
	return nil
}
