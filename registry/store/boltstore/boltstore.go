package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/airlock-dev/airlock/registry/store"
)

var _ store.Meta = (*Store)(nil)

var _ store.ManifestLister = (*Store)(nil)

// Bucket names. Byte slices are built per use: no package-level mutable
// state.
const (
	bucketRepos     = "repos"
	bucketManifests = "manifests"
	bucketTags      = "tags"
	bucketLinks     = "links"
	bucketReferrers = "referrers"
	bucketUploads   = "uploads"
	bucketAudit     = "audit"
)

// eventBatch bounds how many audit events Events holds in memory (and how
// long it holds a read transaction) between calls of fn.
const eventBatch = 1024

// Store is a store.Meta in one bbolt file. bbolt takes an exclusive lock
// on the file, so one process at a time serves it.
type Store struct {
	db      *bolt.DB
	now     func() time.Time
	timeout time.Duration
}

// Option configures a Store.
type Option func(*Store)

// WithNow sets the clock that stamps audit events recorded without a
// time; tests inject a fake one. The default is time.Now.
func WithNow(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithLockTimeout bounds how long New waits for another process to release
// the database file, instead of hanging behind a registry already running
// on it. The default is 5 seconds.
func WithLockTimeout(d time.Duration) Option { return func(s *Store) { s.timeout = d } }

// ErrLocked is New's error when another process (a running registry)
// holds the database past the lock timeout.
var ErrLocked = errors.New("in use by another process")

// New opens (creating if needed) the metadata database at path.
func New(path string, opts ...Option) (*Store, error) {
	s := &Store{now: time.Now, timeout: 5 * time.Second}
	for _, o := range opts {
		o(s)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: s.timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{bucketRepos, bucketUploads, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close() // the initialisation error is the one to report
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	s.db = db
	return s, nil
}

// Close releases the database file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing metadata: %w", err)
	}
	return nil
}

// view and update run fn in one transaction after checking ctx: bbolt
// transactions cannot be interrupted, so ctx is honoured at the start.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// repo returns a repository's sub-bucket kind, or nil if the repository
// or the bucket does not exist.
func repoBucket(tx *bolt.Tx, repo, kind string) *bolt.Bucket {
	r := tx.Bucket([]byte(bucketRepos)).Bucket([]byte(repo))
	if r == nil {
		return nil
	}
	return r.Bucket([]byte(kind))
}

// createRepoBucket returns a repository's sub-bucket, creating both.
func createRepoBucket(tx *bolt.Tx, repo, kind string) (*bolt.Bucket, error) {
	if repo == "" {
		return nil, fmt.Errorf("empty repository name: %w", store.ErrNameUnknown)
	}
	r, err := tx.Bucket([]byte(bucketRepos)).CreateBucketIfNotExists([]byte(repo))
	if err != nil {
		return nil, err
	}
	return r.CreateBucketIfNotExists([]byte(kind))
}

// pruneRepo deletes a repository that holds nothing any more, so that
// Repositories and Tags stop reporting it.
func pruneRepo(tx *bolt.Tx, repo string) error {
	repos := tx.Bucket([]byte(bucketRepos))
	r := repos.Bucket([]byte(repo))
	if r == nil {
		return nil
	}
	for _, kind := range []string{bucketManifests, bucketTags, bucketLinks, bucketReferrers} {
		if b := r.Bucket([]byte(kind)); b != nil {
			if k, _ := b.Cursor().First(); k != nil {
				return nil
			}
		}
	}
	return repos.DeleteBucket([]byte(repo))
}

func referrerKey(subject, d digest.Digest) []byte {
	return []byte(string(subject) + " " + string(d))
}

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%q: %w", d, store.ErrDigestInvalid)
	}
	return nil
}

// LinkBlob records that repo holds d.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := createRepoBucket(tx, repo, bucketLinks)
		if err != nil {
			return err
		}
		return b.Put([]byte(d), nil)
	})
	if err != nil {
		return fmt.Errorf("linking %s in %s: %w", d, repo, err)
	}
	return nil
}

// BlobLinked reports whether repo holds d.
func (s *Store) BlobLinked(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	var ok bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if b := repoBucket(tx, repo, bucketLinks); b != nil {
			ok = b.Get([]byte(d)) != nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading link %s in %s: %w", d, repo, err)
	}
	return ok, nil
}

