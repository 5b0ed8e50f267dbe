// Package admission is the Kubernetes validating webhook (DESIGN.md §8):
// it finds the model releases an object would run, requires each to be
// pinned by digest, and admits it only with a signed pass verdict of the
// gate for the namespace's environment. The heavy work (evidence, evals,
// policies) happened at the gate; admission checks one verdict, from a
// cache when it can.
package admission

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/rego"
	"github.com/airlock-dev/airlock/registry"
)

// Modes.
const (
	Enforce = "enforce" // a failed check denies
	Warn    = "warn"    // a failed check is a warning; the object is admitted
)

// Defaults.
const (
	DefaultCacheTTL        = 10 * time.Minute
	DefaultCacheSize       = 4096
	DefaultTimeout         = 8 * time.Second
	DefaultMaxRequestBytes = 3 << 20 // the API server's own limit on a request body
)

// Config is admission.yaml. Unknown fields are errors.
type Config struct {
	// Releases choose which references are model releases: any entry
	// that matches. A reference matching none is not checked.
	Releases []ReleaseMatch `yaml:"releases"`
	// Trust lists the public keys (cosign PEM files, relative to the
	// config file) whose verdicts count.
	Trust []string `yaml:"trust"`
	// Environments map namespaces to environments, first match wins.
	Environments []NamespaceEnvironment `yaml:"environments"`
	// Mode is the default mode: enforce (default) or warn.
	Mode string `yaml:"mode"`
	// Modes override Mode by namespace, first match wins.
	Modes []NamespaceMode `yaml:"modes"`
	// Revoked digests may not run anywhere, whatever their verdicts say
	// (the kill-switch).
	Revoked []string `yaml:"revoked"`
	// RegistryUnavailable is the answer when a verdict cannot be read
	// (registry down, cold cache): deny (default, like failurePolicy
	// Fail) or allow (like Ignore). Either is given within Timeout.
	RegistryUnavailable string      `yaml:"registry_unavailable"`
	Cache               CacheConfig `yaml:"cache"`
	// Timeout bounds one request's checks (default 8s): keep it under the
	// webhook configuration's timeoutSeconds.
	Timeout gate.Duration `yaml:"timeout"`
	// MaxRequestBytes bounds a request body (default 3 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// PlainHTTP names registries spoken to over plain HTTP (loopback
	// registries always are).
	PlainHTTP []string `yaml:"plain_http"`
	// BreakGlass accepts signed, expiring exceptions (none without it).
	BreakGlass BreakGlassConfig `yaml:"break_glass"`
	// Policies are Rego policies of the gate's input schema, decided for
	// each release at stage admission (the built-in ones, about evidence,
	// are the gate's and are not loaded here).
	Policies PolicyConfig `yaml:"policies"`

	// Dir is the config file's directory; TrustPEM the trusted keys read,
	// BreakGlassPEM the break-glass keys.
	Dir           string   `yaml:"-"`
	TrustPEM      [][]byte `yaml:"-"`
	BreakGlassPEM [][]byte `yaml:"-"`
}

// PolicyConfig loads admission policies.
type PolicyConfig struct {
	// Dirs hold .rego files (package airlock.gate.NAME), relative to the
	// config file.
	Dirs []string `yaml:"dirs"`
	// Warn demotes the named policies' denies to warnings.
	Warn []string `yaml:"warn"`
	// Timeout bounds one decision (default 2s).
	Timeout gate.Duration `yaml:"timeout"`
}

// BreakGlassConfig names the keys that may sign exceptions.
type BreakGlassConfig struct {
	// Trust lists their public keys (PEM files, relative to the config).
	Trust []string `yaml:"trust"`
	// MaxTTL bounds an exception's life from issue to expiry (default 24h).
	MaxTTL gate.Duration `yaml:"max_ttl"`
}

// ReleaseMatch selects references by registry and repository, and
// optionally by what the registry says the artifact is.
type ReleaseMatch struct {
	// Registry is host[:port], exactly.
	Registry string `yaml:"registry"`
	// Repository is a path.Match pattern ("models/*"); empty matches all.
	Repository string `yaml:"repository"`
	// ArtifactType, when set, also requires the manifest's artifactType
	// (or, without one, its config's media type) to be this, read from
	// the registry once per reference and cached
	// (application/vnd.cncf.model.manifest.v1+json for ModelPack).
	ArtifactType string `yaml:"artifact_type"`
}

// NamespaceEnvironment maps a namespace pattern to an environment.
type NamespaceEnvironment struct {
	Namespace   string `yaml:"namespace"`
	Environment string `yaml:"environment"`
}

// NamespaceMode sets the mode of a namespace pattern.
type NamespaceMode struct {
	Namespace string `yaml:"namespace"`
	Mode      string `yaml:"mode"`
}

// CacheConfig sizes the verdict cache.
type CacheConfig struct {
	// TTL is how long a verified pass is trusted without reading the
	// registry again (default 10m; never past the verdict's expiry).
	TTL gate.Duration `yaml:"ttl"`
	// Size bounds the entries kept (default 4096).
	Size int `yaml:"size"`
}

// LoadConfig reads admission.yaml and the keys it trusts.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading admission config: %w", err)
	}
	c, err := ParseConfig(b, filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	read := func(what string, paths []string) ([][]byte, error) {
		var out [][]byte
		for _, k := range paths {
			pem, err := os.ReadFile(c.path(k))
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", file, what, err)
			}
			out = append(out, pem)
		}
		return out, nil
	}
	if c.TrustPEM, err = read("trust", c.Trust); err != nil {
		return nil, err
	}
	if c.BreakGlassPEM, err = read("break_glass.trust", c.BreakGlass.Trust); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseConfig parses admission.yaml and checks it; dir is where relative
