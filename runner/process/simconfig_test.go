package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/runner/sim"
	"gopkg.in/yaml.v3"
)

// writeConfig writes cfg as a simulator version file for the re-executed
// test server.
func writeConfig(t *testing.T, cfg sim.Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readConfig reads it back in the server, through the simulator's own
// loader; no file means a plain version.
func readConfig(path string) (sim.Config, error) {
	if path == "" {
		return sim.Config{Model: "process-test", Default: "ok"}, nil
	}
	return sim.Load(path)
}
