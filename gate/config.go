package gate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is gate.yaml: what an environment requires of a release, and how
// to produce missing evidence. Its zero values are the documented
// defaults; see docs/gate.md.
type Config struct {
	// Environment is the environment decided for (prod, staging, …).
	Environment string `yaml:"environment"`
	// Trust lists the public keys whose signatures and attestations count.
	Trust []string `yaml:"trust"`
	// Baseline is the release a candidate would replace: a reference,
	// "none", or empty for REPO:ENVIRONMENT when that tag exists.
	Baseline string `yaml:"baseline"`
	// Evidence says whether signed evidence already on the release may be
	// reused (default yes) and how old it may be.
	Evidence EvidenceConfig `yaml:"evidence"`
	// Engine holds the engine flags given to every eval and bench job the
	// gate runs for the candidate (--endpoint URL, or --cmd TEMPLATE, …).
	Engine []string `yaml:"engine"`
	// BaselineEngine holds the flags that let an eval job run the baseline
	// too (--baseline-endpoint URL or --baseline-cmd TEMPLATE); without
	// them a paired eval uses the baseline's signed eval attestation.
	BaselineEngine []string `yaml:"baseline_engine"`
	// Evals are the eval jobs: one per suite.
	Evals []EvalJob `yaml:"evals"`
	// Bench is the benchmark job, run when benchmark evidence is needed.
	Bench *BenchJob `yaml:"bench"`
	SLO   SLO       `yaml:"slo"`
	// SLOFile is a slo-rules.yaml file read into SLO (fields set in slo
	// win).
	SLOFile   string     `yaml:"slo_file"`
	Rules     Rules      `yaml:"rules"`
	Approvals []Approval `yaml:"approvals"`
	// ApprovalsFile is a YAML list of approvals, added to Approvals.
	ApprovalsFile string         `yaml:"approvals_file"`
	Policies      PoliciesConfig `yaml:"policies"`
	Verdict       VerdictConfig  `yaml:"verdict"`

	dir string // the config file's directory: relative paths start here
}

// EvidenceConfig is gate.yaml's evidence section.
type EvidenceConfig struct {
	// Reuse allows signed evidence found on the release (default true).
	Reuse *bool `yaml:"reuse"`
	// MaxAge is how old evidence may be (default 168h); it sets
	// rules.max_evidence_age_hours.
	MaxAge Duration `yaml:"max_age"`
}

// EvalJob is one eval the gate can run: airlock eval with the suite, the
// engine flags and Args.
type EvalJob struct {
	Suite string `yaml:"suite"`
	// Name is the suite's name in evidence (default: NAME of builtin:NAME
	// or release:NAME; required for a suite file).
	Name string   `yaml:"name"`
	Args []string `yaml:"args"`
	// Compare runs the paired comparison against the baseline.
	Compare bool `yaml:"compare"`
}

// BenchJob is the benchmark the gate can run: airlock bench with the
// engine flags and Args.
type BenchJob struct {
	Args []string `yaml:"args"`
}

// PoliciesConfig says which policies decide and how.
type PoliciesConfig struct {
	// Dirs are directories of user policies (*.rego; *_test.rego are
	// tests), in packages airlock.gate.NAME.
	Dirs []string `yaml:"dirs"`
	// Bundle is an OCI reference to an OPA bundle of user policies.
	Bundle string `yaml:"bundle"`
	// Disable turns built-in policies off by name.
	Disable []string `yaml:"disable"`
	// Warn demotes policies' denies to warnings, by name.
	Warn []string `yaml:"warn"`
	// DryRun decides and reports, but never fails and signs nothing.
	DryRun bool `yaml:"dry_run"`
	// Timeout bounds one evaluation (default 2s); a policy that runs
	// longer denies.
	Timeout Duration `yaml:"timeout"`
}

// VerdictConfig is gate.yaml's verdict section.
type VerdictConfig struct {
	// TTL is how long a verdict is valid (default 168h).
	TTL Duration `yaml:"ttl"`
}

// Duration is a time.Duration written as "90s", "168h".
type Duration struct{ time.Duration }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 90s or 168h", n.Line, s)
	}
	d.Duration = v
	return nil
}

// Defaults.
const (
	DefaultMaxAge  = 168 * time.Hour
	DefaultTTL     = 168 * time.Hour
	DefaultTimeout = 2 * time.Second
)

// ParseConfig reads gate.yaml; unknown fields are errors. dir is where
// relative paths in it start (the file's directory).
func ParseConfig(b []byte, dir string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); errors.Is(err, io.EOF) {
		return nil, errors.New("gate config: the file is empty; it needs at least environment: (see docs/gate.md)")
	} else if err != nil {
		return nil, fmt.Errorf("gate config: %w", err)
	}
	c.dir = dir
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("gate config: %w", err)
	}
	return &c, nil
}

