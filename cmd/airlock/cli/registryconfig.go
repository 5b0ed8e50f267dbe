package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/airlock-dev/airlock/registry/auth"
	"gopkg.in/yaml.v3"
)

// registryConfig is the file behind `airlock registry serve --config`.
// Flags override its fields; the zero value serves on 127.0.0.1:5000 from
// ./airlock-registry with anonymous pull and push (a local, single-user
// registry, like docker-registry's default).
type registryConfig struct {
	Addr string `yaml:"addr"`
	Root string `yaml:"root"`
	TLS  struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	Auth *struct {
		Htpasswd      string      `yaml:"htpasswd"`
		AnonymousPull bool        `yaml:"anonymousPull"`
		TokenKeyFile  string      `yaml:"tokenKeyFile"`
		Rules         []auth.Rule `yaml:"rules"`
	} `yaml:"auth"`
	ProtectedTags []struct {
		Repos string `yaml:"repos"`
		Tags  string `yaml:"tags"`
	} `yaml:"protectedTags"`
	// Verdicts wires protected tags to the gate: a protected tag may
	// point only at a digest with a valid signed pass verdict for its
	// environment (the tag's name, or as Environments maps it), by one of
	// the Trust keys.
	Verdicts *struct {
		Trust        []string          `yaml:"trust"`
		Environments map[string]string `yaml:"environments"`
	} `yaml:"verdicts"`
	// MutableReleaseTags lets a tag of a ModelPack release move to another
	// digest; by default such tags are immutable.
	MutableReleaseTags bool `yaml:"mutableReleaseTags"`
	Log                struct {
		Format string `yaml:"format"` // text (default) or json
		Level  string `yaml:"level"`  // debug, info (default), warn, error
	} `yaml:"log"`
	// GC runs garbage collection inside the server every Interval (0: never;
	// `airlock registry gc --server` runs it on demand), deleting
	// unreferenced blobs older than Grace (0: one hour).
	GC struct {
		Interval time.Duration `yaml:"interval"`
		Grace    time.Duration `yaml:"grace"`
	} `yaml:"gc"`
}

// loadRegistryConfig reads a config file strictly: unknown keys are errors.
func loadRegistryConfig(path string) (*registryConfig, error) {
	cfg := &registryConfig{}
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading registry config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file is an empty config.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
