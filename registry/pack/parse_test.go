package pack

import (
	"errors"
	"strings"
	"testing"
)

const validRelease = `apiVersion: airlock.dev/v1
kind: Release
metadata: {name: support-bot, version: 1.4.0, owner: team-support, license: Apache-2.0}
model: {path: model/, format: gguf, architecture: llama, paramSize: 1.1B, precision: q8_0}
tokenizer: {path: tokenizer/}
prompts: [{name: system, path: prompts/system.md}]
safety: {path: safety.yaml}
evals: [{name: golden, path: evals/golden.yaml}]
dataScopes: [support-tickets]
baseModel: registry.example/base/llama@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`

func TestParseValid(t *testing.T) {
	p, err := Parse([]byte(validRelease), "airlock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Name != "support-bot" || p.Model.Format != "gguf" || p.Prompts[0].Name != "system" {
		t.Fatalf("parsed %+v", p.Release)
	}
}

// TestParseErrors checks that each kind of bad release file gets one error
// line that names the file, the line, the field and the problem.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(string) string
		want string // substring of the single error line
	}{
		{"unknown key", func(s string) string { return s + "modle: {path: x}\n" }, `airlock.yaml:11:1: modle: unknown field; did you mean "model"?`},
		{"unknown nested key", func(s string) string {
			return strings.Replace(s, "owner: team-support", "ownr: team-support", 1)
		}, `airlock.yaml:3:47: metadata.ownr: unknown field; did you mean "owner"?`},
		{"duplicate key", func(s string) string { return s + "safety: {path: other.yaml}\n" }, `airlock.yaml:11:1: safety: duplicate key (first at line 7)`},
		{"duplicate prompt name", func(s string) string {
			return strings.Replace(s, "prompts: [{name: system, path: prompts/system.md}]", "prompts: [{name: system, path: a.md}, {name: system, path: b.md}]", 1)
		}, `prompts[1].name: duplicate name "system" (also prompts[0])`},
		{"missing version", func(s string) string { return strings.Replace(s, " version: 1.4.0,", "", 1) }, `metadata.version: required`},
		{"two-part version", func(s string) string { return strings.Replace(s, "version: 1.4.0", `version: "1.4"`, 1) }, `metadata.version: "1.4" is not a semantic version`},
		{"v-prefixed version", func(s string) string { return strings.Replace(s, "version: 1.4.0", "version: v1.4.0", 1) }, `drop the leading v: "1.4.0"`},
		{"float version", func(s string) string { return strings.Replace(s, "version: 1.4.0", "version: 1.4", 1) }, `metadata.version: 1.4 is read by YAML as a float; quote it`},
		{"word version", func(s string) string { return strings.Replace(s, "version: 1.4.0", "version: latest", 1) }, `"latest" is not a semantic version`},
		{"bad apiVersion", func(s string) string { return strings.Replace(s, "airlock.dev/v1", "airlock.dev/v2", 1) }, `airlock.yaml:1:1: apiVersion: "airlock.dev/v2" is not supported`},
		{"bad name", func(s string) string { return strings.Replace(s, "name: support-bot", "name: Support_Bot!", 1) }, `metadata.name: "Support_Bot!"`},
		{"absolute path", func(s string) string { return strings.Replace(s, "path: safety.yaml", "path: /etc/passwd", 1) }, `airlock.yaml:7:10: safety.path: "/etc/passwd" is absolute`},
		{"escaping path", func(s string) string {
			return strings.Replace(s, "path: tokenizer/", "path: tokenizer/../../secrets", 1)
		}, `tokenizer.path: "tokenizer/../../secrets" escapes the release directory`},
		{"missing model", func(s string) string {
			return strings.Replace(s, "model: {path: model/, format: gguf, architecture: llama, paramSize: 1.1B, precision: q8_0}\n", "", 1)
		}, `model: required`},
		{"missing path", func(s string) string { return strings.Replace(s, "safety: {path: safety.yaml}", "safety: {}", 1) }, `safety.path: required`},
		{"bad format", func(s string) string { return strings.Replace(s, "format: gguf", "format: GGUF", 1) }, `model.format: "GGUF" is not a known format`},
		{"bad paramSize", func(s string) string { return strings.Replace(s, "paramSize: 1.1B", "paramSize: 1.1 billion", 1) }, `model.paramSize: "1.1 billion"`},
		{"unpinned baseModel", func(s string) string {
			return strings.Replace(s, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ":latest", 1)
		}, `baseModel: "registry.example/base/llama:latest" has no digest`},
		{"wrong type", func(s string) string {
			return strings.Replace(s, "dataScopes: [support-tickets]", "dataScopes: support-tickets", 1)
		}, `dataScopes: expected a list; got the value "support-tickets"`},
		{"duplicate scope", func(s string) string {
			return strings.Replace(s, "[support-tickets]", "[support-tickets, support-tickets]", 1)
		}, `dataScopes[1]: duplicate data scope`},
		{"syntax error", func(s string) string { return s + "model: [unclosed\n" }, `did not find expected`},
		{"two documents", func(s string) string { return s + "---\nkind: Release\n" }, `more than one YAML document`},
		{"empty", func(string) string { return "" }, `airlock.yaml: release file is empty`},
		{"not a mapping", func(string) string { return "- a\n- b\n" }, `expected a mapping`},
		{"alias", func(s string) string {
			return strings.Replace(strings.Replace(s, "tokenizer: {path: tokenizer/}", "tokenizer: &t {path: tokenizer/}", 1), "safety: {path: safety.yaml}", "safety: *t", 1)
		}, `safety: YAML aliases are not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit(validRelease)), "airlock.yaml")
			if err == nil {
				t.Fatal("Parse accepted a bad release file")
			}
			if !errors.Is(err, ErrInvalidRelease) {
				t.Errorf("error does not wrap ErrInvalidRelease: %v", err)
			}
			msg := err.Error()
			if strings.Count(msg, "\n") != 0 {
				t.Errorf("want one error line, got:\n%s", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, tc.want)
			}
			if !strings.HasPrefix(msg, "airlock.yaml") {
				t.Errorf("error does not name the file: %s", msg)
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	bad := strings.Replace(strings.Replace(validRelease, "version: 1.4.0", "version: latest", 1), "path: safety.yaml", "path: ../x", 1)
	_, err := Parse([]byte(bad), "airlock.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	if ve.Problems[0].Line > ve.Problems[1].Line {
		t.Errorf("problems not in file order: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validRelease))
	f.Add([]byte("apiVersion: airlock.dev/v1\nkind: Release\nmetadata: {name: a, version: 0.0.1}\nmodel: {path: m}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("metadata: {name: 1e3, version: [1]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err == nil {
			if p.Model == nil || p.Metadata.Version == "" {
				t.Fatalf("accepted a release without model or version: %q", data)
			}
			return
		}
		if !errors.Is(err, ErrInvalidRelease) {
			t.Fatalf("error does not wrap ErrInvalidRelease: %v", err)
		}
	})
}
