package sbom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/pack"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var example = filepath.Join("..", "..", "examples", "support-bot")

// packDir packs a release directory in memory, as airlock pack does.
func packDir(t testing.TB, dir string) *pack.Artifact {
	t.Helper()
	l, err := pack.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := pack.Pack(context.Background(), l, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tree writes files under a temporary directory.
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T, a *pack.Artifact, opts Options) (*cdx.BOM, []byte) {
	t.Helper()
	bom, err := Build(a.Descriptor(), a.Manifest, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Encode(&b, bom); err != nil {
		t.Fatal(err)
	}
	return bom, b.Bytes()
}

// cdxSchema compiles the CycloneDX 1.6 JSON schema from the cyclonedx-go
// module, which ships it (schema/), with the SPDX and JSF schemas it
// refers to. Nothing is copied into this repository.
func cdxSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-json", "github.com/CycloneDX/cyclonedx-go").Output()
	if err != nil {
		t.Fatalf("locating cyclonedx-go: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("cyclonedx-go is not in the module cache (%v); run go mod download", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for url, file := range map[string]string{
		SchemaURL: "bom-1.6.schema.json",
		"http://cyclonedx.org/schema/spdx.schema.json":     "spdx.schema.json",
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": "jsf-0.82.schemax.json", // so named in the module
	} {
		f, err := os.Open(filepath.Join(mod.Dir, "schema", file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile(SchemaURL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(s *jsonschema.Schema, doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// lineageRelease has every field the BOM maps: authors, source, base
// model, datasets with URL, digest and licenses, docs and code, a
// multi-file model and single-file tokenizer.
const lineageRelease = `apiVersion: airlock.dev/v1
kind: Release
metadata:
  name: tiny-bot
  version: 0.2.0-rc.1
  owner: team-ml
  license: Apache-2.0 OR MIT
  description: A <tiny> bot & friends.
  authors: ["Ada Lovelace <ada@example.com>", team-ml]
  sourceURL: https://git.example/ml/tiny-bot
  revision: 0a1b2c3
model: {path: model, format: safetensors, architecture: llama, family: llama3, paramSize: 8B, precision: bfloat16}
tokenizer: {path: tokenizer.json}
prompts: [{name: system, path: prompts/system.md}, {name: refusal, path: prompts/refusal.md}]
safety: {path: safety.yaml}
evals: [{name: golden, path: evals/golden.yaml}]
docs: [{path: README.md}]
code: [{path: serve.py}]
dataScopes: [support-tickets, billing]
datasets:
  - {name: tickets, url: "https://data.example/tickets", license: CC-BY-4.0, digest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
  - {name: chats, license: proprietary, url: "not a url", digest: "md5:abc"}
baseModel: registry.example/base/llama@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`

func lineageTree(t testing.TB) string {
	return tree(t, map[string]string{
		"airlock.yaml":            lineageRelease,
		"model/model.safetensors": "weights",
		"model/config.json":       `{"a": 1}`,
		"tokenizer.json":          `{"vocab": {}}`,
		"prompts/system.md":       "You are tiny.",
		"prompts/refusal.md":      "No.",
		"safety.yaml":             "blocked: []\n",
		"evals/golden.yaml":       "cases: []\n",
		"README.md":               "# tiny\n",
		"serve.py":                "print('hi')\n",
	})
}

func component(bom *cdx.BOM, ref string) *cdx.Component {
	for i, c := range *bom.Components {
		if c.BOMRef == ref {
			return &(*bom.Components)[i]
		}
	}
	return nil
}

func property(c *cdx.Component, name string) []string {
	var out []string
	if c.Properties != nil {
		for _, p := range *c.Properties {
			if p.Name == name {
				out = append(out, p.Value)
			}
		}
	}
	return out
}

// TestExampleGolden pins the BOM of the example release, and checks it
// against the CycloneDX 1.6 schema.
func TestExampleGolden(t *testing.T) {
	a := packDir(t, example)
	_, got := build(t, a, Options{Repository: "localhost:5000/support-bot", ToolVersion: "test"})
	path := filepath.Join("testdata", "support-bot.cdx.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; if the change is intended, run go test ./registry/sbom -update\ngot:\n%s", path, got)
	}
	if err := validate(cdxSchema(t), got); err != nil {
		t.Errorf("the example's BOM fails the CycloneDX 1.6 schema: %v", err)
	}
	if !bytes.HasSuffix(got, []byte("}\n")) || !bytes.Contains(got, []byte("\n  \"specVersion\": \"1.6\",\n")) {
		t.Errorf("not indented JSON with a trailing newline, or not spec 1.6:\n%.200s", got)
	}
}

// TestExampleContents checks what a consumer of the example's BOM relies
// on: every file's SHA-256 is its layer digest, the model is a
// machine-learning-model, the subject is the manifest digest.
func TestExampleContents(t *testing.T) {
	a := packDir(t, example)
	subject := a.Descriptor()
	bom, _ := build(t, a, Options{})

	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != "CycloneDX" || bom.Version != 1 {
		t.Errorf("header: %v %s %d", bom.SpecVersion, bom.BOMFormat, bom.Version)
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(bom.SerialNumber) ||
		bom.SerialNumber != SerialNumber(subject.Digest) {
		t.Errorf("serial number %q", bom.SerialNumber)
	}
	if bom.Metadata.Timestamp != "" {
		t.Errorf("a timestamp without Options.Timestamp: %s", bom.Metadata.Timestamp)
	}
	rc := bom.Metadata.Component
	wantPURL := "pkg:oci/support-bot@sha256%3A" + subject.Digest.Encoded()
	if rc.Name != "support-bot" || rc.Version != "1.4.0" || rc.PackageURL != wantPURL || rc.BOMRef != wantPURL ||
		rc.Supplier == nil || rc.Supplier.Name != "team-support" {
		t.Errorf("release component: %+v", rc)
	}
	if rc.Hashes == nil || (*rc.Hashes)[0] != (cdx.Hash{Algorithm: cdx.HashAlgoSHA256, Value: subject.Digest.Encoded()}) {
		t.Errorf("release hash is not the manifest digest: %+v", rc.Hashes)
	}
	if rc.Licenses == nil || (*rc.Licenses)[0].License == nil || (*rc.Licenses)[0].License.ID != "Apache-2.0" {
		t.Errorf("release license: %+v", rc.Licenses)
	}
	if got := property(rc, PropDataScope); len(got) != 1 || got[0] != "support-tickets" {
		t.Errorf("data scopes: %v", got)
	}

	// Every layer is described once, by its path, with its digest.
	seen := map[string]digest.Digest{}
	var walk func(cs []cdx.Component)
	walk = func(cs []cdx.Component) {
		for _, c := range cs {
			if c.Hashes != nil {
				p := c.Name
				if v := property(&c, PropPath); len(v) == 1 {
					p = v[0]
				}
				if _, dup := seen[p]; dup {
					t.Errorf("%s described twice", p)
				}
				seen[p] = digest.NewDigestFromEncoded(digest.SHA256, (*c.Hashes)[0].Value)
			}
			if c.Components != nil {
				walk(*c.Components)
			}
		}
	}
	walk(*bom.Components)
	for _, l := range a.Manifest.Layers {
		p := l.Annotations[registry.AnnotationFilepath]
		if seen[p] != l.Digest {
			t.Errorf("layer %s: BOM says %q, manifest %s", p, seen[p], l.Digest)
		}
	}
	if len(seen) != len(a.Manifest.Layers) {
		t.Errorf("%d hashed components for %d layers", len(seen), len(a.Manifest.Layers))
	}

	model := component(bom, RefModel)
	if model == nil || model.Type != cdx.ComponentTypeMachineLearningModel || model.ModelCard == nil {
		t.Fatalf("model component: %+v", model)
	}
	mp := model.ModelCard.ModelParameters
	if mp.ArchitectureFamily != "llama" || mp.Datasets == nil || (*mp.Datasets)[0].Ref != "dataset:support-tickets-2026q3" {
		t.Errorf("model parameters: %+v", mp)
	}
	if model.Components == nil || len(*model.Components) != 2 {
		t.Errorf("model files: %+v", model.Components)
	}
	for name, want := range map[string]string{PropFormat: "gguf", PropParamSize: "1.1B", PropPrecision: "q8_0", PropRole: "model"} {
		if got := property(model, name); len(got) != 1 || got[0] != want {
			t.Errorf("model %s = %v, want %s", name, got, want)
		}
	}
	for _, ref := range []string{"tokenizer", "prompt:system", "safety", "eval:golden", "doc:README.md"} {
		c := component(bom, ref)
		if c == nil || c.Type != cdx.ComponentTypeData || len(property(c, PropRole)) != 1 {
			t.Errorf("part %s: %+v", ref, c)
		}
	}
	ds := component(bom, "dataset:support-tickets-2026q3")
	if ds == nil || ds.Type != cdx.ComponentTypeData || ds.Licenses == nil || (*ds.Licenses)[0].License.Name != "proprietary" {
		t.Errorf("dataset: %+v", ds)
	}
	deps := *bom.Dependencies
	if deps[0].Ref != rc.BOMRef || deps[0].Dependencies == nil || len(*deps[0].Dependencies) != 6 {
		t.Errorf("release dependencies: %+v", deps[0])
	}
	if len(deps) != 1+len(*bom.Components) {
		t.Errorf("%d dependency entries for %d components", len(deps), len(*bom.Components))
	}
}

// TestDeterministic: the same release gives the same bytes, from two
// packs in two directories; options that must not matter do not.
func TestDeterministic(t *testing.T) {
	lower, upper := 0.81, 0.93
	opts := Options{Metrics: []Metric{
		{Type: "pass_rate", Value: "0.87", Slice: "golden", Lower: &lower, Upper: &upper},
		{Type: "accuracy", Value: "0.9"},
	}}
	_, one := build(t, packDir(t, lineageTree(t)), opts)
	opts.Metrics[0], opts.Metrics[1] = opts.Metrics[1], opts.Metrics[0]
	_, two := build(t, packDir(t, lineageTree(t)), opts)
	if !bytes.Equal(one, two) {
		t.Fatalf("two builds differ:\n%s\n---\n%s", one, two)
	}
	ts := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	opts.Timestamp = &ts
	bom, three := build(t, packDir(t, lineageTree(t)), opts)
	if bytes.Equal(one, three) || bom.Metadata.Timestamp != "2026-03-04T04:06:07Z" {
		t.Errorf("timestamp %q", bom.Metadata.Timestamp)
	}
}

// TestLineage checks the fields the example does not have: base model,
// dataset URLs and digests, authors, expressions, metrics, code.
func TestLineage(t *testing.T) {
	a := packDir(t, lineageTree(t))
	lower, upper := 0.81, 0.93
	bom, doc := build(t, a, Options{Repository: "registry.example:5000/ml/tiny-bot", Metrics: []Metric{
		{Type: "pass_rate", Value: "0.87", Slice: "golden", Lower: &lower, Upper: &upper},
		{Type: "accuracy", Value: "0.9"},
	}})
	if err := validate(cdxSchema(t), doc); err != nil {
		t.Fatalf("schema: %v\n%s", err, doc)
	}
	rc := bom.Metadata.Component
	want := "pkg:oci/tiny-bot@sha256%3A" + a.Descriptor().Digest.Encoded() + "?repository_url=registry.example:5000/ml/tiny-bot"
	if rc.PackageURL != want {
		t.Errorf("purl %s, want %s", rc.PackageURL, want)
	}
	if l := *rc.Licenses; len(l) != 1 || l[0].Expression != "Apache-2.0 OR MIT" {
		t.Errorf("expression license: %+v", l)
	}
	if au := *rc.Authors; len(au) != 2 || au[0].Email != "ada@example.com" || au[0].Name != "Ada Lovelace" || au[1].Name != "team-ml" {
		t.Errorf("authors: %+v", au)
	}
	if rc.ExternalReferences == nil || (*rc.ExternalReferences)[0].Type != cdx.ERTypeVCS {
		t.Errorf("source: %+v", rc.ExternalReferences)
	}
	if got := property(rc, PropDataScope); strings.Join(got, ",") != "support-tickets,billing" {
		t.Errorf("data scopes %v", got)
	}
	if !bytes.Contains(doc, []byte(`"A <tiny> bot & friends."`)) {
		t.Error("description HTML-escaped or missing")
	}

	model := component(bom, RefModel)
	mp := model.ModelCard.ModelParameters
	if mp.ArchitectureFamily != "llama" || mp.ModelArchitecture != "llama3" || len(*mp.Datasets) != 2 {
		t.Errorf("model parameters %+v", mp)
	}
	anc := *model.Pedigree.Ancestors
	const baseDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if len(anc) != 1 || anc[0].Type != cdx.ComponentTypeMachineLearningModel || anc[0].Name != "llama" ||
		anc[0].PackageURL != "pkg:oci/llama@sha256%3A"+baseDigest+"?repository_url=registry.example/base/llama" ||
		(*anc[0].Hashes)[0].Value != baseDigest {
		t.Errorf("ancestor %+v", anc)
	}
	pm := *model.ModelCard.QuantitativeAnalysis.PerformanceMetrics
	if len(pm) != 2 || pm[0].Type != "accuracy" || pm[1].ConfidenceInterval == nil ||
		pm[1].ConfidenceInterval.LowerBound != "0.81" || pm[1].ConfidenceInterval.UpperBound != "0.93" {
		t.Errorf("metrics %+v", pm)
	}

	tickets := component(bom, "dataset:tickets")
	if (*tickets.Hashes)[0].Value != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" ||
		(*tickets.Licenses)[0].License.ID != "CC-BY-4.0" || (*tickets.ExternalReferences)[0].URL != "https://data.example/tickets" {
		t.Errorf("dataset tickets %+v", tickets)
	}
	chats := component(bom, "dataset:chats")
	if chats.Hashes != nil || chats.ExternalReferences != nil ||
		strings.Join(property(chats, PropDigest), "") != "md5:abc" || strings.Join(property(chats, PropURL), "") != "not a url" {
		t.Errorf("dataset chats: unusable digest and URL should be kept as properties: %+v", chats)
	}

	// Single-file parts carry their hash; the tokenizer is one file.
	tok := component(bom, "tokenizer")
	if tok.Hashes == nil || tok.Components != nil {
		t.Errorf("tokenizer %+v", tok)
	}
	if c := component(bom, "code:serve.py"); c == nil || (*c.Data)[0].Type != cdx.ComponentDataTypeSourceCode {
		t.Errorf("code part %+v", c)
	}
	if c := component(bom, "prompt:refusal"); c == nil || c.Name != "refusal" {
		t.Errorf("prompt part %+v", c)
	}
}

// TestRoundTrip: cyclonedx-go reads back what was written, unchanged.
func TestRoundTrip(t *testing.T) {
	_, doc := build(t, packDir(t, lineageTree(t)), Options{})
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(doc), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := Encode(&again, &bom); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, again.Bytes()) {
		t.Errorf("decode+encode changed the BOM:\n%s\n---\n%s", doc, again.Bytes())
	}
}

// TestSchemaRejects proves the schema check can fail: broken variants of
// a valid BOM are refused.
func TestSchemaRejects(t *testing.T) {
	s := cdxSchema(t)
	_, doc := build(t, packDir(t, example), Options{})
	if err := validate(s, doc); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"unknown component type": func(m map[string]any) { comp(m, 0)["type"] = "model" },
		"short hash": func(m map[string]any) {
			comp(m, 1)["hashes"] = []any{map[string]any{"alg": "SHA-256", "content": "abc"}}
		},
		"bad serial":   func(m map[string]any) { m["serialNumber"] = "42" },
		"no bomFormat": func(m map[string]any) { delete(m, "bomFormat") },
		"unknown SPDX id": func(m map[string]any) {
			m["metadata"].(map[string]any)["component"].(map[string]any)["licenses"] = []any{map[string]any{"license": map[string]any{"id": "Not-A-License"}}}
		},
		"model card field": func(m map[string]any) {
			comp(m, 0)["modelCard"].(map[string]any)["modelParameters"].(map[string]any)["depth"] = 3
		},
	} {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(doc, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if validate(s, b) == nil {
				t.Error("the schema accepts it")
			}
		})
	}
}

func comp(m map[string]any, i int) map[string]any {
	return m["components"].([]any)[i].(map[string]any)
}

// TestCommonLicensesAreSPDX checks the license list against the SPDX ids
// in the schema cyclonedx-go ships, and the mapping of each kind.
func TestCommonLicensesAreSPDX(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/CycloneDX/cyclonedx-go").Output()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "schema", "spdx.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spdx struct{ Enum []string }
	if err := json.Unmarshal(data, &spdx); err != nil || len(spdx.Enum) < 100 {
		t.Fatalf("spdx schema: %v", err)
	}
	known := map[string]bool{}
	for _, id := range spdx.Enum {
		known[id] = true
	}
	for _, id := range commonLicenses() {
		if !known[id] {
			t.Errorf("%s is not an SPDX license id", id)
		}
	}

	for in, want := range map[string]string{
		"Apache-2.0":                      `[{"license":{"id":"Apache-2.0","acknowledgement":"declared"}}]`,
		"mit":                             `[{"license":{"id":"MIT","acknowledgement":"declared"}}]`,
		"Apache-2.0 OR MIT":               `[{"expression":"Apache-2.0 OR MIT","acknowledgement":"declared"}]`,
		"(MIT AND BSD-3-Clause)":          `[{"expression":"(MIT AND BSD-3-Clause)","acknowledgement":"declared"}]`,
		"GPL-2.0+ WITH GCC-exception-2.0": `[{"expression":"GPL-2.0+ WITH GCC-exception-2.0","acknowledgement":"declared"}]`,
		"LicenseRef-acme":                 `[{"expression":"LicenseRef-acme","acknowledgement":"declared"}]`,
		"proprietary":                     `[{"license":{"name":"proprietary","acknowledgement":"declared"}}]`,
		"Llama 3 Community License":       `[{"license":{"name":"Llama 3 Community License","acknowledgement":"declared"}}]`,
		"BSD-4-Clause":                    `[{"license":{"name":"BSD-4-Clause","acknowledgement":"declared"}}]`,
	} {
		got, err := json.Marshal(licenses(in))
		if err != nil || string(got) != want {
			t.Errorf("licenses(%q) = %s, want %s", in, got, want)
		}
	}
	if licenses(" ") != nil {
		t.Error("a blank license is written")
	}
}

func TestNotARelease(t *testing.T) {
	a := packDir(t, example)
	subject := a.Descriptor()
	image := a.Manifest
	image.ArtifactType = ""
	image.Config.MediaType = ocispec.MediaTypeImageConfig
	noFile := a.Manifest
	noFile.Annotations = map[string]string{}
	badFile := a.Manifest
	badFile.Annotations = map[string]string{registry.AnnotationRelease: "{"}
	for name, m := range map[string]ocispec.Manifest{"image": image, "no release file": noFile, "bad release file": badFile} {
		if _, err := Build(subject, m, nil, Options{}); !errors.Is(err, registry.ErrNotRelease) {
			t.Errorf("%s: %v, want ErrNotRelease", name, err)
		}
	}
	subject.Digest = "sha256:nope"
	if _, err := Build(subject, a.Manifest, nil, Options{}); err == nil {
		t.Error("a malformed digest was accepted")
	}
}

// TestStrayLayers: layers the release file does not name (a manifest
// edited by hand) are still listed, and duplicate paths get distinct refs.
func TestStrayLayers(t *testing.T) {
	a := packDir(t, example)
	m := a.Manifest
	extra := ocispec.Descriptor{
		MediaType:   registry.MediaTypeWeightRaw,
		Digest:      digest.FromString("x"),
		Size:        1,
		Annotations: map[string]string{registry.AnnotationFilepath: "extra.bin"},
	}
	m.Layers = append(append([]ocispec.Descriptor(nil), m.Layers...), extra, extra)
	bom, err := Build(a.Descriptor(), m, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if component(bom, "file:extra.bin") == nil || component(bom, "file:extra.bin~2") == nil {
		t.Errorf("stray layers missing or refs not unique")
	}
	deps := *(*bom.Dependencies)[0].Dependencies
	if deps[len(deps)-1] != "file:extra.bin~2" {
		t.Errorf("release dependencies %v", deps)
	}
}

func TestPURLAndSerial(t *testing.T) {
	d := digest.Digest("sha256:244fd47e07d1004f0aed9c244fd47e07d1004f0aed9c244fd47e07d1004f0a")
	for _, tc := range []struct{ name, repo, want string }{
		{"Debian", "", "pkg:oci/debian@sha256%3A" + d.Encoded()},
		{"x", "ghcr.io/debian", "pkg:oci/debian@sha256%3A" + d.Encoded() + "?repository_url=ghcr.io/debian"},
		{"x", "[::1]:5000/a/b", "pkg:oci/b@sha256%3A" + d.Encoded() + "?repository_url=%5B::1%5D:5000/a/b"},
	} {
		if got := PURL(tc.name, tc.repo, d); got != tc.want {
			t.Errorf("PURL(%q, %q) = %s, want %s", tc.name, tc.repo, got, tc.want)
		}
	}
	// Computed independently: Python's
	// uuid.uuid5(uuid.NAMESPACE_URL, "https://airlock.dev/sbom/" + d).
	if got, want := SerialNumber(d), "urn:uuid:36f34f62-b023-596b-b9b3-04ccd8106290"; got != want {
		t.Errorf("serial %s, want %s", got, want)
	}
	if SerialNumber(d) == SerialNumber(digest.FromString("other")) {
		t.Error("two releases, one serial number")
	}
}

// FuzzBuild feeds release files, as they arrive in a manifest annotation
// from any registry, to Build: it must not panic, and whatever it accepts
// must encode to a BOM the CycloneDX 1.6 schema accepts, with unique
// bom-refs. The fields fuzzed are those copied into the BOM as text.
func FuzzBuild(f *testing.F) {
	a := packDir(f, example)
	s := cdxSchema(f)
	f.Add("Apache-2.0", "Ada <ada@example.com>", "https://git.example/x", "tickets", "https://data.example/t",
		"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "registry.example/base/llama@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "system", "prompts/system.md")
	f.Add("(MIT OR x", "\"q\" <a@b>", "http://h/%41", "", "x:y", "sha512:00", "h/r@sha256:zz", "", ".")
	f.Add("GPL-2.0+ WITH x", "\"a b\"@example.com", "https://ü.example/ä?q=1#f", "a/b", "https://[::1]:80/", "sha256:", "[::1]:5000/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "x", "x")
	f.Add("", "<@x>", "mailto:a@b", "\x00", "file:///etc/passwd", "sha384:"+strings.Repeat("a", 96), "", "", "")
	f.Fuzz(func(t *testing.T, license, author, sourceURL, dataset, datasetURL, datasetDigest, base, prompt, promptPath string) {
		var rel pack.Release
		if err := json.Unmarshal([]byte(a.Manifest.Annotations[registry.AnnotationRelease]), &rel); err != nil {
			t.Fatal(err)
		}
		rel.Metadata.License = license
		rel.Metadata.Authors = []string{author}
		rel.Metadata.SourceURL = sourceURL
		rel.Datasets = append(rel.Datasets, pack.Dataset{Name: dataset, URL: datasetURL, License: license, Digest: datasetDigest})
		rel.BaseModel = base
		rel.Prompts = append(rel.Prompts, pack.Named{Name: prompt, Path: promptPath})
		rel.Docs = append(rel.Docs, pack.PathPart{Path: promptPath})
		bom, err := Build(a.Descriptor(), a.Manifest, &rel, Options{Metrics: []Metric{{Type: prompt, Value: dataset, Slice: author}}})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := Encode(&b, bom); err != nil {
			t.Fatal(err)
		}
		if err := validate(s, b.Bytes()); err != nil {
			t.Fatalf("schema: %v\n%s", err, b.Bytes())
		}
		refs := map[string]bool{bom.Metadata.Component.BOMRef: true}
		var walk func([]cdx.Component)
		walk = func(cs []cdx.Component) {
			for _, c := range cs {
				if refs[c.BOMRef] {
					t.Fatalf("bom-ref %q twice", c.BOMRef)
				}
				refs[c.BOMRef] = true
				if c.Components != nil {
					walk(*c.Components)
				}
			}
		}
		walk(*bom.Components)
	})
}
