package memstore

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

// Meta is an in-memory store.Meta. One mutex makes every method atomic.
// It is safe for concurrent use.
type Meta struct {
	mu      sync.Mutex
	repos   map[string]*repo
	uploads map[string]uploadRecord
	events  []store.Event
}

type repo struct {
	links     map[digest.Digest]bool
	manifests map[digest.Digest]store.Manifest
	tags      map[string]digest.Digest
}

type uploadRecord struct {
	repo    string
	started time.Time
}

var _ store.Meta = (*Meta)(nil)

// NewMeta returns an empty metadata store.
func NewMeta() *Meta {
	return &Meta{repos: map[string]*repo{}, uploads: map[string]uploadRecord{}}
}

// repo returns name's record, creating it when create is set; the caller
// holds m.mu.
func (m *Meta) repo(name string, create bool) *repo {
	r, ok := m.repos[name]
	if !ok && create {
		r = &repo{links: map[digest.Digest]bool{}, manifests: map[digest.Digest]store.Manifest{}, tags: map[string]digest.Digest{}}
		m.repos[name] = r
	}
	return r
}

// forget drops a repository that holds nothing any more, so that it
// leaves the catalog; the caller holds m.mu.
func (m *Meta) forget(name string) {
	if r := m.repos[name]; r != nil && len(r.links) == 0 && len(r.manifests) == 0 && len(r.tags) == 0 {
		delete(m.repos, name)
	}
}

// LinkBlob implements store.Meta.
func (m *Meta) LinkBlob(_ context.Context, repo string, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.repo(repo, true).links[d] = true
	return nil
}

// BlobLinked implements store.Meta.
func (m *Meta) BlobLinked(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	return r != nil && r.links[d], nil
}

// UnlinkBlob implements store.Meta.
func (m *Meta) UnlinkBlob(_ context.Context, repo string, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil || !r.links[d] {
		return fmt.Errorf("%s in %s: %w", d, repo, store.ErrBlobUnknown)
	}
	delete(r.links, d)
	m.forget(repo)
	return nil
}

// PutManifest implements store.Meta.
func (m *Meta) PutManifest(_ context.Context, repo string, man store.Manifest, tag string, ev store.Event) (digest.Digest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, true)
	man.Refs = slices.Clone(man.Refs)
	r.manifests[man.Digest] = man
	var previous digest.Digest
	if tag != "" {
		previous = r.tags[tag]
		r.tags[tag] = man.Digest
	}
	m.events = append(m.events, ev)
	return previous, nil
}

// Manifest implements store.Meta.
func (m *Meta) Manifest(_ context.Context, repo string, d digest.Digest) (store.Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil {
		return store.Manifest{}, fmt.Errorf("%s in %s: %w", d, repo, store.ErrManifestUnknown)
	}
	man, ok := r.manifests[d]
	if !ok {
		return store.Manifest{}, fmt.Errorf("%s in %s: %w", d, repo, store.ErrManifestUnknown)
	}
	man.Refs = slices.Clone(man.Refs)
	return man, nil
}

// DeleteManifest implements store.Meta.
func (m *Meta) DeleteManifest(_ context.Context, repo string, d digest.Digest, ev store.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil {
		return fmt.Errorf("%s in %s: %w", d, repo, store.ErrManifestUnknown)
	}
	if _, ok := r.manifests[d]; !ok {
		return fmt.Errorf("%s in %s: %w", d, repo, store.ErrManifestUnknown)
	}
	delete(r.manifests, d)
	for t, td := range r.tags {
		if td == d {
			delete(r.tags, t)
		}
	}
	m.forget(repo)
	m.events = append(m.events, ev)
	return nil
}

// Resolve implements store.Meta.
func (m *Meta) Resolve(_ context.Context, repo, tag string) (digest.Digest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil || r.tags[tag] == "" {
		return "", fmt.Errorf("tag %s in %s: %w", tag, repo, store.ErrTagUnknown)
	}
	return r.tags[tag], nil
}

// DeleteTag implements store.Meta.
func (m *Meta) DeleteTag(_ context.Context, repo, tag string, ev store.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil || r.tags[tag] == "" {
		return fmt.Errorf("tag %s in %s: %w", tag, repo, store.ErrTagUnknown)
	}
	delete(r.tags, tag)
	m.events = append(m.events, ev)
	return nil
}

// Tags implements store.Meta.
func (m *Meta) Tags(_ context.Context, repo, last string, n int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil {
		return nil, fmt.Errorf("%s: %w", repo, store.ErrNameUnknown)
	}
	tags := make([]string, 0, len(r.tags))
	for t := range r.tags {
		if t > last {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	if n > 0 && len(tags) > n {
		tags = tags[:n]
	}
	return tags, nil
}

// Referrers implements store.Meta. They come in digest order, so that
// listings are stable.
func (m *Meta) Referrers(_ context.Context, repo string, d digest.Digest, artifactType string) ([]store.Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(repo, false)
	if r == nil {
		return nil, nil
	}
	var out []store.Manifest
	for _, man := range r.manifests {
		if man.Subject == d && (artifactType == "" || man.ArtifactType == artifactType) {
			man.Refs = slices.Clone(man.Refs)
			out = append(out, man)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// Repositories implements store.Meta.
func (m *Meta) Repositories(_ context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.repos))
	for name := range m.repos {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// Referenced implements store.Meta. fn runs on a snapshot without the
// lock held.
func (m *Meta) Referenced(ctx context.Context, fn func(d digest.Digest) error) error {
	m.mu.Lock()
	seen := map[digest.Digest]bool{}
	for _, r := range m.repos {
		for d, man := range r.manifests {
			seen[d] = true
			for _, ref := range man.Refs {
				seen[ref] = true
			}
		}
	}
	m.mu.Unlock()
	for d := range seen {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// Linked implements store.Meta.
func (m *Meta) Linked(ctx context.Context, fn func(repo string, d digest.Digest) error) error {
	type link struct {
		repo string
		d    digest.Digest
	}
	m.mu.Lock()
	var all []link
	for name, r := range m.repos {
		for d := range r.links {
			all = append(all, link{name, d})
		}
	}
	m.mu.Unlock()
	for _, l := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(l.repo, l.d); err != nil {
			return err
		}
	}
	return nil
}

// PutUpload implements store.Meta.
func (m *Meta) PutUpload(_ context.Context, id, repo string, started time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uploads[id] = uploadRecord{repo: repo, started: started}
	return nil
}

// UploadRepo implements store.Meta.
func (m *Meta) UploadRepo(_ context.Context, id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.uploads[id]
	if !ok {
		return "", fmt.Errorf("upload %q: %w", id, store.ErrUploadUnknown)
	}
	return u.repo, nil
}

// DeleteUpload implements store.Meta.
func (m *Meta) DeleteUpload(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.uploads, id)
	return nil
}

// Audit implements store.Meta.
func (m *Meta) Audit(_ context.Context, ev store.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev)
	return nil
}

// Events implements store.Meta.
func (m *Meta) Events(ctx context.Context, since time.Time, fn func(store.Event) error) error {
	m.mu.Lock()
	var evs []store.Event
	for _, ev := range m.events {
		if !ev.Time.Before(since) {
			evs = append(evs, ev)
		}
	}
	m.mu.Unlock()
	for _, ev := range evs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

// Close implements store.Meta; nothing needs releasing.
func (m *Meta) Close() error { return nil }
