package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

// TestMeta runs the store.Meta conformance suite. newMeta returns an empty
// store for each subtest; it registers its own cleanup (Close).
func TestMeta(t *testing.T, newMeta func(t *testing.T) store.Meta) {
	tests := []struct {
		name string
		run  func(t *testing.T, m store.Meta)
	}{
		{"Links", metaLinks},
		{"PutManifestAndResolve", metaPutManifest},
		{"ManifestPerRepository", metaManifestPerRepo},
		{"TagMoves", metaTagMoves},
		{"TagsPagination", metaTagsPagination},
		{"TagsUnknownRepository", metaTagsUnknown},
		{"DeleteTag", metaDeleteTag},
		{"DeleteManifest", metaDeleteManifest},
		{"Referrers", metaReferrers},
		{"Repositories", metaRepositories},
		{"Referenced", metaReferenced},
		{"Linked", metaLinked},
		{"CallbacksMayCallBack", metaCallbacks},
		{"Uploads", metaUploads},
		{"AuditOrder", metaAudit},
		{"ConcurrentTagMoves", metaConcurrentTag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newMeta(t))
		})
	}
}

// t0 is a fixed time so records compare exactly.
func t0() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }

func dig(s string) digest.Digest { return digest.FromString(s) }

func manifest(name string) store.Manifest {
	return store.Manifest{
		Digest:    dig(name),
		MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size:      int64(100 + len(name)),
		Refs:      []digest.Digest{dig(name + "/config"), dig(name + "/layer")},
		Created:   t0(),
	}
}

func ev(action string) store.Event {
	return store.Event{Time: t0(), Actor: "tester", Action: action}
}

func put(t *testing.T, m store.Meta, repo string, man store.Manifest, tag string) digest.Digest {
	t.Helper()
	prev, err := m.PutManifest(t.Context(), repo, man, tag, ev("push-manifest"))
	if err != nil {
		t.Fatalf("PutManifest %s %s: %v", repo, tag, err)
	}
	return prev
}

func sameManifest(a, b store.Manifest) bool {
	return a.Digest == b.Digest && a.MediaType == b.MediaType && a.ArtifactType == b.ArtifactType &&
		a.Size == b.Size && maps.Equal(a.Annotations, b.Annotations) && a.Subject == b.Subject &&
		slices.Equal(a.Refs, b.Refs) && a.Created.Equal(b.Created)
}

func metaLinks(t *testing.T, m store.Meta) {
	ctx := t.Context()
	d := dig("layer")
	if ok, err := m.BlobLinked(ctx, "a", d); err != nil || ok {
		t.Fatalf("BlobLinked before LinkBlob = %v, %v", ok, err)
	}
	if err := m.LinkBlob(ctx, "a", d); err != nil {
		t.Fatal(err)
	}
	if err := m.LinkBlob(ctx, "a", d); err != nil {
		t.Fatalf("linking twice: %v", err)
	}
	if ok, err := m.BlobLinked(ctx, "a", d); err != nil || !ok {
		t.Fatalf("BlobLinked after LinkBlob = %v, %v", ok, err)
	}
	if ok, _ := m.BlobLinked(ctx, "b", d); ok {
		t.Fatal("a link in repository a shows in b")
	}
	if ok, _ := m.BlobLinked(ctx, "a/b", d); ok {
		t.Fatal("a link in repository a shows in a/b")
	}
	if err := m.UnlinkBlob(ctx, "a", d); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.BlobLinked(ctx, "a", d); ok {
		t.Fatal("still linked after UnlinkBlob")
	}
	if err := m.UnlinkBlob(ctx, "a", d); !errors.Is(err, store.ErrBlobUnknown) {
		t.Fatalf("second UnlinkBlob: %v, want ErrBlobUnknown", err)
	}
	if err := m.UnlinkBlob(ctx, "never", d); !errors.Is(err, store.ErrBlobUnknown) {
		t.Fatalf("UnlinkBlob in an unknown repository: %v, want ErrBlobUnknown", err)
	}
}

