package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-dev/airlock/registry"
)

// TestBadInput answers every malformed request with the spec's code and
// status, and leaves nothing behind.
func TestBadInput(t *testing.T) {
	f := start(t, Config{MaxManifestBytes: 1 << 10})
	good := f.imageManifest(t, "r", nil)
	gd := digest.FromBytes(good)
	missing := digest.FromString("missing")
	withMissing := f.imageManifest(t, "r", func(m *ocispec.Manifest) {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: missing, Size: 7})
	})
	foreign := f.imageManifest(t, "r", func(m *ocispec.Manifest) {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mediaTypeDockerForeignLayer, Digest: missing, Size: 7})
	})
	index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + missing.String() + `","size":7}]}`)
	sha512 := digest.SHA512.FromBytes(good)
	ct := []string{"Content-Type", ocispec.MediaTypeImageManifest}
	long := strings.Repeat("a/", 128) + "a"

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		header []string
		status int
		code   string
	}{
		{"unknown route", "GET", "/v2/r/nothing/here", nil, nil, 404, "UNSUPPORTED"},
		{"outside /v2", "GET", "/metrics-ish", nil, nil, 404, "UNSUPPORTED"},
		{"method", "POST", "/v2/r/manifests/v1", nil, nil, 405, "UNSUPPORTED"},
		{"name uppercase", "GET", "/v2/Repo/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name traversal", "GET", "/v2/a/../b/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name dot", "GET", "/v2/./tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name empty component", "GET", "/v2/a//b/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name encoded slash", "GET", "/v2/a%2Fb/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name encoded dots", "GET", "/v2/a/%2e%2e/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"name too long", "GET", "/v2/" + long + "/tags/list", nil, nil, 400, "NAME_INVALID"},
		{"no name", "GET", "/v2/manifests/v1", nil, nil, 400, "NAME_INVALID"},
		// Reading a reference that cannot be a tag is "unknown" (404), as
		// the OCI conformance suite requires; writing one is invalid.
		{"reference traversal", "GET", "/v2/r/manifests/..", nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"reference too long", "GET", "/v2/r/manifests/" + strings.Repeat("t", 129), nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"invalid tag written", "PUT", "/v2/r/manifests/.bad", good, ct, 400, "MANIFEST_INVALID"},
		{"digest algorithm", "GET", "/v2/r/blobs/md5:" + strings.Repeat("a", 32), nil, nil, 400, "DIGEST_INVALID"},
		{"digest sha384", "GET", "/v2/r/blobs/sha384:" + strings.Repeat("a", 96), nil, nil, 400, "DIGEST_INVALID"},
		{"digest short", "GET", "/v2/r/blobs/sha256:abc", nil, nil, 400, "DIGEST_INVALID"},
		{"digest uppercase", "GET", "/v2/r/blobs/sha256:" + strings.ToUpper(gd.Encoded()), nil, nil, 400, "DIGEST_INVALID"},
		{"manifest digest", "GET", "/v2/r/manifests/sha256:" + strings.Repeat("g", 64), nil, nil, 400, "DIGEST_INVALID"},
		{"referrers digest", "GET", "/v2/r/referrers/latest", nil, nil, 400, "DIGEST_INVALID"},
		{"unknown blob", "GET", "/v2/r/blobs/" + missing.String(), nil, nil, 404, "BLOB_UNKNOWN"},
		{"unknown manifest", "GET", "/v2/r/manifests/nope", nil, nil, 404, "MANIFEST_UNKNOWN"},
		{"unknown upload", "PATCH", "/v2/r/blobs/uploads/doesnotexist", []byte("x"), nil, 404, "BLOB_UPLOAD_UNKNOWN"},
		{"monolithic digest mismatch", "POST", "/v2/r/blobs/uploads/?digest=" + missing.String(), []byte("not it"), nil, 400, "DIGEST_INVALID"},
		{"monolithic bad digest", "POST", "/v2/r/blobs/uploads/?digest=sha256:zz", []byte("x"), nil, 400, "DIGEST_INVALID"},
		{"malformed JSON", "PUT", "/v2/r/manifests/x", []byte(`{"schemaVersion":2,`), ct, 400, "MANIFEST_INVALID"},
		{"not an object", "PUT", "/v2/r/manifests/x", []byte(`[]`), ct, 400, "MANIFEST_INVALID"},
		{"schema version", "PUT", "/v2/r/manifests/x", []byte(`{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), ct, 400, "MANIFEST_INVALID"},
		{"no config", "PUT", "/v2/r/manifests/x", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`), ct, 400, "MANIFEST_INVALID"},
		{"unknown media type", "PUT", "/v2/r/manifests/x", []byte(`{"schemaVersion":2}`), []string{"Content-Type", "text/plain"}, 400, "MANIFEST_INVALID"},
		{"media type mismatch", "PUT", "/v2/r/manifests/x", good, []string{"Content-Type", ocispec.MediaTypeImageIndex}, 400, "MANIFEST_INVALID"},
		{"bad descriptor digest", "PUT", "/v2/r/manifests/x", bytes.Replace(good, []byte(gdConfig(good)), []byte("sha256:00"), 1), ct, 400, "MANIFEST_INVALID"},
		{"missing blob", "PUT", "/v2/r/manifests/x", withMissing, ct, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"missing child", "PUT", "/v2/r/manifests/x", index, []string{"Content-Type", ocispec.MediaTypeImageIndex}, 400, "MANIFEST_UNKNOWN"},
		{"oversized", "PUT", "/v2/r/manifests/x", append(good[:len(good)-1], []byte(`,"annotations":{"a":"`+strings.Repeat("x", 2000)+`"}}`)...), ct, 413, "SIZE_INVALID"},
		{"URL digest mismatch", "PUT", "/v2/r/manifests/" + missing.String(), good, ct, 400, "DIGEST_INVALID"},
		{"sha512 URL digest", "PUT", "/v2/r/manifests/" + sha512.String(), good, ct, 201, ""},
		{"non-distributable layer", "PUT", "/v2/r/manifests/foreign", foreign, ct, 201, ""},
		{"tag list n", "GET", "/v2/r/tags/list?n=-1", nil, nil, 400, "UNSUPPORTED"},
		{"delete unknown blob", "DELETE", "/v2/r/blobs/" + missing.String(), nil, nil, 404, "BLOB_UNKNOWN"},
		{"delete unknown tag", "DELETE", "/v2/r/manifests/nope", nil, nil, 404, "MANIFEST_UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.do(t, tc.method, tc.path, tc.body, tc.header...)
			if res.status != tc.status || res.errorCode() != tc.code {
				t.Fatalf("%s %s: %d %s; want %d %s", tc.method, tc.path, res.status, res.body, tc.status, tc.code)
			}
			if tc.code != "" && res.header.Get("Content-Type") != "application/json" {
				t.Fatalf("error Content-Type %q", res.header.Get("Content-Type"))
			}
		})
	}
	// None of the refused pushes left a tag or a session behind.
	if res := f.do(t, "GET", "/v2/r/manifests/x", nil); res.status != 404 {
		t.Fatalf("a refused manifest was tagged: %d", res.status)
	}
	n := 0
	_ = f.blobs.Uploads(context.Background(), func(string, int64, time.Time) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d upload sessions left behind", n)
	}
	// The sha512 push is served under its sha512 digest.
	if res := f.do(t, "GET", "/v2/r/manifests/"+sha512.String(), nil); res.status != 200 || res.header.Get("Docker-Content-Digest") != sha512.String() {
		t.Fatalf("sha512 manifest: %d %v", res.status, res.header)
	}
}

