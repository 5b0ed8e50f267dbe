package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const example = "../../examples/support-bot"

func newClient(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	opts.DockerConfig = filepath.Join(t.TempDir(), "config.json") // no credentials from the developer's machine
	c, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ref(t *testing.T, s string) registry.Ref {
	t.Helper()
	r, err := registry.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func load(t *testing.T, dir string) *pack.Loaded {
	t.Helper()
	l, err := pack.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// bigRelease writes a release whose weights file has size random bytes.
func bigRelease(t *testing.T, size int64) (dir string, weights []byte) {
	t.Helper()
	dir = t.TempDir()
	weights = make([]byte, size)
	if _, err := rand.Read(weights); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"airlock.yaml": []byte("apiVersion: airlock.dev/v1\nkind: Release\nmetadata: {name: big, version: 1.0.0}\n" +
			"model: {path: model}\nprompts: [{name: system, path: system.md}]\nsafety: {path: safety.yaml}\n"),
		"model/weights.safetensors": weights,
		"model/config.json":         []byte(`{"hidden": 8}`),
		"system.md":                 []byte("Be brief."),
		"safety.yaml":               []byte("refuse: [weapons]\n"),
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, weights
}

func packDigest(t *testing.T, dir string) digest.Digest {
	t.Helper()
	a, err := pack.Pack(context.Background(), load(t, dir), pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return a.Descriptor().Digest
}

// TestRoundTrip pushes the example, pulls it back, and packs the pulled
// directory: the digest must be the one pushed.
func TestRoundTrip(t *testing.T) {
	srv := regtest.Airlock(t, server.Config{})
	c := newClient(t, client.Options{})
	ctx := context.Background()
	r := ref(t, srv.Host+"/acme/support-bot:1.4.0")
	res, err := c.PushDir(ctx, load(t, example), r, client.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := packDigest(t, example); res.Descriptor.Digest != want {
		t.Fatalf("pushed %s, pack says %s", res.Descriptor.Digest, want)
	}
	if res.Uploaded != 8 || res.Skipped != 0 {
		t.Errorf("uploaded %d skipped %d, want 8 and 0", res.Uploaded, res.Skipped)
	}

	out := t.TempDir()
	pr, err := c.Pull(ctx, r, out, client.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Files) != 8 || pr.ReleaseFile == "" {
		t.Fatalf("pulled %d files, release file %q", len(pr.Files), pr.ReleaseFile)
	}
	for _, f := range pr.Files {
		a, _ := os.ReadFile(filepath.Join(example, f.Path))
		b, err := os.ReadFile(filepath.Join(out, f.Path))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs after the round trip (%v)", f.Path, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, client.PartialDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial directory left behind: %v", err)
	}
	if got := packDigest(t, out); got != res.Descriptor.Digest {
		t.Errorf("pulled directory packs to %s, pushed %s", got, res.Descriptor.Digest)
	}

	// A second pull finds everything in place and downloads nothing.
	pr, err = c.Pull(ctx, r, out, client.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Bytes != 0 {
		t.Errorf("second pull downloaded %d bytes", pr.Bytes)
	}
}

// TestPushSkipsWhatTheRegistryHas checks both push paths: small files are
// hashed first and skipped; large ones are streamed while hashed, and
// skipped on the next push once their digest is cached (or with HashFirst).
func TestPushSkipsWhatTheRegistryHas(t *testing.T) {
	srv := regtest.Airlock(t, server.Config{})
	c := newClient(t, client.Options{})
	ctx := context.Background()
	dir, weights := bigRelease(t, 20<<20) // above the streaming threshold
	r := ref(t, srv.Host+"/acme/big:1.0.0")
	cache := &pack.HashCache{Dir: t.TempDir()}

	first, err := c.PushDir(ctx, load(t, dir), r, client.PushOptions{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if first.Uploaded != 4 || first.Skipped != 0 {
		t.Fatalf("first push uploaded %d skipped %d", first.Uploaded, first.Skipped)
	}
	if first.Descriptor.Digest != packDigest(t, dir) {
		t.Fatal("streamed push and pack disagree on the digest")
	}
	if d, ok := cache.Get(filepath.Join(dir, "model/weights.safetensors")); !ok || d != digest.FromBytes(weights) {
		t.Fatalf("streamed upload did not cache the weights digest: %s %v", d, ok)
	}
	for name, opts := range map[string]client.PushOptions{
		"cached":     {Cache: cache},
		"hash-first": {HashFirst: true},
	} {
		again, err := c.PushDir(ctx, load(t, dir), r, opts)
		if err != nil {
			t.Fatal(err)
		}
		if again.Uploaded != 0 || again.Skipped != 4 || again.Descriptor.Digest != first.Descriptor.Digest {
			t.Errorf("%s: second push uploaded %d, skipped %d, digest %s", name, again.Uploaded, again.Skipped, again.Descriptor.Digest)
		}
	}

	// The blob in the registry is the file.
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := repo.Blobs().Fetch(ctx, ocispec.Descriptor{Digest: digest.FromBytes(weights), Size: int64(len(weights))})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, weights) {
		t.Fatal("registry holds different weights")
	}
}

// countingTransport records which blobs are fetched. It is a real transport
// with a tap, not a fake registry.
type countingTransport struct {
	mu    sync.Mutex
	blobs []string
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
		c.mu.Lock()
		c.blobs = append(c.blobs, req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:])
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestPartialPullDownloadsOnlySelectedLayers(t *testing.T) {
	srv := regtest.Airlock(t, server.Config{})
	ctx := context.Background()
	r := ref(t, srv.Host+"/acme/support-bot:1.4.0")
	_, err := newClient(t, client.Options{}).PushDir(ctx, load(t, example), r, client.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		opts  client.PullOptions
		paths []string
	}{
		{"role", client.PullOptions{Roles: []registry.Role{registry.RolePrompt, registry.RoleSafety}}, []string{"prompts/system.md", "safety.yaml"}},
		{"glob", client.PullOptions{Paths: []string{"tokenizer/*.json"}}, []string{"tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"}},
		{"directory", client.PullOptions{Paths: []string{"model"}}, []string{"model/config.json", "model/model.gguf"}},
		{"role and glob", client.PullOptions{Roles: []registry.Role{registry.RoleModel}, Paths: []string{"*/*.gguf"}}, []string{"model/model.gguf"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tap := &countingTransport{}
			c := newClient(t, client.Options{Transport: tap})
			out := t.TempDir()
			res, err := c.Pull(ctx, r, out, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range res.Files {
				got = append(got, f.Path)
			}
			if strings.Join(got, ",") != strings.Join(tc.paths, ",") {
				t.Fatalf("pulled %v, want %v", got, tc.paths)
			}
			// One blob GET for the config, one per selected layer.
			if len(tap.blobs) != len(tc.paths)+1 {
				t.Errorf("fetched %d blobs for %d files: %v", len(tap.blobs), len(tc.paths), tap.blobs)
			}
			if res.ReleaseFile != "" {
				t.Errorf("partial pull wrote %s", res.ReleaseFile)
			}
			entries, _ := os.ReadDir(out)
			if len(entries) != len(uniqueTop(tc.paths)) {
				t.Errorf("output holds %d entries, want %v", len(entries), uniqueTop(tc.paths))
			}
		})
	}
	_, err = newClient(t, client.Options{}).Pull(ctx, r, t.TempDir(), client.PullOptions{Paths: []string{"nothing/*"}})
	if err == nil || !strings.Contains(err.Error(), "nothing in") {
		t.Errorf("empty selection: %v", err)
	}
}

func uniqueTop(paths []string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		m[strings.SplitN(p, "/", 2)[0]] = true
	}
	return m
}

func TestInspectListsReferrers(t *testing.T) {
	srv := regtest.Airlock(t, server.Config{})
	c := newClient(t, client.Options{})
	ctx := context.Background()
	r := ref(t, srv.Host+"/acme/support-bot:1.4.0")
	res, err := c.PushDir(ctx, load(t, example), r, client.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := pushReferrer(t, c, r, res.Descriptor, "application/vnd.example.sbom+json")

	in, err := c.Inspect(ctx, ref(t, srv.Host+"/acme/support-bot:1.4.0"))
	if err != nil {
		t.Fatal(err)
	}
	if in.File == nil || in.File.Metadata.Name != "support-bot" || in.Config == nil || in.Config.Config.Format != "gguf" {
		t.Fatalf("release file %+v config %+v", in.File, in.Config)
	}
	if len(in.Referrers) != 1 || in.Referrers[0].Digest != want || in.Referrers[0].ArtifactType != "application/vnd.example.sbom+json" {
		t.Fatalf("referrers %+v (%s), want %s", in.Referrers, in.ReferrersError, want)
	}
}

// pushReferrer attaches a small manifest whose subject is desc and returns
// its digest.
func pushReferrer(t *testing.T, c *client.Client, r registry.Ref, subject ocispec.Descriptor, artifactType string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	empty := ocispec.DescriptorEmptyJSON
	if err := repo.Blobs().Push(ctx, empty, bytes.NewReader(empty.Data)); err != nil {
		t.Fatal(err)
	}
	layer := []byte(`{"bomFormat":"CycloneDX"}`)
	ld := ocispec.Descriptor{MediaType: "application/json", Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	if err := repo.Blobs().Push(ctx, ld, bytes.NewReader(layer)); err != nil {
		t.Fatal(err)
	}
	subject = ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Config: ocispec.Descriptor{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size},
		Layers: []ocispec.Descriptor{ld}, Subject: &subject}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := repo.Manifests().Push(ctx, md, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return md.Digest
}

func TestLayoutRoundTrip(t *testing.T) {
	srv := regtest.Airlock(t, server.Config{})
	c := newClient(t, client.Options{})
	ctx := context.Background()
	art, err := pack.Pack(ctx, load(t, example), pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	if _, err := client.WriteLayout(ctx, art, layout, "1.4.0"); err != nil {
		t.Fatal(err)
	}
	res, err := c.PushLayout(ctx, layout, "", ref(t, srv.Host+"/acme/from-layout:1.4.0"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.Digest != art.Descriptor().Digest {
		t.Fatalf("layout push gave %s, packed %s", res.Descriptor.Digest, art.Descriptor().Digest)
	}
}

func TestPullRejectsUnsafePaths(t *testing.T) {
	srv := regtest.Airlock(t, server.Config{})
	c := newClient(t, client.Options{})
	ctx := context.Background()
	r := ref(t, srv.Host+"/acme/evil:1")
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("overwrite me")
	ld := ocispec.Descriptor{MediaType: registry.MediaTypeWeightRaw, Digest: digest.FromBytes(data), Size: int64(len(data)),
		Annotations: map[string]string{registry.AnnotationFilepath: "../../etc/evil"}}
	must(t, repo.Blobs().Push(ctx, ld, bytes.NewReader(data)))
	empty := ocispec.DescriptorEmptyJSON
	must(t, repo.Blobs().Push(ctx, empty, bytes.NewReader(empty.Data)))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: registry.ArtifactTypeModel,
		Config: ocispec.Descriptor{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size}, Layers: []ocispec.Descriptor{ld}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	must(t, repo.Manifests().PushReference(ctx, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}, bytes.NewReader(b), "1"))
	out := t.TempDir()
	_, err = c.Pull(ctx, r, filepath.Join(out, "x"), client.PullOptions{})
	if err == nil || !strings.Contains(err.Error(), `unsafe path "../../etc/evil"`) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "etc")); err == nil {
		t.Fatal("wrote outside the output directory")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