func (c *Config) check() error {
	var errs []error
	if c.Environment == "" {
		errs = append(errs, errors.New("environment: required (prod, staging, …)"))
	}
	names := map[string]bool{}
	for i, j := range c.Evals {
		if j.Suite == "" {
			errs = append(errs, fmt.Errorf("evals[%d]: suite: required (FILE, release:NAME or builtin:NAME)", i))
			continue
		}
		n := j.SuiteName()
		if n == "" {
			errs = append(errs, fmt.Errorf("evals[%d]: name: required for the suite file %s", i, j.Suite))
		}
		if names[n] {
			errs = append(errs, fmt.Errorf("evals[%d]: a second job for suite %q", i, n))
		}
		names[n] = true
		for _, a := range j.Args {
			if reserved(a) {
				errs = append(errs, fmt.Errorf("evals[%d]: args: %s is set by the gate", i, a))
			}
		}
	}
	if c.Bench != nil {
		for _, a := range c.Bench.Args {
			if reserved(a) {
				errs = append(errs, fmt.Errorf("bench: args: %s is set by the gate", a))
			}
		}
	}
	for i, a := range c.Approvals {
		if err := a.check(); err != nil {
			errs = append(errs, fmt.Errorf("approvals[%d]: %w", i, err))
		}
	}
	for _, n := range c.Policies.Warn {
		if n == "" {
			errs = append(errs, errors.New("policies: warn: an empty name"))
		}
	}
	return errors.Join(errs...)
}

// reserved reports flags the gate sets on the jobs it runs.
func reserved(a string) bool {
	f, _, _ := strings.Cut(a, "=")
	switch f {
	case "--suite", "-o", "--output", "--attach", "--key", "--baseline", "--dir":
		return true
	}
	return false
}

func (a Approval) check() error {
	switch {
	case strings.TrimSpace(a.By) == "":
		return errors.New("by: required (who approved)")
	case len(a.For) == 0:
		return errors.New("for: required (the parts approved: safety, tokenizer, …)")
	case a.Expires.IsZero():
		return errors.New("expires: required (an RFC 3339 time)")
	}
	return nil
}

// SuiteName is the name the job's evidence carries.
func (j EvalJob) SuiteName() string {
	if j.Name != "" {
		return j.Name
	}
	for _, p := range []string{"builtin:", "release:"} {
		if n, ok := strings.CutPrefix(j.Suite, p); ok {
			return n
		}
	}
	return ""
}

// Path resolves a path in the config against the config's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// ReuseEvidence says whether signed evidence on the release may be used.
func (c *Config) ReuseEvidence() bool { return c.Evidence.Reuse == nil || *c.Evidence.Reuse }

// MaxAge is how old evidence may be.
func (c *Config) MaxAge() time.Duration {
	if c.Evidence.MaxAge.Duration > 0 {
		return c.Evidence.MaxAge.Duration
	}
	return DefaultMaxAge
}

// TTL is how long a verdict is valid.
func (c *Config) TTL() time.Duration {
	if c.Verdict.TTL.Duration > 0 {
		return c.Verdict.TTL.Duration
	}
	return DefaultTTL
}

// Timeout bounds one policy evaluation.
func (c *Config) Timeout() time.Duration {
	if c.Policies.Timeout.Duration > 0 {
		return c.Policies.Timeout.Duration
	}
	return DefaultTimeout
}

// EffectiveRules are the rules with their defaults filled: the evidence
// age from the evidence section, and the required suites from the eval
// jobs when the rules name none.
func (c *Config) EffectiveRules() Rules {
	r := c.Rules
	if r.MaxEvidenceAgeHours == 0 {
		r.MaxEvidenceAgeHours = c.MaxAge().Hours()
	}
	if len(r.RequiredSuites) == 0 {
		for _, j := range c.Evals {
			r.RequiredSuites = append(r.RequiredSuites, j.SuiteName())
		}
	}
	if r.RequiredSuites == nil {
		r.RequiredSuites = []string{}
	}
	if r.ApprovalRequired == nil {
		r.ApprovalRequired = []string{}
	}
	s := c.SLO
	if s.LatencyP95Ms != nil || s.TTFTP95Ms != nil || s.ErrorRate != nil || s.Tokens != nil || s.GPU != nil {
		r.RequireBench = true
	}
	return r
}

// ParseApprovals reads a YAML list of approvals.
func ParseApprovals(b []byte) ([]Approval, error) {
	var as []Approval
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&as); err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	for i, a := range as {
		if err := a.check(); err != nil {
			return nil, fmt.Errorf("approvals[%d]: %w", i, err)
		}
	}
	return as, nil
}

// ParseSLO reads a slo-rules.yaml file.
func ParseSLO(b []byte) (SLO, error) {
	var s SLO
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("slo rules: %w", err)
	}
	return s, nil
}

// MergeSLO fills the limits over does not set from base.
func MergeSLO(base, over SLO) SLO {
	b, _ := yaml.Marshal(base)
	var out SLO
	_ = yaml.Unmarshal(b, &out)
	o, _ := yaml.Marshal(over)
	_ = yaml.Unmarshal(o, &out)
	return out
}