// UnlinkBlob removes a link.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := repoBucket(tx, repo, bucketLinks)
		if b == nil || b.Get([]byte(d)) == nil {
			return store.ErrBlobUnknown
		}
		if err := b.Delete([]byte(d)); err != nil {
			return err
		}
		return pruneRepo(tx, repo)
	})
	if err != nil {
		return fmt.Errorf("unlinking %s in %s: %w", d, repo, err)
	}
	return nil
}

// PutManifest records m, its referrer entry and its tag, and appends ev,
// in one transaction. When ev leaves them empty it fills in ev.Time (from
// the store's clock), ev.Repository, ev.Digest, ev.Tag and, for a tag
// that moved, ev.Previous: only the transaction knows the previous digest
// for certain.
func (s *Store) PutManifest(ctx context.Context, repo string, m store.Manifest, tag string, ev store.Event) (digest.Digest, error) {
	if err := checkDigest(m.Digest); err != nil {
		return "", err
	}
	if m.Subject != "" {
		if err := checkDigest(m.Subject); err != nil {
			return "", err
		}
	}
	js, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encoding manifest %s: %w", m.Digest, err)
	}
	var previous digest.Digest
	err = s.update(ctx, func(tx *bolt.Tx) error {
		ms, err := createRepoBucket(tx, repo, bucketManifests)
		if err != nil {
			return err
		}
		refs, err := createRepoBucket(tx, repo, bucketReferrers)
		if err != nil {
			return err
		}
		// A re-put replaces the record; drop a stale referrer entry should
		// the subject differ (it cannot for the same bytes, but the record
		// is the caller's).
		if old := ms.Get([]byte(m.Digest)); old != nil {
			var om store.Manifest
			if json.Unmarshal(old, &om) == nil && om.Subject != "" && om.Subject != m.Subject {
				if err := refs.Delete(referrerKey(om.Subject, m.Digest)); err != nil {
					return err
				}
			}
		}
		if err := ms.Put([]byte(m.Digest), js); err != nil {
			return err
		}
		if m.Subject != "" {
			if err := refs.Put(referrerKey(m.Subject, m.Digest), nil); err != nil {
				return err
			}
		}
		if tag != "" {
			tags, err := createRepoBucket(tx, repo, bucketTags)
			if err != nil {
				return err
			}
			previous = digest.Digest(tags.Get([]byte(tag)))
			if err := tags.Put([]byte(tag), []byte(m.Digest)); err != nil {
				return err
			}
		}
		fill(&ev, repo, m.Digest, tag, previous)
		return s.appendEvent(tx, ev)
	})
	if err != nil {
		return "", fmt.Errorf("putting manifest %s in %s: %w", m.Digest, repo, err)
	}
	return previous, nil
}

// fill completes an event with what the transaction knows.
func fill(ev *store.Event, repo string, d digest.Digest, tag string, previous digest.Digest) {
	if ev.Repository == "" {
		ev.Repository = repo
	}
	if ev.Digest == "" {
		ev.Digest = d
	}
	if ev.Tag == "" {
		ev.Tag = tag
	}
	if ev.Previous == "" && previous != d {
		ev.Previous = previous
	}
}

// Manifest returns a manifest record.
func (s *Store) Manifest(ctx context.Context, repo string, d digest.Digest) (store.Manifest, error) {
	var m store.Manifest
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := repoBucket(tx, repo, bucketManifests)
		if b == nil {
			return store.ErrManifestUnknown
		}
		v := b.Get([]byte(d))
		if v == nil {
			return store.ErrManifestUnknown
		}
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return store.Manifest{}, fmt.Errorf("reading manifest %s in %s: %w", d, repo, err)
	}
	return m, nil
}

