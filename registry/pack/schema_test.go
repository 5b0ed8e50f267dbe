package pack

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("release.v1.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("release.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlToJSON turns a release file into the JSON value the schema checks.
func yamlToJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaAgreesWithParse checks the published schema against the parser:
// the examples pass both, and bad files that the schema can judge fail both.
func TestSchemaAgreesWithParse(t *testing.T) {
	s := compileSchema(t)
	examples, err := filepath.Glob(filepath.Join("..", "..", "examples", "*", "airlock.yaml"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, ex := range examples {
		data, err := os.ReadFile(ex)
		must(t, err)
		if err := s.Validate(yamlToJSON(t, data)); err != nil {
			t.Errorf("%s fails the schema: %v", ex, err)
		}
		if _, err := Parse(data, ex); err != nil {
			t.Errorf("%s fails Parse: %v", ex, err)
		}
	}
	if err := s.Validate(yamlToJSON(t, []byte(validRelease))); err != nil {
		t.Errorf("valid release fails the schema: %v", err)
	}
	bad := map[string]string{
		"unknown key":   validRelease + "modle: {path: x}\n",
		"bad version":   strings.Replace(validRelease, "version: 1.4.0", "version: latest", 1),
		"absolute path": strings.Replace(validRelease, "path: safety.yaml", "path: /etc/passwd", 1),
		"escaping path": strings.Replace(validRelease, "path: safety.yaml", "path: ../x", 1),
		"bad kind":      strings.Replace(validRelease, "kind: Release", "kind: Model", 1),
		"unpinned base": strings.Replace(validRelease, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ":latest", 1),
		"missing model": strings.Replace(validRelease, "model: {path: model/, format: gguf, architecture: llama, paramSize: 1.1B, precision: q8_0}\n", "", 1),
	}
	for name, doc := range bad {
		if s.Validate(yamlToJSON(t, []byte(doc))) == nil {
			t.Errorf("%s: the schema accepts it", name)
		}
		if _, err := Parse([]byte(doc), "airlock.yaml"); err == nil {
			t.Errorf("%s: Parse accepts it", name)
		}
	}
}
