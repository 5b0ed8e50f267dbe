package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegistryConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "registry.yaml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := loadRegistryConfig(write("addr: 127.0.0.1:5001\ngc: {interval: 24h, grace: 90m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:5001" || cfg.GC.Interval != 24*time.Hour || cfg.GC.Grace != 90*time.Minute {
		t.Fatalf("config: %+v", cfg)
	}
	if _, err := loadRegistryConfig(write("gc: {intervall: 24h}\n")); err == nil || !strings.Contains(err.Error(), "intervall") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := loadRegistryConfig(write("gc: {interval: daily}\n")); err == nil {
		t.Fatal("a non-duration interval was accepted")
	}
}
