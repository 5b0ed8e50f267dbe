package regtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireInteropEnv is the environment variable that turns a missing
// external program from a skipped test into a failed one. CI sets it to 1
// after running .ci/install-tools.sh so that interop tests cannot quietly
// stop running.
const RequireInteropEnv = "AIRLOCK_REQUIRE_INTEROP"

// installHint tells a person how to get the external programs; every skip
// and failure about a missing program carries it.
const installHint = "run .ci/install-tools.sh to install it"

// modulePath identifies Airlock's go.mod when looking for the repository
// root, so that a nested module's go.mod is not mistaken for it.
const modulePath = "github.com/airlock-dev/airlock"

// ErrToolNotFound is returned (wrapped) by FindTool when a program is in
// neither the repository's .tools/bin nor PATH, so callers can tell "not
// installed" from other failures.
var ErrToolNotFound = errors.New("tool not found")

// Tool returns the absolute path of the external program name (crane,
// regctl, skopeo, docker-registry, ...). If it is missing the test is
// skipped, or fails when AIRLOCK_REQUIRE_INTEROP=1.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := FindTool(name)
	if err != nil {
		unavailable(t, err)
	}
	return path
}

// FindTool returns the absolute path of the external program name. It looks
// first in .tools/bin at the root of the Airlock repository containing the
// working directory, where .ci/install-tools.sh puts pinned versions, then
// in PATH, then in /usr/bin (where Debian installs docker-registry and
// skopeo) in case PATH has been narrowed. It is the non-testing form of Tool,
// for benchmark programs and demos.
func FindTool(name string) (string, error) {
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", name)
		if isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	if p := filepath.Join("/usr/bin", name); isExecutable(p) {
		return p, nil
	}
	return "", fmt.Errorf("finding %s: %w in .tools/bin or PATH; %s", name, ErrToolNotFound, installHint)
}

// RepoRoot returns the directory of the Airlock module's go.mod, found by
// walking up from the working directory. Tests run in their package's
// directory, so this finds the repository from any package.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for {
		if declaresAirlock(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("finding repository root: no go.mod for %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// declaresAirlock reports whether the go.mod at path is Airlock's.
func declaresAirlock(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// unavailable skips t because an external program is missing, or fails it
// when the environment demands that interop tests run.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(RequireInteropEnv) == "1" {
		t.Fatalf("%v (%s=1, so this is a failure, not a skip)", err, RequireInteropEnv)
	}
	t.Skip(err)
}
