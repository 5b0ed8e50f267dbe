package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
)

const example = "../../../examples/support-bot"

// airlock runs the CLI in-process and returns exit code, stdout and stderr.
func airlock(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func isolate(t *testing.T) {
	t.Setenv(EnvCacheDir, t.TempDir())
	t.Setenv(EnvDockerConfig, t.TempDir())
	t.Setenv(EnvSourceDateEpoch, "")
}

const goodRelease = `apiVersion: airlock.dev/v1
kind: Release
metadata: {name: tiny, version: 0.1.0}
model: {path: model.gguf}
prompts: [{name: system, path: system.md}]
`

// TestBadReleaseFiles checks the promise to a user with a broken
// airlock.yaml: exit code 2 and one line naming the file, the field and
// the problem.
func TestBadReleaseFiles(t *testing.T) {
	isolate(t)
	outside := filepath.Join(t.TempDir(), "secret.bin")
	if err := os.WriteFile(outside, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, release, want string
		setup               func(dir string) error
	}{
		{"unknown key", goodRelease + "tokeniser: {path: t.json}\n", `airlock.yaml:6:1: tokeniser: unknown field; did you mean "tokenizer"?`, nil},
		{"missing path", strings.Replace(goodRelease, "system.md", "prompts/missing.md", 1), `airlock.yaml:5:26: prompts[0].path: "prompts/missing.md" does not exist in the release directory`, nil},
		{"escaping path", strings.Replace(goodRelease, "system.md", "../system.md", 1), `prompts[0].path: "../system.md" escapes the release directory`, nil},
		{"symlink out", strings.Replace(goodRelease, "system.md", "link.md", 1), `prompts[0].path: link.md is a symlink to ` + outside + `, outside the release directory`,
			func(dir string) error { return os.Symlink(outside, filepath.Join(dir, "link.md")) }},
		{"duplicate role", goodRelease + "model: {path: system.md}\n", `airlock.yaml:6:1: model: duplicate key (first at line 4)`, nil},
		{"duplicate prompt", strings.Replace(goodRelease, "[{name: system, path: system.md}]", "[{name: system, path: system.md}, {name: system, path: model.gguf}]", 1),
			`prompts[1].name: duplicate name "system" (also prompts[0])`, nil},
		{"file in two parts", strings.Replace(goodRelease, "path: system.md", "path: model.gguf", 1), `prompts[0].path: model.gguf is already part of model.path`, nil},
		{"bad version", strings.Replace(goodRelease, "0.1.0", "0.1", 1), `metadata.version: 0.1 is read by YAML as a float; quote it ("0.1") to keep it as written`, nil},
		{"bad version string", strings.Replace(goodRelease, "0.1.0", "one", 1), `metadata.version: "one" is not a semantic version`, nil},
		{"not yaml", "apiVersion: [\n", `airlock.yaml:`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range map[string]string{"airlock.yaml": tc.release, "model.gguf": "GGUF", "system.md": "Hi."} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				if err := tc.setup(dir); err != nil {
					t.Fatal(err)
				}
			}
			for _, cmd := range [][]string{{"pack", dir}, {"push", dir, "localhost:1/never/contacted:1"}} {
				code, stdout, stderr := airlock(t, cmd...)
				if code != ExitError {
					t.Errorf("%s: exit %d, want %d", cmd[0], code, ExitError)
				}
				if stdout != "" {
					t.Errorf("%s printed to stdout: %q", cmd[0], stdout)
				}
				if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
					t.Errorf("%s: stderr\n%s\nwant one line containing\n%s", cmd[0], stderr, tc.want)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	isolate(t)
	for name, args := range map[string][]string{
		"unknown command":  {"shove"},
		"unknown flag":     {"pack", "--shiny"},
		"missing ref":      {"push", example},
		"ref without host": {"push", example, "support-bot:1"},
		"bad role":         {"pull", "localhost:1/a:1", "--role", "weights"},
		"pull no tag":      {"pull", "localhost:1/a"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := airlock(t, args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, ExitUsage, stderr)
			}
		})
	}
	if code, _, stderr := airlock(t, "pull", "localhost:1/a:1"); code != ExitError || !strings.Contains(stderr, "localhost:1") {
		t.Errorf("unreachable registry: exit %d, %s", code, stderr)
	}
	t.Setenv(EnvSourceDateEpoch, "yesterday")
	if code, _, stderr := airlock(t, "pack", example); code != ExitError || !strings.Contains(stderr, "SOURCE_DATE_EPOCH") {
		t.Errorf("bad SOURCE_DATE_EPOCH: exit %d, %s", code, stderr)
	}
}

func TestPackPrintsDigestLast(t *testing.T) {
	isolate(t)
	code, out, _ := airlock(t, "pack", example)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.HasPrefix(lines[len(lines)-1], "sha256:") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	_, js, _ := airlock(t, "pack", example, "--json")
	var v struct{ Digest string }
	if err := json.Unmarshal([]byte(js), &v); err != nil || v.Digest != lines[len(lines)-1] {
		t.Fatalf("--json digest %q (%v), plain %q", v.Digest, err, lines[len(lines)-1])
	}
	t.Setenv(EnvSourceDateEpoch, "1700000000")
	_, stamped, _ := airlock(t, "pack", example)
	if strings.TrimSpace(stamped) == lines[len(lines)-1] {
		t.Error("SOURCE_DATE_EPOCH did not change the digest")
	}
	layout := filepath.Join(t.TempDir(), "layout")
	if code, out, _ := airlock(t, "pack", example, "--oci-layout", layout); code != 0 || strings.TrimSpace(out) != strings.TrimSpace(stamped) {
		t.Fatalf("pack --oci-layout: exit %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(layout, "oci-layout")); err != nil {
		t.Fatal(err)
	}
}

// TestCLIFlow is the README's quickstart against a real registry: push,
// inspect, partial pull, full pull, push from a layout.
func TestCLIFlow(t *testing.T) {
	isolate(t)
	srv := regtest.Airlock(t, server.Config{})
	ref := srv.Host + "/acme/support-bot"

	code, out, stderr := airlock(t, "push", example, ref)
	if code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	pushed := strings.TrimSpace(out)
	if !strings.HasPrefix(pushed, ref+":1.4.0@sha256:") {
		t.Fatalf("push printed %q; want the version tag and digest", pushed)
	}
	if !strings.Contains(stderr, "pushed 8 blobs") {
		t.Errorf("push summary: %s", stderr)
	}
	if code, _, stderr := airlock(t, "push", example, ref); code != 0 || !strings.Contains(stderr, "skipped 8") {
		t.Errorf("second push did not skip: %s", stderr)
	}

	code, out, stderr = airlock(t, "inspect", ref+":1.4.0")
	if code != 0 {
		t.Fatalf("inspect: %s", stderr)
	}
	for _, want := range []string{"support-bot 1.4.0", "prompt:system", "prompts/system.md", "safety", "application/vnd.cncf.model.weight.v1.raw", "dev.airlock.release", "Referrers:"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	_, js, _ := airlock(t, "inspect", ref+":1.4.0", "--json")
	var in struct {
		Manifest struct{ Layers []any }
		Release  struct{ Metadata struct{ Name string } }
	}
	if err := json.Unmarshal([]byte(js), &in); err != nil || len(in.Manifest.Layers) != 8 || in.Release.Metadata.Name != "support-bot" {
		t.Errorf("inspect --json: %v %+v", err, in)
	}

	part := t.TempDir()
	if code, _, stderr := airlock(t, "pull", pushed, "-o", part, "--role", "prompt,safety"); code != 0 {
		t.Fatalf("partial pull: %s", stderr)
	}
	got, _ := filepath.Glob(filepath.Join(part, "*"))
	if len(got) != 2 {
		t.Errorf("partial pull wrote %v", got)
	}

	full := t.TempDir()
	if code, _, stderr := airlock(t, "pull", ref+":1.4.0", "-o", full); code != 0 {
		t.Fatalf("pull: %s", stderr)
	}
	code, out, _ = airlock(t, "pack", full)
	if code != 0 || !strings.HasSuffix(pushed, strings.TrimSpace(out)) {
		t.Errorf("pulled directory packs to %q, pushed %q", out, pushed)
	}

	layout := filepath.Join(t.TempDir(), "layout")
	airlock(t, "pack", example, "--oci-layout", layout)
	code, out, stderr = airlock(t, "push", layout+":1.4.0", srv.Host+"/acme/copy:1.4.0")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), pushed[strings.Index(pushed, "@"):]) {
		t.Errorf("push from layout: exit %d %q %s", code, out, stderr)
	}
}
