package store_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/boltstore"
	"github.com/airlock-dev/airlock/registry/store/fsstore"
)

// fixture is a real filesystem blob store and bbolt metadata store that
// share a settable clock.
type fixture struct {
	t     *testing.T
	root  string
	now   time.Time
	blobs *fsstore.Store
	meta  *boltstore.Store
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, root: t.TempDir(), now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return f.now }
	var err error
	if f.blobs, err = fsstore.New(filepath.Join(f.root, "blobs"), fsstore.WithNow(clock)); err != nil {
		t.Fatal(err)
	}
	if f.meta, err = boltstore.New(filepath.Join(f.root, "meta.db"), boltstore.WithNow(clock)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.meta.Close() })
	return f
}

func (f *fixture) clock() time.Time { return f.now }

// blob commits data and links it in repo.
func (f *fixture) blob(repo string, data []byte) digest.Digest {
	f.t.Helper()
	ctx := f.t.Context()
	u, err := f.blobs.NewUpload(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	u.Write(data)
	d := digest.FromBytes(data)
	if err := u.Commit(ctx, d, -1); err != nil {
		f.t.Fatal(err)
	}
	if err := f.meta.LinkBlob(ctx, repo, d); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// push stores an image manifest over config and layers and tags it.
func (f *fixture) push(repo, tag string, config digest.Digest, layers ...digest.Digest) store.Manifest {
	f.t.Helper()
	desc := func(d digest.Digest) map[string]any {
		return map[string]any{"mediaType": "application/octet-stream", "digest": d, "size": 1}
	}
	var ls []any
	for _, l := range layers {
		ls = append(ls, desc(l))
	}
	body, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc(config),
		"layers":        ls,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	md := f.blob(repo, body)
	m := store.Manifest{
		Digest:    md,
		MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size:      int64(len(body)),
		Refs:      append([]digest.Digest{config}, layers...),
		Created:   f.now,
	}
	if _, err := f.meta.PutManifest(f.t.Context(), repo, m, tag, store.Event{Actor: "test", Action: "push-manifest"}); err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *fixture) exists(d digest.Digest) bool {
	f.t.Helper()
	_, err := f.blobs.Stat(f.t.Context(), d)
	if err != nil && !errors.Is(err, store.ErrBlobUnknown) {
		f.t.Fatal(err)
	}
	return err == nil
}

func sweptDigests(r store.GCReport) []digest.Digest {
	var out []digest.Digest
	for _, s := range r.Swept {
		out = append(out, s.Digest)
	}
	return out
}

func TestGC(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()

	// Two hours ago: an image is pushed, and an orphan layer (its push
	// abandoned) and an upload that never finished are left behind.
	f.now = f.now.Add(-2 * time.Hour)
	config := f.blob("app", []byte(`{"architecture":"amd64"}`))
	layer := f.blob("app", []byte("layer"))
	img := f.push("app", "v1", config, layer)
	orphan := f.blob("app", []byte("orphan"))
	stale, err := f.blobs.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale.Write([]byte("half"))
	stale.Close()
	if err := f.meta.PutUpload(ctx, stale.ID(), "app", f.now); err != nil {
		t.Fatal(err)
	}
	// A link to a blob that was never stored (a crash between link and
	// commit in some other implementation, or a hand-edited store).
	ghost := digest.FromString("ghost")
	if err := f.meta.LinkBlob(ctx, "app", ghost); err != nil {
		t.Fatal(err)
	}

	// Now: a push is in progress. Its layer is committed, its manifest
	// not yet PUT, so nothing references the layer.
	f.now = f.now.Add(2 * time.Hour)
	inflight := f.blob("app", []byte("in-flight layer"))
	fresh, err := f.blobs.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Write([]byte("streaming"))
	fresh.Close()

	dry, err := store.GC(ctx, f.blobs, f.meta, store.GCOptions{DryRun: true, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	if got := sweptDigests(dry); !slices.Equal(got, []digest.Digest{orphan}) {
		t.Fatalf("dry run would sweep %v, want only the orphan %s", got, orphan)
	}
	if !f.exists(orphan) {
		t.Fatal("dry run deleted the orphan")
	}
	if len(dry.StaleUploads) != 1 || dry.StaleUploads[0].ID != stale.ID() {
		t.Fatalf("dry run stale uploads = %+v", dry.StaleUploads)
	}
	if len(dry.StaleLinks) != 2 {
		t.Fatalf("dry run stale links = %+v, want the ghost's and the orphan's", dry.StaleLinks)
	}

	rep, err := store.GC(ctx, f.blobs, f.meta, store.GCOptions{Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	if got := sweptDigests(rep); !slices.Equal(got, []digest.Digest{orphan}) {
		t.Fatalf("swept %v, want only %s", got, orphan)
	}
	if rep.Young != 1 {
		t.Errorf("Young = %d, want 1 (the in-flight layer)", rep.Young)
	}
	if f.exists(orphan) {
		t.Error("orphan survived")
	}
	for name, d := range map[string]digest.Digest{"in-flight layer": inflight, "config": config, "layer": layer, "manifest": img.Digest} {
		if !f.exists(d) {
			t.Errorf("GC deleted the %s", name)
		}
	}
	for _, d := range []digest.Digest{orphan, ghost} {
		if ok, _ := f.meta.BlobLinked(ctx, "app", d); ok {
			t.Errorf("stale link to %s survived", d)
		}
	}
	if ok, _ := f.meta.BlobLinked(ctx, "app", inflight); !ok {
		t.Error("GC unlinked the in-flight layer")
	}
	if _, err := f.blobs.ResumeUpload(ctx, stale.ID()); !errors.Is(err, store.ErrUploadUnknown) {
		t.Errorf("stale upload survived: %v", err)
	}
	if _, err := f.meta.UploadRepo(ctx, stale.ID()); !errors.Is(err, store.ErrUploadUnknown) {
		t.Errorf("stale upload's record survived: %v", err)
	}
	if u, err := f.blobs.ResumeUpload(ctx, fresh.ID()); err != nil {
		t.Errorf("GC removed an upload in progress: %v", err)
	} else {
		u.Close()
	}
	var audited bool
	f.meta.Events(ctx, time.Time{}, func(e store.Event) error {
		audited = audited || e.Action == "gc"
		return nil
	})
	if !audited {
		t.Error("GC left no audit event")
	}

	// Once the grace period has passed and the push never finished, the
	// in-flight layer goes too; the image stays.
	f.now = f.now.Add(time.Hour + time.Second)
	rep, err = store.GC(ctx, f.blobs, f.meta, store.GCOptions{Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	if got := sweptDigests(rep); !slices.Equal(got, []digest.Digest{inflight}) {
		t.Fatalf("second run swept %v, want %s", got, inflight)
	}
	fsck, err := store.Fsck(ctx, f.blobs, f.meta, store.FsckOptions{VerifyContent: true})
	if err != nil {
		t.Fatal(err)
	}
	if !fsck.OK() {
		t.Errorf("fsck after GC: %v", fsck.Problems)
	}
}

// TestGCRecommitRestartsGrace: a client that pushes again a blob GC
// would sweep (old, unreferenced) restarts its grace period, so the
// manifest PUT that follows finds it.
func TestGCRecommitRestartsGrace(t *testing.T) {
	f := newFixture(t)
	f.now = f.now.Add(-3 * time.Hour)
	d := f.blob("app", []byte("reused layer"))
	f.now = f.now.Add(3 * time.Hour)
	f.blob("app", []byte("reused layer"))
	rep, err := store.GC(t.Context(), f.blobs, f.meta, store.GCOptions{Now: f.clock, GracePeriod: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Swept) != 0 || !f.exists(d) {
		t.Fatalf("swept a blob re-pushed just now: %v", rep.Swept)
	}
}

func problems(r store.FsckReport) map[string][]digest.Digest {
	out := map[string][]digest.Digest{}
	for _, p := range r.Problems {
		out[p.Kind] = append(out[p.Kind], p.Digest)
	}
	return out
}

func TestFsck(t *testing.T) {
	blobPath := func(f *fixture, d digest.Digest) string {
		return filepath.Join(f.root, "blobs", "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
	}
	tests := []struct {
		name    string
		content bool
		// break damages a healthy store and returns the problem kind and
		// digest fsck must report.
		breakIt func(t *testing.T, f *fixture, img store.Manifest) (string, digest.Digest)
	}{
		{"healthy", true, func(*testing.T, *fixture, store.Manifest) (string, digest.Digest) { return "", "" }},
		{"corrupted layer", true, func(t *testing.T, f *fixture, img store.Manifest) (string, digest.Digest) {
			layer := img.Refs[1]
			if err := os.WriteFile(blobPath(f, layer), []byte("bit rot!"), 0o644); err != nil {
				t.Fatal(err)
			}
			return store.ProblemCorruptBlob, layer
		}},
		{"missing layer", false, func(t *testing.T, f *fixture, img store.Manifest) (string, digest.Digest) {
			layer := img.Refs[1]
			if err := os.Remove(blobPath(f, layer)); err != nil {
				t.Fatal(err)
			}
			return store.ProblemMissingBlob, layer
		}},
		{"dangling link", false, func(t *testing.T, f *fixture, _ store.Manifest) (string, digest.Digest) {
			d := digest.FromString("nowhere")
			f.meta.LinkBlob(t.Context(), "app", d)
			return store.ProblemDanglingLink, d
		}},
		{"manifest not JSON", false, func(t *testing.T, f *fixture, _ store.Manifest) (string, digest.Digest) {
			d := f.blob("app", []byte("not json"))
			_, err := f.meta.PutManifest(t.Context(), "app", store.Manifest{Digest: d, Size: 8}, "bad", store.Event{})
			if err != nil {
				t.Fatal(err)
			}
			return store.ProblemBadManifest, d
		}},
		{"refs disagree", false, func(t *testing.T, f *fixture, img store.Manifest) (string, digest.Digest) {
			wrong := img
			wrong.Refs = wrong.Refs[:1]
			if _, err := f.meta.PutManifest(t.Context(), "other", wrong, "", store.Event{}); err != nil {
				t.Fatal(err)
			}
			return store.ProblemBadManifest, img.Digest
		}},
	}
	for _, tt := range tests {
		for _, lister := range []bool{true, false} {
			name := tt.name
			if !lister {
				name += " without ManifestLister"
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t)
				var meta store.Meta = f.meta
				if !lister {
					meta = struct{ store.Meta }{f.meta} // hides Manifests
				}
				config := f.blob("app", []byte(`{}`))
				layer := f.blob("app", []byte("layer bytes"))
				img := f.push("app", "v1", config, layer)
				kind, d := tt.breakIt(t, f, img)
				rep, err := store.Fsck(t.Context(), f.blobs, meta, store.FsckOptions{VerifyContent: tt.content})
				if err != nil {
					t.Fatal(err)
				}
				if kind == "" {
					if !rep.OK() {
						t.Fatalf("healthy store: %v", rep.Problems)
					}
					if rep.Blobs != 3 || rep.Manifests != 1 || rep.Links != 3 || rep.Tags != 1 {
						t.Errorf("counted %+v", rep)
					}
					return
				}
				if got := problems(rep)[kind]; !slices.Contains(got, d) {
					t.Fatalf("want %s %s, got %v", kind, d, rep.Problems)
				}
			})
		}
	}
}

// TestFsckCorruptionNeedsContentCheck: without VerifyContent, a layer's
// bytes are not read, so rot in them is not seen; with it, it is.
func TestFsckCorruptionNeedsContentCheck(t *testing.T) {
	f := newFixture(t)
	layer := f.blob("app", []byte("layer bytes"))
	f.push("app", "v1", f.blob("app", []byte(`{}`)), layer)
	p := filepath.Join(f.root, "blobs", "blobs", "sha256", layer.Encoded()[:2], layer.Encoded())
	if err := os.WriteFile(p, []byte("LAYER BYTES"), 0o644); err != nil {
		t.Fatal(err)
	}
	quick, err := store.Fsck(t.Context(), f.blobs, f.meta, store.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := store.Fsck(t.Context(), f.blobs, f.meta, store.FsckOptions{VerifyContent: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems(quick)[store.ProblemCorruptBlob]) != 0 {
		t.Errorf("quick fsck reported content problems: %v", quick.Problems)
	}
	if got := problems(full)[store.ProblemCorruptBlob]; !slices.Equal(got, []digest.Digest{layer}) {
		t.Errorf("full fsck: %v", full.Problems)
	}
}