// DeleteManifest removes a manifest, every tag pointing at it and its
// referrer entry. Referrer entries of manifests whose subject it was stay:
// OCI allows a referrer whose subject is gone.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest, ev store.Event) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		ms := repoBucket(tx, repo, bucketManifests)
		if ms == nil {
			return store.ErrManifestUnknown
		}
		v := ms.Get([]byte(d))
		if v == nil {
			return store.ErrManifestUnknown
		}
		var m store.Manifest
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("decoding manifest: %w", err)
		}
		if err := ms.Delete([]byte(d)); err != nil {
			return err
		}
		if refs := repoBucket(tx, repo, bucketReferrers); refs != nil && m.Subject != "" {
			if err := refs.Delete(referrerKey(m.Subject, d)); err != nil {
				return err
			}
		}
		var gone [][]byte
		if tags := repoBucket(tx, repo, bucketTags); tags != nil {
			err := tags.ForEach(func(k, v []byte) error {
				if string(v) == string(d) {
					gone = append(gone, bytes.Clone(k))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range gone {
				if err := tags.Delete(k); err != nil {
					return err
				}
			}
		}
		fill(&ev, repo, d, "", "")
		if ev.Detail == "" && len(gone) > 0 {
			ev.Detail = "untagged " + string(bytes.Join(gone, []byte(", ")))
		}
		if err := s.appendEvent(tx, ev); err != nil {
			return err
		}
		return pruneRepo(tx, repo)
	})
	if err != nil {
		return fmt.Errorf("deleting manifest %s in %s: %w", d, repo, err)
	}
	return nil
}

// Resolve returns the digest a tag points at.
func (s *Store) Resolve(ctx context.Context, repo, tag string) (digest.Digest, error) {
	var d digest.Digest
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := repoBucket(tx, repo, bucketTags)
		if b == nil {
			return store.ErrTagUnknown
		}
		v := b.Get([]byte(tag))
		if v == nil {
			return store.ErrTagUnknown
		}
		d = digest.Digest(v)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("resolving %s:%s: %w", repo, tag, err)
	}
	return d, nil
}

// DeleteTag removes a tag; the event records the digest it pointed at.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string, ev store.Event) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := repoBucket(tx, repo, bucketTags)
		if b == nil {
			return store.ErrTagUnknown
		}
		v := b.Get([]byte(tag))
		if v == nil {
			return store.ErrTagUnknown
		}
		previous := digest.Digest(v)
		if err := b.Delete([]byte(tag)); err != nil {
			return err
		}
		fill(&ev, repo, "", tag, previous)
		if err := s.appendEvent(tx, ev); err != nil {
			return err
		}
		return pruneRepo(tx, repo)
	})
	if err != nil {
		return fmt.Errorf("deleting tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

// Tags lists a repository's tags in byte order after last, at most n.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	tags := []string{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketRepos)).Bucket([]byte(repo)) == nil {
			return store.ErrNameUnknown
		}
		b := repoBucket(tx, repo, bucketTags)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, _ := c.First()
		if last != "" {
			k, _ = c.Seek([]byte(last))
			if k != nil && string(k) == last {
				k, _ = c.Next()
			}
		}
		for ; k != nil && (n <= 0 || len(tags) < n); k, _ = c.Next() {
			tags = append(tags, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	return tags, nil
}

// Referrers lists the manifests in repo whose subject is d, by digest.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]store.Manifest, error) {
	out := []store.Manifest{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		refs := repoBucket(tx, repo, bucketReferrers)
		ms := repoBucket(tx, repo, bucketManifests)
		if refs == nil || ms == nil {
			return nil
		}
		prefix := []byte(string(d) + " ")
		c := refs.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			v := ms.Get(k[len(prefix):])
			if v == nil {
				continue
			}
			var m store.Manifest
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decoding manifest %s: %w", k[len(prefix):], err)
			}
			if artifactType == "" || m.ArtifactType == artifactType {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s in %s: %w", d, repo, err)
	}
	return out, nil
}

// Repositories lists repository names in byte order.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	names := []string{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRepos)).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing repositories: %w", err)
	}
	return names, nil
}

