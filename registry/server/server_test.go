package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/airlock-dev/airlock/registry/store"
	"github.com/airlock-dev/airlock/registry/store/boltstore"
	"github.com/airlock-dev/airlock/registry/store/fsstore"
	"github.com/airlock-dev/airlock/registry/store/memstore"
)

// fixture is a registry over real stores, served over real HTTP.
type fixture struct {
	srv    *httptest.Server
	server *Server
	host   string
	blobs  store.Blobs
	meta   store.Meta
}

// storeFlag picks the stores the server tests run on: the on-disk ones
// that airlock registry serve uses (default), or the in-memory reference.
var storeFlag = flag.String("store", "disk", "stores for the server tests: disk (fsstore + boltstore) or mem (memstore)")

func start(t *testing.T, cfg Config, opts ...Option) *fixture {
	t.Helper()
	f := &fixture{}
	switch *storeFlag {
	case "mem":
		f.blobs, f.meta = memstore.NewBlobs(nil), memstore.NewMeta()
	case "disk":
		dir := t.TempDir()
		b, err := fsstore.New(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := boltstore.New(filepath.Join(dir, "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		f.blobs, f.meta = b, m
	default:
		t.Fatalf("-store=%s: want disk or mem", *storeFlag)
	}
	if cfg.Blobs == nil {
		cfg.Blobs = f.blobs
	}
	cfg.Meta = f.meta
	f.server = New(cfg, opts...)
	f.srv = httptest.NewServer(f.server)
	t.Cleanup(f.srv.Close)
	f.host = strings.TrimPrefix(f.srv.URL, "http://")
	return f
}

// repo is an oras-go client for name.
func (f *fixture) repo(t *testing.T, name string) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(f.host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	return r
}

// response is a read HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode is the first code of the error envelope, "" if none.
func (r response) errorCode() string {
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

// do sends a raw request; path is relative to the server ("/v2/...") or an
// upload Location.
func (f *fixture) do(t *testing.T, method, path string, body []byte, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// pushBlob uploads b monolithically to repo and returns its digest.
func (f *fixture) pushBlob(t *testing.T, repo string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	res := f.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b)
	if res.status != http.StatusCreated {
		t.Fatalf("pushing blob: %d %s", res.status, res.body)
	}
	return d
}

// imageManifest builds an OCI image manifest over blobs pushed to repo.
func (f *fixture) imageManifest(t *testing.T, repo string, mut func(*ocispec.Manifest)) []byte {
	t.Helper()
	cfg := []byte("{}")
	layer := []byte("layer of " + repo)
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: "application/vnd.example.config.v1+json", Digest: f.pushBlob(t, repo, cfg), Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: f.pushBlob(t, repo, layer), Size: int64(len(layer))}},
	}
	m.SchemaVersion = 2
	if mut != nil {
		mut(&m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) putManifest(t *testing.T, repo, ref string, b []byte) response {
	t.Helper()
	return f.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, b, "Content-Type", ocispec.MediaTypeImageManifest)
}

func TestBase(t *testing.T) {
	f := start(t, Config{})
	res := f.do(t, http.MethodGet, "/v2/", nil)
	if res.status != http.StatusOK || res.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("GET /v2/: %d %v", res.status, res.header)
	}
}

// TestOrasPushPullTagReferrers drives the registry with oras-go the way
// `oras push`, `oras tag`, `oras discover` and `oras cp` do.
func TestOrasPushPullTagReferrers(t *testing.T) {
	ctx := context.Background()
	f := start(t, Config{})
	repo := f.repo(t, "models/demo")

	layer := content.NewDescriptorFromBytes("application/vnd.example.layer.v1", []byte("weights"))
	if err := repo.Push(ctx, layer, bytes.NewReader([]byte("weights"))); err != nil {
		t.Fatal(err)
	}
	subject, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.model.v1",
		oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, subject, "v1"); err != nil {
		t.Fatal(err)
	}
	got, err := repo.Resolve(ctx, "v1")
	if err != nil || got.Digest != subject.Digest || got.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("resolve v1 = %v, %v; want %s", got, err, subject.Digest)
	}
	rc, err := repo.Blobs().Fetch(ctx, layer)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "weights" {
		t.Fatalf("layer = %q", b)
	}

	// Two referrers of different types, one with annotations.
	sig, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.sig.v1",
		oras.PackManifestOptions{Subject: &subject, ManifestAnnotations: map[string]string{"dev.example/signer": "ci", ocispec.AnnotationCreated: "2026-01-01T00:00:00Z"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.sbom.v1",
		oras.PackManifestOptions{Subject: &subject}); err != nil {
		t.Fatal(err)
	}
	var all, sigs []ocispec.Descriptor
	if err := repo.Referrers(ctx, subject, "", func(r []ocispec.Descriptor) error { all = append(all, r...); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := repo.Referrers(ctx, subject, "application/vnd.example.sig.v1", func(r []ocispec.Descriptor) error { sigs = append(sigs, r...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("referrers = %v, want 2", all)
	}
	if len(sigs) != 1 || sigs[0].Digest != sig.Digest || sigs[0].ArtifactType != "application/vnd.example.sig.v1" || sigs[0].Annotations["dev.example/signer"] != "ci" {
		t.Fatalf("filtered referrers = %+v, want the signature with its artifactType and annotations", sigs)
	}
	// oras-go relied on the referrers API (OCI-Subject was answered), so it
	// wrote no tag-schema index.
	if _, err := repo.Resolve(ctx, "sha256-"+subject.Digest.Encoded()); err == nil {
		t.Fatal("oras-go fell back to the referrers tag schema")
	}

	// Copy the graph (with referrers) to another repository, by mount.
	dst := f.repo(t, "models/copy")
	if _, err := oras.ExtendedCopy(ctx, repo, "v1", dst, "v1", oras.ExtendedCopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if d, err := dst.Resolve(ctx, "v1"); err != nil || d.Digest != subject.Digest {
		t.Fatalf("copied v1 = %v, %v", d, err)
	}
	var copied []ocispec.Descriptor
	if err := dst.Referrers(ctx, subject, "", func(r []ocispec.Descriptor) error { copied = append(copied, r...); return nil }); err != nil || len(copied) != 2 {
		t.Fatalf("copied referrers = %v, %v", copied, err)
	}
}

// TestReferrersRaw checks the wire form: an index, the filter header,
// and an empty index for an unknown subject.
func TestReferrersRaw(t *testing.T) {
	f := start(t, Config{})
	subj := f.imageManifest(t, "r", nil)
	sd := digest.FromBytes(subj)
	f.putManifest(t, "r", "v1", subj)
	ref := f.imageManifest(t, "r", func(m *ocispec.Manifest) {
		m.ArtifactType = "application/vnd.example.sig.v1"
		m.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: sd, Size: int64(len(subj))}
		m.Annotations = map[string]string{"k": "v"}
	})
	if res := f.putManifest(t, "r", digest.FromBytes(ref).String(), ref); res.status != http.StatusCreated || res.header.Get("OCI-Subject") != sd.String() {
		t.Fatalf("push referrer: %d OCI-Subject=%q %s", res.status, res.header.Get("OCI-Subject"), res.body)
	}
	for _, tc := range []struct {
		name, query string
		want        int
		filtered    bool
	}{
		{"all", "", 1, false},
		{"match", "?artifactType=application/vnd.example.sig.v1", 1, true},
		{"no match", "?artifactType=application/vnd.other", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.do(t, http.MethodGet, "/v2/r/referrers/"+sd.String()+tc.query, nil)
			var idx ocispec.Index
			if err := json.Unmarshal(res.body, &idx); err != nil || res.status != http.StatusOK {
				t.Fatalf("%d %s", res.status, res.body)
			}
			if res.header.Get("Content-Type") != ocispec.MediaTypeImageIndex || idx.MediaType != ocispec.MediaTypeImageIndex {
				t.Fatalf("content type %q, mediaType %q", res.header.Get("Content-Type"), idx.MediaType)
			}
			if len(idx.Manifests) != tc.want {
				t.Fatalf("manifests = %v", idx.Manifests)
			}
			if tc.want == 1 && (idx.Manifests[0].Annotations["k"] != "v" || idx.Manifests[0].ArtifactType != "application/vnd.example.sig.v1") {
				t.Fatalf("descriptor = %+v", idx.Manifests[0])
			}
			if got := res.header.Get("OCI-Filters-Applied") == "artifactType"; got != tc.filtered {
				t.Fatalf("OCI-Filters-Applied = %q", res.header.Get("OCI-Filters-Applied"))
			}
		})
	}
	unknown := digest.FromString("nothing")
	res := f.do(t, http.MethodGet, "/v2/nowhere/referrers/"+unknown.String(), nil)
	if res.status != http.StatusOK || !bytes.Contains(res.body, []byte(`"manifests":[]`)) {
		t.Fatalf("unknown subject: %d %s", res.status, res.body)
	}
}

// TestReferrersTagSchema checks that the index old clients write under
// sha256-<hex> is stored and served as an ordinary tag.
func TestReferrersTagSchema(t *testing.T) {
	f := start(t, Config{})
	subj := f.imageManifest(t, "r", nil)
	f.putManifest(t, "r", "v1", subj)
	sig := f.imageManifest(t, "r", func(m *ocispec.Manifest) { m.Config.MediaType = "application/vnd.dev.cosign.artifact.sig.v1+json" })
	sigd := digest.FromBytes(sig)
	f.putManifest(t, "r", sigd.String(), sig)
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: sigd, Size: int64(len(sig)), ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json"}}}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	tag := "sha256-" + digest.FromBytes(subj).Encoded()
	if res := f.do(t, http.MethodPut, "/v2/r/manifests/"+tag, b, "Content-Type", ocispec.MediaTypeImageIndex); res.status != http.StatusCreated {
		t.Fatalf("put fallback index: %d %s", res.status, res.body)
	}
	res := f.do(t, http.MethodGet, "/v2/r/manifests/"+tag, nil)
	if res.status != http.StatusOK || !bytes.Equal(res.body, b) || res.header.Get("Content-Type") != ocispec.MediaTypeImageIndex {
		t.Fatalf("get fallback index: %d %q %s", res.status, res.header.Get("Content-Type"), res.body)
	}
}

func TestTagPagination(t *testing.T) {
	ctx := context.Background()
	f := start(t, Config{})
	m := f.imageManifest(t, "p", nil)
	want := []string{"a", "b", "c", "d", "e"}
	for _, tag := range want {
		if res := f.putManifest(t, "p", tag, m); res.status != http.StatusCreated {
			t.Fatalf("tag %s: %d", tag, res.status)
		}
	}
	res := f.do(t, http.MethodGet, "/v2/p/tags/list?n=2", nil)
	if res.status != http.StatusOK || string(res.body) != `{"name":"p","tags":["a","b"]}` {
		t.Fatalf("page 1: %d %s", res.status, res.body)
	}
	if link := res.header.Get("Link"); link != `</v2/p/tags/list?last=b&n=2>; rel="next"` {
		t.Fatalf("Link = %q", link)
	}
	res = f.do(t, http.MethodGet, "/v2/p/tags/list?n=2&last=d", nil)
	if string(res.body) != `{"name":"p","tags":["e"]}` || res.header.Get("Link") != "" {
		t.Fatalf("last page: %s Link=%q", res.body, res.header.Get("Link"))
	}
	// oras-go follows the Link header page by page.
	repo := f.repo(t, "p")
	repo.TagListPageSize = 2
	var got []string
	pages := 0
	if err := repo.Tags(ctx, "", func(tags []string) error { pages++; got = append(got, tags...); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 3 {
		t.Fatalf("tags = %v in %d pages", got, pages)
	}
	if res := f.do(t, http.MethodGet, "/v2/nothing/tags/list", nil); res.status != http.StatusNotFound || res.errorCode() != "NAME_UNKNOWN" {
		t.Fatalf("unknown repo: %d %s", res.status, res.body)
	}
}

func TestCrossRepositoryMount(t *testing.T) {
	f := start(t, Config{})
	d := f.pushBlob(t, "src", []byte("shared"))
	res := f.do(t, http.MethodPost, "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil)
	if res.status != http.StatusCreated || res.header.Get("Location") != "/v2/dst/blobs/"+d.String() {
		t.Fatalf("mount: %d %v", res.status, res.header)
	}
	if res := f.do(t, http.MethodHead, "/v2/dst/blobs/"+d.String(), nil); res.status != http.StatusOK {
		t.Fatalf("mounted blob: %d", res.status)
	}
	// Not in from: an ordinary session instead.
	res = f.do(t, http.MethodPost, "/v2/dst2/blobs/uploads/?mount="+d.String()+"&from=elsewhere", nil)
	if res.status != http.StatusAccepted || res.header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("failed mount: %d %v", res.status, res.header)
	}
	// Without from, no automatic mount unless configured.
	res = f.do(t, http.MethodPost, "/v2/dst3/blobs/uploads/?mount="+d.String(), nil)
	if res.status != http.StatusAccepted {
		t.Fatalf("mount without from: %d", res.status)
	}
	g := start(t, Config{AutoMount: true})
	d = g.pushBlob(t, "src", []byte("shared"))
	if res := g.do(t, http.MethodPost, "/v2/dst/blobs/uploads/?mount="+d.String(), nil); res.status != http.StatusCreated {
		t.Fatalf("automatic mount: %d", res.status)
	}
	// Deleting the mounted copy leaves the source's.
	if res := f.do(t, http.MethodDelete, "/v2/dst/blobs/"+d.String(), nil); res.status != http.StatusAccepted {
		t.Fatalf("delete: %d", res.status)
	}
	if res := f.do(t, http.MethodHead, "/v2/dst/blobs/"+d.String(), nil); res.status != http.StatusNotFound {
		t.Fatalf("after delete in dst: %d", res.status)
	}
	if res := f.do(t, http.MethodHead, "/v2/src/blobs/"+d.String(), nil); res.status != http.StatusOK {
		t.Fatalf("src after delete in dst: %d", res.status)
	}
}
