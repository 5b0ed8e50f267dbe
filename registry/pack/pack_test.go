package pack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// tree writes files (path → content) under a new temp dir.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const smallRelease = `apiVersion: airlock.dev/v1
kind: Release
metadata: {name: tiny, version: 0.1.0}
model: {path: model/}
tokenizer: {path: tok.json}
prompts: [{name: system, path: prompts/system.md}]
`

func smallTree(t *testing.T, release string) string {
	return tree(t, map[string]string{
		"airlock.yaml":          release,
		"model/weights.gguf":    "GGUF weights",
		"model/config.json":     "{}",
		"tok.json":              `{"vocab": {}}`,
		"prompts/system.md":     "Be brief.",
		"outside-the-release.x": "not named by the release file",
	})
}

func TestLoadListsFilesInLayerOrder(t *testing.T) {
	l, err := Load(smallTree(t, smallRelease), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.Entries {
		got = append(got, string(e.Role)+" "+e.Path+" "+e.MediaType)
	}
	want := []string{
		"model model/config.json " + registry.MediaTypeWeightConfigRaw,
		"model model/weights.gguf " + registry.MediaTypeWeightRaw,
		"tokenizer tok.json " + registry.MediaTypeWeightConfigRaw,
		"prompt prompts/system.md " + registry.MediaTypeWeightConfigRaw,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadErrors(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		rel   string
		want  string
	}{
		{"missing path", nil, strings.Replace(smallRelease, "tok.json", "tokenizer.json", 1),
			`airlock.yaml:5:13: tokenizer.path: "tokenizer.json" does not exist`},
		{"symlink out of the release", func(t *testing.T, dir string) {
			must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "link")))
		}, strings.Replace(smallRelease, "tok.json", "link", 1), `tokenizer.path: link is a symlink to ` + outside},
		{"symlink out inside a directory", func(t *testing.T, dir string) {
			must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "model", "sneaky.bin")))
		}, smallRelease, `model.path: model/sneaky.bin is a symlink to ` + outside},
		{"symlink through ..", func(t *testing.T, dir string) {
			must(t, os.Symlink(outside, filepath.Join(dir, "up")))
		}, strings.Replace(smallRelease, "tok.json", "up/secret", 1), `outside the release directory`},
		{"file in two parts", nil, strings.Replace(smallRelease, "tok.json", "model/config.json", 1),
			`tokenizer.path: model/config.json is already part of model.path`},
		{"release file as a part", nil, strings.Replace(smallRelease, "tok.json", "airlock.yaml", 1),
			`"airlock.yaml" is the release file itself`},
		{"empty directory", func(t *testing.T, dir string) {
			must(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))
		}, strings.Replace(smallRelease, "tok.json", "empty/", 1), `"empty" is an empty directory`},
		{"special file", func(t *testing.T, dir string) {
			must(t, syscall.Mkfifo(filepath.Join(dir, "model", "pipe"), 0o644))
		}, smallRelease, `model/pipe is not a regular file`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := smallTree(t, tc.rel)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			_, err := Load(dir, "")
			if err == nil {
				t.Fatal("Load accepted a bad release")
			}
			if !errors.Is(err, ErrInvalidRelease) {
				t.Errorf("not ErrInvalidRelease: %v", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Errorf("error\n  %s\nwant one line containing\n  %s", msg, tc.want)
			}
		})
	}
}

func TestLoadFollowsSymlinksInside(t *testing.T) {
	dir := smallTree(t, strings.Replace(smallRelease, "tok.json", "tok-link.json", 1))
	must(t, os.Symlink("tok.json", filepath.Join(dir, "tok-link.json")))
	l, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range l.Entries {
		found = found || (e.Path == "tok-link.json" && e.Size == int64(len(`{"vocab": {}}`)))
	}
	if !found {
		t.Fatalf("symlinked tokenizer not packed: %+v", l.Entries)
	}
}

func TestLoadMissingReleaseFile(t *testing.T) {
	_, err := Load(t.TempDir(), "")
	if !errors.Is(err, ErrInvalidRelease) || !strings.Contains(err.Error(), "no release file here") {
		t.Fatalf("got %v", err)
	}
}

func packDir(t *testing.T, dir string, opts Options) *Artifact {
	t.Helper()
	l, err := Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Pack(context.Background(), l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestReproducible packs the same release written twice, in different
// directories, in a different order, with different times and
// permissions, and a reformatted release file: the digest must not move.
func TestReproducible(t *testing.T) {
	a := smallTree(t, smallRelease)
	reformatted := "# comments and layout do not matter\nkind: Release\napiVersion: airlock.dev/v1\nprompts:\n  - path: prompts/system.md\n    name: system\nmetadata:\n  version: 0.1.0\n  name: tiny\ntokenizer:\n  path: ./tok.json\nmodel:\n  path: model\n"
	b := t.TempDir()
	// Written in the opposite order, read-only, with other times.
	files := []string{"prompts/system.md", "tok.json", "model/weights.gguf", "model/config.json"}
	for _, p := range files {
		data, err := os.ReadFile(filepath.Join(a, p))
		must(t, err)
		full := filepath.Join(b, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o700))
		must(t, os.WriteFile(full, data, 0o400))
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		must(t, os.Chtimes(full, old, old))
	}
	must(t, os.WriteFile(filepath.Join(b, "airlock.yaml"), []byte(reformatted), 0o600))

	da, db := packDir(t, a, Options{}).Descriptor().Digest, packDir(t, b, Options{Workers: 1}).Descriptor().Digest
	if da != db {
		t.Fatalf("same release packed to %s and %s", da, db)
	}

	// SOURCE_DATE_EPOCH stamps a time: a different digest, the same on every run.
	ts := time.Unix(1700000000, 0)
	dc := packDir(t, a, Options{Created: &ts})
	if dc.Descriptor().Digest == da || packDir(t, b, Options{Created: &ts}).Descriptor().Digest != dc.Descriptor().Digest {
		t.Fatal("creation time not applied reproducibly")
	}
	if got := dc.Manifest.Annotations[ocispec.AnnotationCreated]; got != "2023-11-14T22:13:20Z" {
		t.Errorf("created annotation %q", got)
	}

	// Content does matter.
	must(t, os.WriteFile(filepath.Join(b, "tok.json"), []byte(`{"vocab": {"x": 1}}`), 0o600))
	if packDir(t, b, Options{}).Descriptor().Digest == da {
		t.Fatal("changed tokenizer, same digest")
	}
}

// TestManifestGolden pins the wire format of the example release: media
// types, annotations, config fields and layer order.
func TestManifestGolden(t *testing.T) {
	a := packDir(t, filepath.Join("..", "..", "examples", "support-bot"), Options{})
	var m bytes.Buffer
	must(t, json.Indent(&m, a.ManifestJSON, "", "  "))
	m.WriteString("\n")
	var c bytes.Buffer
	must(t, json.Indent(&c, a.Config, "", "  "))
	c.WriteString("\n")
	golden(t, "support-bot.manifest.json", m.Bytes())
	golden(t, "support-bot.config.json", c.Bytes())

	if a.Manifest.ArtifactType != "application/vnd.cncf.model.manifest.v1+json" ||
		a.Manifest.Config.MediaType != "application/vnd.cncf.model.config.v1+json" {
		t.Errorf("not a ModelPack manifest: %s / %s", a.Manifest.ArtifactType, a.Manifest.Config.MediaType)
	}
	var cfg struct {
		ModelFS struct {
			Type    string          `json:"type"`
			DiffIDs []digest.Digest `json:"diffIds"`
		} `json:"modelfs"`
	}
	must(t, json.Unmarshal(a.Config, &cfg))
	for i, l := range a.Manifest.Layers {
		for _, k := range []string{"org.cncf.model.filepath", "org.opencontainers.image.title", "dev.airlock.role"} {
			if l.Annotations[k] == "" {
				t.Errorf("layer %d lacks %s", i, k)
			}
		}
		if cfg.ModelFS.DiffIDs[i] != l.Digest {
			t.Errorf("diffIds[%d] = %s, layer digest %s", i, cfg.ModelFS.DiffIDs[i], l.Digest)
		}
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "support-bot", l.Annotations["org.cncf.model.filepath"]))
		must(t, err)
		if digest.FromBytes(data) != l.Digest {
			t.Errorf("layer %d digest is not the file's sha256", i)
		}
	}
	var rel Release
	must(t, json.Unmarshal([]byte(a.Manifest.Annotations["dev.airlock.release"]), &rel))
	if rel.Metadata.Name != "support-bot" || len(rel.DataScopes) != 1 {
		t.Errorf("release annotation: %+v", rel)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; if the change is intended, run go test ./registry/pack -update\ngot:\n%s", path, got)
	}
}

func TestHashCache(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "w")
	must(t, os.WriteFile(f, []byte("one"), 0o644))
	c := &HashCache{Dir: filepath.Join(dir, "cache")}
	if _, ok := c.Get(f); ok {
		t.Fatal("hit on an empty cache")
	}
	c.Put(f, digest.FromString("one"))
	if d, ok := c.Get(f); !ok || d != digest.FromString("one") {
		t.Fatalf("miss after put: %s %v", d, ok)
	}
	// Rewrite with the same size: the change time moves, the entry is stale.
	time.Sleep(10 * time.Millisecond) // the only way to move ctime; not a wait for state
	must(t, os.WriteFile(f, []byte("two"), 0o644))
	if _, ok := c.Get(f); ok {
		t.Fatal("stale digest served for a changed file")
	}
	var nilCache *HashCache
	nilCache.Put(f, "x")
	if _, ok := nilCache.Get(f); ok {
		t.Fatal("nil cache hit")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