func metaPutManifest(t *testing.T, m store.Meta) {
	ctx := t.Context()
	man := manifest("one")
	man.ArtifactType = "application/vnd.example"
	man.Annotations = map[string]string{"org.opencontainers.image.title": "one"}
	if prev := put(t, m, "repo", man, "v1"); prev != "" {
		t.Fatalf("new tag: previous = %q, want empty", prev)
	}
	got, err := m.Manifest(ctx, "repo", man.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if !sameManifest(got, man) {
		t.Fatalf("Manifest = %+v, want %+v", got, man)
	}
	if d, err := m.Resolve(ctx, "repo", "v1"); err != nil || d != man.Digest {
		t.Fatalf("Resolve = %q, %v", d, err)
	}
	// Without a tag: recorded, reachable by digest, not tagged.
	untagged := manifest("two")
	if prev := put(t, m, "repo", untagged, ""); prev != "" {
		t.Fatalf("untagged put: previous = %q", prev)
	}
	if _, err := m.Manifest(ctx, "repo", untagged.Digest); err != nil {
		t.Fatal(err)
	}
	if tags, err := m.Tags(ctx, "repo", "", 0); err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
	if _, err := m.Resolve(ctx, "repo", "v2"); !errors.Is(err, store.ErrTagUnknown) {
		t.Fatalf("Resolve unknown tag: %v", err)
	}
	if _, err := m.Resolve(ctx, "nope", "v1"); !errors.Is(err, store.ErrTagUnknown) {
		t.Fatalf("Resolve in unknown repository: %v", err)
	}
	// Re-putting the same manifest under the same tag is not a move.
	if prev := put(t, m, "repo", man, "v1"); prev != man.Digest {
		t.Fatalf("re-put: previous = %q, want %q", prev, man.Digest)
	}
}

func metaManifestPerRepo(t *testing.T, m store.Meta) {
	ctx := t.Context()
	man := manifest("scoped")
	put(t, m, "a", man, "")
	if _, err := m.Manifest(ctx, "b", man.Digest); !errors.Is(err, store.ErrManifestUnknown) {
		t.Fatalf("manifest of a visible in b: %v", err)
	}
	if _, err := m.Manifest(ctx, "a", dig("other")); !errors.Is(err, store.ErrManifestUnknown) {
		t.Fatalf("unknown digest: %v", err)
	}
}

func metaTagMoves(t *testing.T, m store.Meta) {
	ctx := t.Context()
	a, b := manifest("a"), manifest("b")
	put(t, m, "r", a, "latest")
	if prev := put(t, m, "r", b, "latest"); prev != a.Digest {
		t.Fatalf("move: previous = %q, want %q", prev, a.Digest)
	}
	if d, _ := m.Resolve(ctx, "r", "latest"); d != b.Digest {
		t.Fatalf("Resolve after move = %q", d)
	}
	// The old manifest stays, untagged.
	if _, err := m.Manifest(ctx, "r", a.Digest); err != nil {
		t.Fatalf("moving a tag removed the old manifest: %v", err)
	}
	// Same tag name, other repository: independent.
	if prev := put(t, m, "s", a, "latest"); prev != "" {
		t.Fatalf("tag of r leaked into s: previous = %q", prev)
	}
}

func metaTagsPagination(t *testing.T, m store.Meta) {
	ctx := t.Context()
	tags := []string{"v2", "latest", "v10", "V1", "a", "v1", "b_c", "b-c", "b.c", "1.0"}
	for i, tag := range tags {
		put(t, m, "r", manifest(fmt.Sprint(i)), tag)
	}
	want := slices.Clone(tags)
	sort.Strings(want) // lexical, byte order
	got, err := m.Tags(ctx, "r", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Tags = %v, want %v", got, want)
	}
	for _, n := range []int{1, 3, len(want), len(want) + 1} {
		var pages []string
		last := ""
		for range len(want) + 2 {
			page, err := m.Tags(ctx, "r", last, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > n {
				t.Fatalf("n=%d: page of %d", n, len(page))
			}
			if len(page) == 0 {
				break
			}
			pages = append(pages, page...)
			last = page[len(page)-1]
		}
		if !slices.Equal(pages, want) {
			t.Errorf("n=%d: pages joined = %v, want %v", n, pages, want)
		}
	}
	for _, tc := range []struct {
		last string
		n    int
		want []string
	}{
		{"b_c", 0, want[slices.Index(want, "b_c")+1:]},
		{"b", 2, []string{"b-c", "b.c"}}, // last need not be a tag
		{"zzz", 0, nil},
		{want[len(want)-1], 5, nil},
	} {
		got, err := m.Tags(ctx, "r", tc.last, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && !slices.Equal(got, tc.want)) {
			t.Errorf("Tags(last=%q, n=%d) = %v, want %v", tc.last, tc.n, got, tc.want)
		}
	}
}

func metaTagsUnknown(t *testing.T, m store.Meta) {
	if _, err := m.Tags(t.Context(), "never", "", 0); !errors.Is(err, store.ErrNameUnknown) {
		t.Fatalf("Tags of an unknown repository: %v, want ErrNameUnknown", err)
	}
}

func metaDeleteTag(t *testing.T, m store.Meta) {
	ctx := t.Context()
	a := manifest("a")
	put(t, m, "r", a, "keep")
	put(t, m, "r", a, "drop")
	if err := m.DeleteTag(ctx, "r", "drop", ev("untag")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resolve(ctx, "r", "drop"); !errors.Is(err, store.ErrTagUnknown) {
		t.Fatalf("Resolve after DeleteTag: %v", err)
	}
	if d, err := m.Resolve(ctx, "r", "keep"); err != nil || d != a.Digest {
		t.Fatalf("other tag lost: %q, %v", d, err)
	}
	if _, err := m.Manifest(ctx, "r", a.Digest); err != nil {
		t.Fatalf("DeleteTag removed the manifest: %v", err)
	}
	if err := m.DeleteTag(ctx, "r", "drop", ev("untag")); !errors.Is(err, store.ErrTagUnknown) {
		t.Fatalf("second DeleteTag: %v, want ErrTagUnknown", err)
	}
	if err := m.DeleteTag(ctx, "never", "x", ev("untag")); !errors.Is(err, store.ErrTagUnknown) {
		t.Fatalf("DeleteTag in unknown repository: %v, want ErrTagUnknown", err)
	}
}

func metaDeleteManifest(t *testing.T, m store.Meta) {
	ctx := t.Context()
	subject := manifest("subject")
	put(t, m, "r", subject, "app")
	sig := manifest("sig")
	sig.Subject = subject.Digest
	sig.ArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	put(t, m, "r", sig, "t1")
	put(t, m, "r", sig, "t2")
	other := manifest("other")
	put(t, m, "r", other, "t3")

	if err := m.DeleteManifest(ctx, "r", sig.Digest, ev("delete-manifest")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Manifest(ctx, "r", sig.Digest); !errors.Is(err, store.ErrManifestUnknown) {
		t.Fatalf("Manifest after delete: %v", err)
	}
	for _, tag := range []string{"t1", "t2"} {
		if _, err := m.Resolve(ctx, "r", tag); !errors.Is(err, store.ErrTagUnknown) {
			t.Errorf("tag %s survived its manifest: %v", tag, err)
		}
	}
	tags, err := m.Tags(ctx, "r", "", 0)
	if err != nil || !slices.Equal(tags, []string{"app", "t3"}) {
		t.Errorf("Tags after delete = %v, %v; want [app t3]", tags, err)
	}
	refs, err := m.Referrers(ctx, "r", subject.Digest, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Errorf("referrer entry survived its manifest: %v", refs)
	}
	for d := range referenced(t, m) {
		if d == sig.Digest {
			t.Error("deleted manifest still Referenced")
		}
	}
	if err := m.DeleteManifest(ctx, "r", sig.Digest, ev("delete-manifest")); !errors.Is(err, store.ErrManifestUnknown) {
		t.Fatalf("second DeleteManifest: %v, want ErrManifestUnknown", err)
	}
	if err := m.DeleteManifest(ctx, "never", sig.Digest, ev("delete-manifest")); !errors.Is(err, store.ErrManifestUnknown) {
		t.Fatalf("DeleteManifest in unknown repository: %v, want ErrManifestUnknown", err)
	}
}

func metaReferrers(t *testing.T, m store.Meta) {
	ctx := t.Context()
	subject := dig("subject")
	mk := func(name, artifactType string, s digest.Digest) store.Manifest {
		man := manifest(name)
		man.ArtifactType = artifactType
		man.Subject = s
		man.Annotations = map[string]string{"dev.sigstore.bundle.predicateType": name}
		return man
	}
	sigA := mk("sig-a", "application/vnd.dev.sigstore.bundle.v0.3+json", subject)
	sigB := mk("sig-b", "application/vnd.dev.sigstore.bundle.v0.3+json", subject)
	sbom := mk("sbom", "application/spdx+json", subject)
	put(t, m, "r", sigA, "")
	put(t, m, "r", sigB, "")
	put(t, m, "r", sbom, "")
	put(t, m, "other", mk("elsewhere", sigA.ArtifactType, subject), "")
	put(t, m, "r", mk("unrelated", sigA.ArtifactType, dig("another subject")), "")
	put(t, m, "r", manifest("no subject"), "")

	byDigest := func(ms []store.Manifest) map[digest.Digest]store.Manifest {
		out := map[digest.Digest]store.Manifest{}
		for _, x := range ms {
			out[x.Digest] = x
		}
		return out
	}
	for _, tc := range []struct {
		artifactType string
		want         []store.Manifest
	}{
		{"", []store.Manifest{sigA, sigB, sbom}},
		{sigA.ArtifactType, []store.Manifest{sigA, sigB}},
		{"application/spdx+json", []store.Manifest{sbom}},
		{"application/none", nil},
	} {
		got, err := m.Referrers(ctx, "r", subject, tc.artifactType)
		if err != nil {
			t.Fatal(err)
		}
		g := byDigest(got)
		if len(got) != len(tc.want) || len(g) != len(tc.want) {
			t.Errorf("Referrers(%q) returned %d, want %d", tc.artifactType, len(got), len(tc.want))
		}
		for _, w := range tc.want {
			if !sameManifest(g[w.Digest], w) {
				t.Errorf("Referrers(%q)[%s] = %+v, want %+v", tc.artifactType, w.Digest, g[w.Digest], w)
			}
		}
	}
	// The subject need not exist (OCI 1.1 allows pushing referrers first).
	if got, err := m.Referrers(ctx, "never", subject, ""); err != nil || len(got) != 0 {
		t.Errorf("Referrers in unknown repository = %v, %v", got, err)
	}
}

func metaRepositories(t *testing.T, m store.Meta) {
	ctx := t.Context()
	if repos, err := m.Repositories(ctx); err != nil || len(repos) != 0 {
		t.Fatalf("Repositories of an empty store = %v, %v", repos, err)
	}
	for _, r := range []string{"b", "a/z", "a", "c/d/e"} {
		put(t, m, r, manifest(r), "latest")
	}
	repos, err := m.Repositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "a/z", "b", "c/d/e"}; !slices.Equal(repos, want) {
		t.Fatalf("Repositories = %v, want %v", repos, want)
	}
}

func referenced(t *testing.T, m store.Meta) map[digest.Digest]bool {
	t.Helper()
	got := map[digest.Digest]bool{}
	if err := m.Referenced(t.Context(), func(d digest.Digest) error { got[d] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func metaReferenced(t *testing.T, m store.Meta) {
	ctx := t.Context()
	a, b := manifest("a"), manifest("b")
	shared := dig("shared layer")
	a.Refs = append(a.Refs, shared)
	b.Refs = append(b.Refs, shared)
	index := manifest("index")
	index.MediaType = "application/vnd.oci.image.index.v1+json"
	index.Refs = []digest.Digest{a.Digest, b.Digest}
	put(t, m, "one", a, "a")
	put(t, m, "two", b, "")
	put(t, m, "two", index, "multi")
	if err := m.LinkBlob(ctx, "one", dig("only linked")); err != nil {
		t.Fatal(err)
	}

	want := map[digest.Digest]bool{shared: true}
	for _, x := range []store.Manifest{a, b, index} {
		want[x.Digest] = true
		for _, r := range x.Refs {
			want[r] = true
		}
	}
	if got := referenced(t, m); !maps.Equal(got, want) {
		t.Fatalf("Referenced = %v, want %v", slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(want)))
	}
	if err := m.DeleteManifest(ctx, "two", b.Digest, ev("delete-manifest")); err != nil {
		t.Fatal(err)
	}
	got := referenced(t, m)
	if !got[shared] || !got[b.Digest] {
		t.Error("deleting b dropped a digest a or the index still needs")
	}
	if got[dig("b/config")] {
		t.Error("b's config is still Referenced after b was deleted")
	}
	stop := errors.New("stop")
	if err := m.Referenced(ctx, func(digest.Digest) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Referenced did not return fn's error: %v", err)
	}
}

func metaLinked(t *testing.T, m store.Meta) {
	ctx := t.Context()
	type link struct {
		repo string
		d    digest.Digest
	}
	want := map[link]bool{}
	for _, l := range []link{{"a", dig("1")}, {"a", dig("2")}, {"b", dig("1")}, {"b/c", dig("3")}} {
		if err := m.LinkBlob(ctx, l.repo, l.d); err != nil {
			t.Fatal(err)
		}
		want[l] = true
	}
	got := map[link]bool{}
	err := m.Linked(ctx, func(repo string, d digest.Digest) error {
		if got[link{repo, d}] {
			t.Errorf("Linked reported %s@%s twice", repo, d)
		}
		got[link{repo, d}] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("Linked = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := m.Linked(ctx, func(string, digest.Digest) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Linked did not return fn's error: %v", err)
	}
}

// metaCallbacks checks that fn may call the store, as GC-like code that
// unlinks while listing links does. A store that holds a lock or a
// transaction across fn deadlocks here; the test fails instead of hanging.
func metaCallbacks(t *testing.T, m store.Meta) {
	ctx := t.Context()
	put(t, m, "r", manifest("a"), "")
	for i := range 3 {
		if err := m.LinkBlob(ctx, "r", dig(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		err := m.Linked(ctx, func(repo string, d digest.Digest) error {
			return m.UnlinkBlob(ctx, repo, d)
		})
		if err == nil {
			err = m.Referenced(ctx, func(d digest.Digest) error { return m.LinkBlob(ctx, "r", d) })
		}
		if err == nil {
			err = m.Events(ctx, time.Time{}, func(store.Event) error { return nil })
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("calling the store from a Linked or Referenced callback deadlocked")
	}
	for i := range 3 {
		if ok, _ := m.BlobLinked(ctx, "r", dig(fmt.Sprint(i))); ok {
			t.Errorf("link %d survived UnlinkBlob from the callback", i)
		}
	}
}

func metaUploads(t *testing.T, m store.Meta) {
	ctx := t.Context()
	if err := m.PutUpload(ctx, "id1", "repo/a", t0()); err != nil {
		t.Fatal(err)
	}
	if err := m.PutUpload(ctx, "id2", "repo/b", t0()); err != nil {
		t.Fatal(err)
	}
	if repo, err := m.UploadRepo(ctx, "id1"); err != nil || repo != "repo/a" {
		t.Fatalf("UploadRepo = %q, %v", repo, err)
	}
	if err := m.DeleteUpload(ctx, "id1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UploadRepo(ctx, "id1"); !errors.Is(err, store.ErrUploadUnknown) {
		t.Fatalf("UploadRepo after DeleteUpload: %v", err)
	}
	if repo, err := m.UploadRepo(ctx, "id2"); err != nil || repo != "repo/b" {
		t.Fatalf("other session lost: %q, %v", repo, err)
	}
	if _, err := m.UploadRepo(ctx, "../x"); !errors.Is(err, store.ErrUploadUnknown) {
		t.Fatalf("UploadRepo of unknown id: %v", err)
	}
}

func metaAudit(t *testing.T, m store.Meta) {
	ctx := t.Context()
	at := func(min int) time.Time { return t0().Add(time.Duration(min) * time.Minute) }
	// Appended out of clock order: Events follows the order of appending.
	for i, ts := range []time.Time{at(0), at(2), at(1), at(3), at(3)} {
		e := store.Event{Time: ts, Actor: "u", Action: "tag", Repository: "r", Detail: fmt.Sprint(i)}
		if err := m.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	man := manifest("audited")
	if _, err := m.PutManifest(ctx, "r", man, "v1", store.Event{Time: at(4), Actor: "alice", Action: "push-manifest", Repository: "r", Digest: man.Digest, Tag: "v1", Detail: "5"}); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTag(ctx, "r", "v1", store.Event{Time: at(5), Actor: "bob", Action: "untag", Repository: "r", Tag: "v1", Detail: "6"}); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteManifest(ctx, "r", man.Digest, store.Event{Time: at(6), Actor: "bob", Action: "delete-manifest", Repository: "r", Digest: man.Digest, Detail: "7"}); err != nil {
		t.Fatal(err)
	}
	details := func(since time.Time) []string {
		var out []string
		err := m.Events(ctx, since, func(e store.Event) error {
			out = append(out, e.Detail)
			if e.Detail == "5" && (e.Actor != "alice" || e.Action != "push-manifest" || e.Digest != man.Digest || !e.Time.Equal(at(4))) {
				t.Errorf("PutManifest's event recorded as %+v", e)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := details(time.Time{}), []string{"0", "1", "2", "3", "4", "5", "6", "7"}; !slices.Equal(got, want) {
		t.Errorf("Events = %v, want %v", got, want)
	}
	if got, want := details(at(2)), []string{"1", "3", "4", "5", "6", "7"}; !slices.Equal(got, want) {
		t.Errorf("Events(since 2) = %v, want %v", got, want)
	}
	if got := details(at(7)); len(got) != 0 {
		t.Errorf("Events after the last = %v", got)
	}
	stop := errors.New("stop")
	if err := m.Events(ctx, time.Time{}, func(store.Event) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Events did not return fn's error: %v", err)
	}
}

// metaConcurrentTag moves one tag from many goroutines. Whatever the
// interleaving, the returned previous digests must form one chain: every
// put saw exactly the put before it.
func metaConcurrentTag(t *testing.T, m store.Meta) {
	ctx := t.Context()
	const n = 32
	prevs := make([]digest.Digest, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			prevs[i], errs[i] = m.PutManifest(ctx, "race", manifest(fmt.Sprint("m", i)), "latest", ev("push-manifest"))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	final, err := m.Resolve(ctx, "race", "latest")
	if err != nil {
		t.Fatal(err)
	}
	// next maps each previous digest to the put that replaced it.
	next := map[digest.Digest]digest.Digest{}
	for i, p := range prevs {
		d := dig(fmt.Sprint("m", i))
		if other, dup := next[p]; dup {
			t.Fatalf("both %s and %s replaced %q: a lost update", other, d, p)
		}
		next[p] = d
	}
	// Walk the chain from the first put (previous "") to the tag's
	// final value; it must visit every put exactly once.
	seen := 0
	for cur := digest.Digest(""); ; {
		nx, ok := next[cur]
		if !ok {
			if cur != final {
				t.Fatalf("chain ends at %q, but the tag points at %q", cur, final)
			}
			break
		}
		cur = nx
		seen++
		if seen > n {
			t.Fatal("previous digests form a cycle")
		}
	}
	if seen != n {
		t.Fatalf("chain covers %d of %d puts", seen, n)
	}
	for i := range n {
		if _, err := m.Manifest(ctx, "race", dig(fmt.Sprint("m", i))); err != nil {
			t.Errorf("manifest %d lost: %v", i, err)
		}
	}
	count := 0
	if err := m.Events(ctx, time.Time{}, func(store.Event) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d audit events for %d puts", count, n)
	}
}
