package cli

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
)

// promptfoo finds the promptfoo that .ci/install-tools.sh installs into
// .tools/promptfoo, pinned by evals/testdata/promptfoo. Without it the test
// is skipped, unless AIRLOCK_REQUIRE_INTEROP=1 (make test) makes it fail.
func promptfoo(t *testing.T) string {
	t.Helper()
	missing := func(format string, a ...any) {
		t.Helper()
		if os.Getenv(regtest.RequireInteropEnv) == "1" {
			t.Fatalf(format+" (%s=1; run make tools)", append(a, regtest.RequireInteropEnv)...)
		}
		t.Skipf(format+"; make tools installs it", a...)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("no node on PATH: %v", err)
	}
	root, err := regtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".tools", "promptfoo")
	var pinned, installed struct {
		Version      string
		Dependencies map[string]string
	}
	b, err := os.ReadFile(filepath.Join(root, "evals", "testdata", "promptfoo", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pinned); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "node_modules", "promptfoo", "package.json"))
	if err != nil {
		missing("promptfoo is not installed in %s", dir)
	}
	if err := json.Unmarshal(b, &installed); err != nil {
		t.Fatal(err)
	}
	if want := pinned.Dependencies["promptfoo"]; installed.Version != want {
		missing("promptfoo %s is installed in %s, evals/testdata/promptfoo pins %s", installed.Version, dir, want)
	}
	return filepath.Join(dir, "node_modules", ".bin", "promptfoo")
}

// TestPromptfooInterop: the real promptfoo evaluates the simulator's good
// and regressed versions on the demo suite written as a promptfoo config,
// twice per test (--repeat 2); airlock eval imports both result files and
// finds the paired loss and the items that flipped, with the repeats as
// samples and promptfoo's errors as failures.
func TestPromptfooInterop(t *testing.T) {
	bin := promptfoo(t)
	isolate(t)
	dir := t.TempDir()
	cfg, err := os.ReadFile("../../../evals/testdata/promptfoo/promptfooconfig.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(version string) string {
		url, _ := simServer(t, version)
		c := filepath.Join(dir, version+".yaml")
		os.WriteFile(c, []byte(strings.ReplaceAll(string(cfg), "BASE_URL", url)), 0o644)
		out := filepath.Join(dir, version+".json")
		cmd := exec.Command(bin, "eval", "-c", c, "-o", out, "--no-cache", "--repeat", "2", "--max-concurrency", "4")
		cmd.Env = append(os.Environ(), "PROMPTFOO_CONFIG_DIR="+filepath.Join(dir, "promptfoo-"+version), "PROMPTFOO_DISABLE_TELEMETRY=1",
			"PROMPTFOO_DISABLE_UPDATE=1", "PROMPTFOO_CACHE_PATH="+filepath.Join(dir, "cache"), "NO_COLOR=1")
		b, err := cmd.CombinedOutput()
		// promptfoo exits 100 when a test fails.
		var xe *exec.ExitError
		if failedTests := errors.As(err, &xe) && xe.ExitCode() == 100; err != nil && !failedTests {
			t.Fatalf("promptfoo eval (%s): %v\n%s", version, err, b)
		}
		return out
	}
	good, bad := run("good"), run("regressed")

	report := filepath.Join(dir, "r.json")
	code, _, errs := airlock(t, "eval", "--import", "promptfoo:"+bad, "--baseline-import", "promptfoo:"+good, "--margin", "0.05", "-o", report)
	if code != ExitDeny {
		t.Fatalf("imported regressed against imported good: exit %d, want 1\n%s", code, errs)
	}
	r := readEvalReport(t, report)
	if r.Imported != "promptfoo" || r.Metrics.Items != 12 || r.Metrics.Samples != 24 || r.Baseline.Metrics.PassRate.Value != 1 {
		t.Errorf("imported %q: %d items, %d samples, baseline pass rate %v", r.Imported, r.Metrics.Items, r.Metrics.Samples, r.Baseline.Metrics.PassRate.Value)
	}
	// The eight items the regressed version gets wrong (see
	// runner/sim/versions/regressed.yaml), whatever its 2% of server errors
	// did to the others.
	got := strings.Join(r.Baseline.Paired.Regressed, ",")
	for _, id := range []string{"capital-au", "capital-fr", "injection", "json-person", "multiply", "reset-password", "summarise", "weapon"} {
		if !strings.Contains(got, id) {
			t.Errorf("regressed items %s lack %s", got, id)
		}
	}
	for _, s := range r.Samples {
		if s.ID == "capital-fr" && (s.Pass || !strings.Contains(s.Output, "Lyon")) {
			t.Errorf("capital-fr sample %+v", s)
		}
	}

	// Imported evidence about a release can be signed and attached to it.
	srv := regtest.Airlock(t, server.Config{})
	ref := srv.Host + "/bot:1.4.0"
	if code, _, errs := airlock(t, "push", example, srv.Host+"/bot"); code != ExitOK {
		t.Fatal(errs)
	}
	t.Setenv(EnvPassword, "pw")
	key := filepath.Join(dir, "k")
	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", key); code != ExitOK {
		t.Fatal(errs)
	}
	code, _, errs = airlock(t, "eval", ref, "--import", "promptfoo:"+good, "--attach", "--key", key+".key", "-o", report)
	if code != ExitOK || !strings.Contains(errs, "attached the eval attestation to sha256:") {
		t.Fatalf("imported and attached: %d %s", code, errs)
	}
	if r := readEvalReport(t, report); r.Release == nil || !strings.HasPrefix(r.Release.Digest, "sha256:") {
		t.Errorf("release %+v", r.Release)
	}
}