// gdConfig returns the config digest inside a manifest built by
// imageManifest.
func gdConfig(m []byte) string {
	i := bytes.Index(m, []byte(`"digest":"`))
	return string(m[i+10 : i+10+71])
}

// guard is a fake TagGuard standing in for the gate: it allows targets
// it was told about.
type guard struct{ allow map[digest.Digest]bool }

func (g guard) AllowTag(_ context.Context, repo, tag string, target ocispec.Descriptor, _ digest.Digest) error {
	if g.allow[target.Digest] {
		return nil
	}
	return fmt.Errorf("%s:%s -> %s has no passing verdict: %w", repo, tag, target.Digest, registry.ErrTagProtected)
}

func TestProtectedTags(t *testing.T) {
	rules := []TagRule{{Repo: "models/*", Tag: "prod"}, {Repo: "models/*", Tag: "v*"}}
	t.Run("no guard: create once, then immutable", func(t *testing.T) {
		f := start(t, Config{ProtectedTags: rules})
		a := f.imageManifest(t, "models/m", nil)
		b := f.imageManifest(t, "models/m", func(m *ocispec.Manifest) { m.Annotations = map[string]string{"b": "b"} })
		if res := f.putManifest(t, "models/m", "prod", a); res.status != 201 {
			t.Fatalf("create: %d %s", res.status, res.body)
		}
		if res := f.putManifest(t, "models/m", "prod", a); res.status != 201 {
			t.Fatalf("same digest again: %d %s", res.status, res.body)
		}
		if res := f.putManifest(t, "models/m", "prod", b); res.status != 403 || res.errorCode() != "DENIED" {
			t.Fatalf("move: %d %s", res.status, res.body)
		}
		if res := f.do(t, "DELETE", "/v2/models/m/manifests/prod", nil); res.status != 403 {
			t.Fatalf("delete protected tag: %d", res.status)
		}
		if res := f.do(t, "DELETE", "/v2/models/m/manifests/"+digest.FromBytes(a).String(), nil); res.status != 403 {
			t.Fatalf("delete its manifest: %d", res.status)
		}
		if res := f.putManifest(t, "models/m", "staging", b); res.status != 201 {
			t.Fatalf("unprotected tag: %d", res.status)
		}
		if res := f.putManifest(t, "models/m", "staging", a); res.status != 201 {
			t.Fatalf("moving unprotected tag: %d", res.status)
		}
		if res := f.putManifest(t, "other", "prod", f.imageManifest(t, "other", nil)); res.status != 201 {
			t.Fatalf("other repository: %d", res.status)
		}
	})
	t.Run("guard decides", func(t *testing.T) {
		g := guard{allow: map[digest.Digest]bool{}}
		f := start(t, Config{ProtectedTags: rules, Guard: g})
		a := f.imageManifest(t, "models/m", nil)
		b := f.imageManifest(t, "models/m", func(m *ocispec.Manifest) { m.Annotations = map[string]string{"b": "b"} })
		if res := f.putManifest(t, "models/m", "v1", a); res.status != 403 || !strings.Contains(string(res.body), "no passing verdict") {
			t.Fatalf("guard refusal: %d %s", res.status, res.body)
		}
		g.allow[digest.FromBytes(a)] = true
		g.allow[digest.FromBytes(b)] = true
		for _, m := range [][]byte{a, b} {
			if res := f.putManifest(t, "models/m", "v1", m); res.status != 201 {
				t.Fatalf("guard allows: %d %s", res.status, res.body)
			}
		}
	})
	t.Run("release tags", func(t *testing.T) {
		f := start(t, Config{ImmutableReleaseTags: true})
		rel := func(n string) []byte {
			return f.imageManifest(t, "m", func(m *ocispec.Manifest) {
				m.ArtifactType = registry.ArtifactTypeModel
				m.Annotations = map[string]string{"n": n}
			})
		}
		a, b := rel("a"), rel("b")
		if res := f.putManifest(t, "m", "v1", a); res.status != 201 {
			t.Fatalf("create: %d", res.status)
		}
		if res := f.putManifest(t, "m", "v1", b); res.status != 403 {
			t.Fatalf("move release tag: %d %s", res.status, res.body)
		}
		if res := f.putManifest(t, "m", "v2", b); res.status != 201 {
			t.Fatalf("new release tag: %d", res.status)
		}
	})
	t.Run("a guarded environment tag moves between releases", func(t *testing.T) {
		g := guard{allow: map[digest.Digest]bool{}}
		f := start(t, Config{ImmutableReleaseTags: true, ProtectedTags: []TagRule{{Repo: "*", Tag: "prod"}}, Guard: g})
		rel := func(n string) []byte {
			return f.imageManifest(t, "m", func(m *ocispec.Manifest) {
				m.ArtifactType = registry.ArtifactTypeModel
				m.Annotations = map[string]string{"n": n}
			})
		}
		a, b := rel("a"), rel("b")
		g.allow[digest.FromBytes(a)] = true
		if res := f.putManifest(t, "m", "prod", a); res.status != 201 {
			t.Fatalf("create: %d %s", res.status, res.body)
		}
		if res := f.putManifest(t, "m", "prod", b); res.status != 403 || !strings.Contains(string(res.body), "no passing verdict") {
			t.Fatalf("the guard must refuse b: %d %s", res.status, res.body)
		}
		g.allow[digest.FromBytes(b)] = true
		if res := f.putManifest(t, "m", "prod", b); res.status != 201 {
			t.Fatalf("the guard allows b: %d %s", res.status, res.body)
		}
		if res := f.putManifest(t, "m", "1.0", a); res.status != 201 {
			t.Fatalf("version tag: %d", res.status)
		}
		if res := f.putManifest(t, "m", "1.0", b); res.status != 403 {
			t.Fatalf("an unguarded release tag stays immutable: %d %s", res.status, res.body)
		}
	})
}