// paths start. Keys are not read.
func ParseConfig(b []byte, dir string) (*Config, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty config: admission.yaml needs releases, trust and environments")
	}
	c := &Config{Dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Releases) == 0 {
		bad("releases: name at least one registry (and repository pattern) whose references are model releases")
	}
	for i, r := range c.Releases {
		if r.Registry == "" {
			bad("releases[%d]: registry is required", i)
		}
		if _, err := path.Match(r.Repository, ""); err != nil {
			bad("releases[%d]: repository %q is not a valid pattern: %v", i, r.Repository, err)
		}
	}
	if len(c.Trust) == 0 {
		bad("trust: name at least one public key that signs verdicts")
	}
	if len(c.Environments) == 0 {
		bad("environments: map at least one namespace pattern to an environment")
	}
	for i, e := range c.Environments {
		if _, err := path.Match(e.Namespace, ""); err != nil || e.Namespace == "" {
			bad("environments[%d]: namespace %q is not a pattern", i, e.Namespace)
		}
		if e.Environment == "" {
			bad("environments[%d]: environment is required", i)
		}
	}
	if c.Mode == "" {
		c.Mode = Enforce
	}
	if c.Mode != Enforce && c.Mode != Warn {
		bad("mode: %q is not enforce or warn", c.Mode)
	}
	for i, m := range c.Modes {
		if _, err := path.Match(m.Namespace, ""); err != nil || m.Namespace == "" {
			bad("modes[%d]: namespace %q is not a pattern", i, m.Namespace)
		}
		if m.Mode != Enforce && m.Mode != Warn {
			bad("modes[%d]: mode %q is not enforce or warn", i, m.Mode)
		}
	}
	for i, d := range c.Revoked {
		if _, err := digest.Parse(d); err != nil {
			bad("revoked[%d]: %q is not a digest: %v", i, d, err)
		}
	}
	switch c.RegistryUnavailable {
	case "":
		c.RegistryUnavailable = "deny"
	case "deny", "allow":
	default:
		bad("registry_unavailable: %q is not deny or allow", c.RegistryUnavailable)
	}
	if c.Cache.TTL.Duration == 0 {
		c.Cache.TTL.Duration = DefaultCacheTTL
	}
	if c.Cache.Size == 0 {
		c.Cache.Size = DefaultCacheSize
	}
	if c.Cache.Size < 0 {
		bad("cache.size: %d is negative", c.Cache.Size)
	}
	if c.Timeout.Duration == 0 {
		c.Timeout.Duration = DefaultTimeout
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.BreakGlass.MaxTTL.Duration == 0 {
		c.BreakGlass.MaxTTL.Duration = DefaultExceptionMaxTTL
	}
	if c.MaxRequestBytes < 0 {
		bad("max_request_bytes: %d is negative", c.MaxRequestBytes)
	}
	return c, errors.Join(errs...)
}

// Environment is the environment of a namespace, "" when none matches.
func (c *Config) Environment(namespace string) string {
	for _, e := range c.Environments {
		if ok, _ := path.Match(e.Namespace, namespace); ok {
			return e.Environment
		}
	}
	return ""
}

// ModeOf is a namespace's mode.
func (c *Config) ModeOf(namespace string) string {
	for _, m := range c.Modes {
		if ok, _ := path.Match(m.Namespace, namespace); ok {
			return m.Mode
		}
	}
	return c.Mode
}

// IsRelease reports whether a reference names a model release by
// registry and repository alone; artifactTypes lists the artifact types
// that would make it one after a registry lookup (entries with
// artifact_type that match the registry and repository).
func (c *Config) IsRelease(r registry.Ref) (release bool, artifactTypes []string) {
	for _, m := range c.Releases {
		if !strings.EqualFold(m.Registry, r.Registry) {
			continue
		}
		if ok, _ := path.Match(m.Repository, r.Repository); m.Repository != "" && !ok {
			continue
		}
		if m.ArtifactType == "" {
			return true, nil
		}
		artifactTypes = append(artifactTypes, m.ArtifactType)
	}
	return false, artifactTypes
}

// IsRevoked reports whether a digest is on the kill-switch list.
func (c *Config) IsRevoked(d string) bool { return slices.Contains(c.Revoked, d) }

// path resolves a path of the config against its directory.
func (c *Config) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Engine prepares the admission policies, nil when there are none.
func (c *Config) Engine(ctx context.Context) (*rego.Engine, error) {
	if len(c.Policies.Dirs) == 0 {
		return nil, nil
	}
	var ms []rego.Module
	for _, d := range c.Policies.Dirs {
		m, err := rego.LoadDir(c.path(d))
		if err != nil {
			return nil, fmt.Errorf("policies: %w", err)
		}
		ms = append(ms, m...)
	}
	e, err := rego.New(ctx, ms, rego.Options{Warn: c.Policies.Warn, Timeout: c.Policies.Timeout.Duration})
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	return e, nil
}

// Files are the files a config was read from: the config itself (file),
// its keys, and the policy files, for a watcher to see changes.
func (c *Config) Files(file string) []string {
	out := []string{file}
	for _, k := range c.Trust {
		out = append(out, c.path(k))
	}
	for _, k := range c.BreakGlass.Trust {
		out = append(out, c.path(k))
	}
	for _, d := range c.Policies.Dirs {
		d = c.path(d)
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasSuffix(p, ".rego") {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}