// Manifests calls fn for every manifest record in repo, in digest order.
// It implements store.ManifestLister so that fsck need not probe every
// digest in every repository.
func (s *Store) Manifests(ctx context.Context, repo string, fn func(store.Manifest) error) error {
	var all []store.Manifest
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := repoBucket(tx, repo, bucketManifests)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var m store.Manifest
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decoding manifest %s: %w", k, err)
			}
			all = append(all, m)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("listing manifests of %s: %w", repo, err)
	}
	for _, m := range all {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Referenced calls fn once for every digest a manifest in some repository
// needs. fn runs outside the transaction (a bbolt write inside a read
// transaction of the same goroutine can deadlock), so it may call back
// into the store.
func (s *Store) Referenced(ctx context.Context, fn func(d digest.Digest) error) error {
	seen := map[digest.Digest]struct{}{}
	var order []digest.Digest
	add := func(d digest.Digest) {
		if _, ok := seen[d]; !ok && d != "" {
			seen[d] = struct{}{}
			order = append(order, d)
		}
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRepos)).ForEachBucket(func(repo []byte) error {
			b := repoBucket(tx, string(repo), bucketManifests)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				var m store.Manifest
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("decoding manifest %s in %s: %w", k, repo, err)
				}
				add(m.Digest)
				for _, r := range m.Refs {
					add(r)
				}
				return nil
			})
		})
	})
	if err != nil {
		return fmt.Errorf("marking referenced blobs: %w", err)
	}
	for _, d := range order {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// Linked calls fn for every link, outside the transaction (see
// Referenced), so fn may unlink.
func (s *Store) Linked(ctx context.Context, fn func(repo string, d digest.Digest) error) error {
	type link struct {
		repo string
		d    digest.Digest
	}
	var links []link
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRepos)).ForEachBucket(func(repo []byte) error {
			b := repoBucket(tx, string(repo), bucketLinks)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, _ []byte) error {
				links = append(links, link{string(repo), digest.Digest(k)})
				return nil
			})
		})
	})
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	for _, l := range links {
		if err := fn(l.repo, l.d); err != nil {
			return err
		}
	}
	return nil
}

type uploadRecord struct {
	Repo    string    `json:"repo"`
	Started time.Time `json:"started"`
}

// PutUpload remembers a session's repository.
func (s *Store) PutUpload(ctx context.Context, id, repo string, started time.Time) error {
	if id == "" {
		return fmt.Errorf("empty upload id: %w", store.ErrUploadUnknown)
	}
	js, err := json.Marshal(uploadRecord{Repo: repo, Started: started})
	if err != nil {
		return fmt.Errorf("encoding upload %s: %w", id, err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketUploads)).Put([]byte(id), js)
	})
	if err != nil {
		return fmt.Errorf("recording upload %s: %w", id, err)
	}
	return nil
}

// UploadRepo returns a session's repository.
func (s *Store) UploadRepo(ctx context.Context, id string) (string, error) {
	var rec uploadRecord
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketUploads)).Get([]byte(id))
		if v == nil {
			return store.ErrUploadUnknown
		}
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return "", fmt.Errorf("reading upload %s: %w", id, err)
	}
	return rec.Repo, nil
}

// DeleteUpload forgets a session; forgetting an unknown one is not an
// error, so cleanup can be repeated.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketUploads)).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("forgetting upload %s: %w", id, err)
	}
	return nil
}

// Audit appends an event, stamped with the store's clock if it has no
// time.
func (s *Store) Audit(ctx context.Context, ev store.Event) error {
	err := s.update(ctx, func(tx *bolt.Tx) error { return s.appendEvent(tx, ev) })
	if err != nil {
		return fmt.Errorf("appending audit event: %w", err)
	}
	return nil
}

// appendEvent stores ev under the bucket's next sequence number, which
// bbolt increments inside the write transaction: the key order is the
// commit order, whatever the events' clocks say.
func (s *Store) appendEvent(tx *bolt.Tx, ev store.Event) error {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	js, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding audit event: %w", err)
	}
	b := tx.Bucket([]byte(bucketAudit))
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return b.Put(k[:], js)
}

// Events calls fn for every event at or after since, in sequence order,
// reading in batches outside of which fn runs.
func (s *Store) Events(ctx context.Context, since time.Time, fn func(store.Event) error) error {
	var after []byte
	for {
		var batch []store.Event
		var lastKey []byte
		err := s.view(ctx, func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte(bucketAudit)).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for n := 0; k != nil && n < eventBatch; k, v = c.Next() {
				n++
				lastKey = bytes.Clone(k)
				var ev store.Event
				if err := json.Unmarshal(v, &ev); err != nil {
					return fmt.Errorf("decoding audit event %x: %w", k, err)
				}
				if !ev.Time.Before(since) {
					batch = append(batch, ev)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading audit log: %w", err)
		}
		for _, ev := range batch {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if lastKey == nil {
			return nil
		}
		after = lastKey
	}
}