func TestMetricsAndLog(t *testing.T) {
	reg := prometheus.NewRegistry()
	var log bytes.Buffer
	f := start(t, Config{}, WithRegisterer(reg), WithLogger(slog.New(slog.NewJSONHandler(&log, nil))))
	d := f.pushBlob(t, "m", []byte("hello"))
	f.do(t, "GET", "/v2/m/blobs/"+d.String(), nil)
	f.do(t, "GET", "/v2/m/blobs/"+digest.FromString("x").String(), nil)
	got := gather(t, reg)
	for series, want := range map[string]float64{
		`airlock_registry_requests_total{code="404",method="GET",route="blob"}`:     1,
		`airlock_registry_requests_total{code="201",method="POST",route="uploads"}`: 1,
		`airlock_registry_request_duration_seconds{method="GET",route="blob"}`:      2,
		`airlock_registry_bytes_received_total{}`:                                   5,
		`airlock_registry_upload_duration_seconds{}`:                                1,
		`airlock_registry_storage_bytes{}`:                                          5,
		`airlock_registry_storage_blobs{}`:                                          1,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v (have %v)", series, got[series], want, got)
		}
	}
	if got[`airlock_registry_bytes_sent_total{}`] < 5 {
		t.Errorf("bytes sent = %v", got[`airlock_registry_bytes_sent_total{}`])
	}
	if !strings.Contains(log.String(), `"route":"blob"`) || strings.Contains(log.String(), "/v2/") || !strings.Contains(log.String(), `"request_id"`) {
		t.Fatalf("access log: %s", log.String())
	}
}

// gather reads the registry as /metrics would: counter values and
// histogram sample counts by series.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, p := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", p.GetName(), p.GetValue()))
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			if h := m.GetHistogram(); h != nil {
				out[key] = float64(h.GetSampleCount())
			} else if g := m.GetGauge(); g != nil {
				out[key] = g.GetValue()
			} else {
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}
