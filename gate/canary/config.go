package canary

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/airlock-dev/airlock/gate"
	"gopkg.in/yaml.v3"
)

// Config is canary.yaml: the traffic steps, the metrics judged at each, and
// where metrics come from and traffic goes. Zero values are the documented
// defaults (docs/promotion.md).
type Config struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Environment is the environment tag promoted (moved to the canary) or
	// rolled back (moved to the last digest with a pass verdict).
	Environment string `yaml:"environment"`
	// Trust lists the public keys whose pass verdicts count: the canary
	// needs one for Environment, and a rollback returns to a baseline
	// that has one.
	Trust []string `yaml:"trust"`
	// Alpha is the family-wise false-alarm rate: the chance that a canary
	// as good as its baseline is rolled back, over every metric and every
	// look (default 0.05).
	Alpha float64 `yaml:"alpha"`
	// Interval is how often the judge looks during a step (default 30s).
	Interval gate.Duration `yaml:"interval"`
	Steps    []Step        `yaml:"steps"`
	Metrics  []Metric      `yaml:"metrics"`
	// NoData says what a step does while some metric has too few samples.
	NoData NoDataPolicy `yaml:"no_data"`
	// OnInconclusive is what the last judged step does when a metric is
	// neither shown within tolerance nor shown worse: promote (default;
	// the test never rejected) or pause for a human.
	OnInconclusive string `yaml:"on_inconclusive"`
	// Baseline and Canary name the variants as the traffic layer labels
	// them (defaults stable and canary, the router's labels).
	Baseline Variant        `yaml:"baseline"`
	Canary   Variant        `yaml:"canary"`
	Provider ProviderConfig `yaml:"provider"`
	Actuator ActuatorConfig `yaml:"actuator"`
	Rollback RollbackConfig `yaml:"rollback"`

	dir string
}

// Step is one traffic step: Weight percent to the canary, held for Pause
// while the judge looks every Interval. A step of weight 100 is the
// promotion and is not judged.
type Step struct {
	Weight int           `yaml:"weight"`
	Pause  gate.Duration `yaml:"pause"`
}

// NoDataPolicy extends a step by Extend while a metric lacks samples, at most
// MaxExtensions times, then pauses for a human.
type NoDataPolicy struct {
	Extend        gate.Duration `yaml:"extend"`
	MaxExtensions *int          `yaml:"max_extensions"`
}

// RollbackConfig says what a rollback does beyond setting the canary's
// weight to 0.
type RollbackConfig struct {
	// KillSwitch also engages the traffic layer's kill-switch: all
	// traffic to the last known good release or the fallback.
	KillSwitch bool `yaml:"kill_switch"`
}

// ProviderConfig names one metrics provider.
type ProviderConfig struct {
	Prometheus *PrometheusConfig `yaml:"prometheus"`
	// File is a static observations file (tests and replays).
	File string `yaml:"file"`
}

// PrometheusConfig is the Prometheus HTTP API to query.
type PrometheusConfig struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Timeout gate.Duration     `yaml:"timeout"`
}

// ActuatorConfig names one actuator.
type ActuatorConfig struct {
	Router     *RouterConfig     `yaml:"router"`
	GatewayAPI *GatewayAPIConfig `yaml:"gateway_api"`
	// None: traffic is moved by something else.
	None *struct{} `yaml:"none"`
}

// RouterConfig is the admin API of an airlock router.
type RouterConfig struct {
	URL string `yaml:"url"`
	// TokenFile holds the router's admin bearer token.
	TokenFile string `yaml:"token_file"`
}

// GatewayAPIConfig is a Gateway API HTTPRoute whose rule splits traffic
// between two backendRefs.
type GatewayAPIConfig struct {
	Kubeconfig string `yaml:"kubeconfig"`
	Namespace  string `yaml:"namespace"`
	Route      string `yaml:"route"`
	// Rule is the index of the route's rule to weigh (default 0).
	Rule int `yaml:"rule"`
	// BaselineBackend and CanaryBackend are the backendRefs' names.
	BaselineBackend string `yaml:"baseline_backend"`
	CanaryBackend   string `yaml:"canary_backend"`
}

// Metric is one judged metric.
type Metric struct {
	Name string `yaml:"name"`
	Kind Kind   `yaml:"kind"`
	// Direction is which way is better: lower (default for every kind
	// but quality) or higher (default for quality).
	Direction Direction `yaml:"direction"`
	// Test overrides the kind's test: mean, proportion or count.
	Test Test `yaml:"test"`
	// Tolerance is how much worse than the baseline the canary may be:
	// "10%" of the baseline's value, or an absolute amount in the
	// metric's unit. Default 0 for counts, 10% otherwise.
	Tolerance *Tolerance `yaml:"tolerance"`
	// Limit is an absolute SLO on the canary's value (mean, or rate for
	// counts and proportions), judged beside the comparison.
	Limit *float64 `yaml:"limit"`
	// MinSamples is the samples (requests, for counts) each variant needs
	// before the metric is judged (default 50 for means, 200 otherwise).
	MinSamples int     `yaml:"min_samples"`
	Query      Queries `yaml:"query"`
}

// Queries is a metric's queries, templated per variant with {{.Variant}},
// {{.Digest}}, {{.Window}} (a Prometheus duration such as 340s) and
// {{.Metric}}. A mean metric gives a Histogram bucket selector, or Count,
// Sum and (optionally) SumSquares; a count or proportion metric gives
// Events and Requests.
type Queries struct {
	Histogram  string `yaml:"histogram"`
	Count      string `yaml:"count"`
	Sum        string `yaml:"sum"`
	SumSquares string `yaml:"sum_squares"`
	Events     string `yaml:"events"`
	Requests   string `yaml:"requests"`
}

// Kind is what a metric measures; it picks the default test and direction.
type Kind string

// Kinds.
const (
	KindLatency Kind = "latency"
	KindError   Kind = "error"
	KindRefusal Kind = "refusal"
	KindSafety  Kind = "safety"
	KindQuality Kind = "quality"
	KindCost    Kind = "cost"
)

// Direction is which way a metric is better.
type Direction string

// Directions.
const (
	Lower  Direction = "lower"
	Higher Direction = "higher"
)

// Test is the statistical test a metric is judged with.
type Test string

// Tests.
const (
	// TestMean is mSPRT on the difference of means (normal mixture).
	TestMean Test = "mean"
	// TestProportion is mSPRT on the difference of proportions.
	TestProportion Test = "proportion"
	// TestCount is the one-sided Beta-binomial mixture test on event
	// counts, for rare events.
	TestCount Test = "count"
)

// Tolerance is a non-inferiority margin: Value as a fraction of the
// baseline's value when Relative, else in the metric's unit.
type Tolerance struct {
	Value    float64
	Relative bool
}

// UnmarshalYAML reads "10%" or a number.
func (t *Tolerance) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	rel := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return fmt.Errorf("line %d: tolerance %q is not a share such as 10%% or a non-negative number", n.Line, s)
	}
	if rel {
		v /= 100
	}
	*t = Tolerance{Value: v, Relative: rel}
	return nil
}

// String writes the tolerance as it is written in canary.yaml.
func (t Tolerance) String() string {
	if t.Relative {
		return strconv.FormatFloat(t.Value*100, 'g', -1, 64) + "%"
	}
	return strconv.FormatFloat(t.Value, 'g', -1, 64)
}

// Defaults.
const (
	DefaultAlpha         = 0.05
	DefaultInterval      = 30 * time.Second
	DefaultExtend        = time.Minute
	DefaultMaxExtensions = 3
	DefaultMinMean       = 50
	DefaultMinCount      = 200
)

// LoadConfig reads canary.yaml from path.
func LoadConfig(path string, read func(string) ([]byte, error)) (*Config, error) {
	b, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("reading the canary plan: %w", err)
	}
	return ParseConfig(b, filepath.Dir(path))
}

// ParseConfig reads canary.yaml, fills in defaults and checks it; unknown
// fields are errors, and every problem is reported at once. dir is where
// relative paths start.
func ParseConfig(b []byte, dir string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); errors.Is(err, io.EOF) {
		return nil, errors.New("canary plan: the file is empty; it needs environment, steps and metrics (see docs/promotion.md)")
	} else if err != nil {
		return nil, fmt.Errorf("canary plan: %w", err)
	}
	c.dir = dir
	c.defaults()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("canary plan: %w", err)
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.Interval.Duration == 0 {
		c.Interval.Duration = DefaultInterval
	}
	if c.NoData.Extend.Duration == 0 {
		c.NoData.Extend.Duration = DefaultExtend
	}
	if c.NoData.MaxExtensions == nil {
		n := DefaultMaxExtensions
		c.NoData.MaxExtensions = &n
	}
	if c.OnInconclusive == "" {
		c.OnInconclusive = "promote"
	}
	if c.Baseline.Name == "" {
		c.Baseline.Name = "stable"
	}
	if c.Canary.Name == "" {
		c.Canary.Name = "canary"
	}
	for i := range c.Metrics {
		m := &c.Metrics[i]
		if m.Direction == "" {
			m.Direction = Lower
			if m.Kind == KindQuality {
				m.Direction = Higher
			}
		}
		if m.Test == "" {
			m.Test = m.defaultTest()
		}
		if m.Tolerance == nil {
			t := Tolerance{Value: 0.10, Relative: true}
			if m.Test == TestCount {
				t = Tolerance{}
			}
			m.Tolerance = &t
		}
		if m.MinSamples == 0 {
			m.MinSamples = DefaultMinCount
			if m.Test == TestMean {
				m.MinSamples = DefaultMinMean
			}
		}
	}
}

func (m *Metric) defaultTest() Test {
	switch m.Kind {
	case KindError, KindRefusal, KindSafety:
		return TestCount
	case KindQuality:
		if m.Query.Events != "" {
			return TestProportion
		}
	}
	return TestMean
}

var templateFuncs = template.FuncMap{}

func (c *Config) check() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.APIVersion != "" && c.APIVersion != "airlock.dev/v1" {
		add("apiVersion: %q, want airlock.dev/v1", c.APIVersion)
	}
	if c.Kind != "" && c.Kind != "CanaryPlan" {
		add("kind: %q, want CanaryPlan", c.Kind)
	}
	if c.Environment == "" {
		add("environment: required: the tag promoted (prod, staging, …)")
	}
	if !(c.Alpha > 0 && c.Alpha < 0.5) {
		add("alpha: %g, want a false-alarm rate in (0, 0.5), such as 0.05", c.Alpha)
	}
	if c.OnInconclusive != "promote" && c.OnInconclusive != "pause" {
		add("on_inconclusive: %q, want promote or pause", c.OnInconclusive)
	}
	if c.Baseline.Name == c.Canary.Name {
		add("baseline and canary: both are named %q", c.Canary.Name)
	}
	if *c.NoData.MaxExtensions < 0 {
		add("no_data: max_extensions: %d is negative", *c.NoData.MaxExtensions)
	}
	if len(c.Steps) == 0 {
		add("steps: required, such as [{weight: 5, pause: 5m}, {weight: 25, pause: 10m}, {weight: 100}]")
	}
	last := 0
	for i, s := range c.Steps {
		switch {
		case s.Weight < 1 || s.Weight > 100:
			add("steps[%d]: weight %d, want 1 to 100 (percent to the canary)", i, s.Weight)
		case s.Weight <= last:
			add("steps[%d]: weight %d does not rise above the step before (%d)", i, s.Weight, last)
		case s.Weight < 100 && s.Pause.Duration == 0:
			add("steps[%d]: pause: required for a judged step (weight below 100), such as 5m", i)
		case s.Weight == 100 && i != len(c.Steps)-1:
			add("steps[%d]: weight 100 is the promotion and must be the last step", i)
		}
		last = s.Weight
	}
	if len(c.Steps) > 0 && c.Steps[0].Weight == 100 {
		add("steps: the first step sends all traffic to the canary; nothing could be judged")
	}
	if len(c.Metrics) == 0 {
		add("metrics: required: at least one metric to judge")
	}
	names := map[string]bool{}
	for i, m := range c.Metrics {
		where := fmt.Sprintf("metrics[%d] (%s)", i, m.Name)
		if m.Name == "" {
			add("metrics[%d]: name: required", i)
		} else if names[m.Name] {
			add("%s: a second metric with this name", where)
		}
		names[m.Name] = true
		switch m.Kind {
		case KindLatency, KindError, KindRefusal, KindSafety, KindQuality, KindCost:
		default:
			add("%s: kind: %q, want latency, error, refusal, safety, quality or cost", where, m.Kind)
		}
		if m.Direction != Lower && m.Direction != Higher {
			add("%s: direction: %q, want lower or higher", where, m.Direction)
		}
		if m.MinSamples < 2 {
			add("%s: min_samples: %d, want at least 2", where, m.MinSamples)
		}
		q := m.Query
		switch m.Test {
		case TestMean:
			if q.Histogram == "" && (q.Count == "" || q.Sum == "") {
				add("%s: query: a mean metric needs histogram, or count and sum", where)
			}
			if q.Histogram != "" && (q.Count != "" || q.Sum != "") {
				add("%s: query: give histogram or count and sum, not both", where)
			}
		case TestProportion, TestCount:
			if q.Events == "" || q.Requests == "" {
				add("%s: query: a %s metric needs events and requests", where, m.Test)
			}
			if !m.Tolerance.Relative && m.Test == TestCount && m.Tolerance.Value != 0 {
				add("%s: tolerance: a count metric's tolerance is relative to the baseline's rate, such as 50%%", where)
			}
		default:
			add("%s: test: %q, want mean, proportion or count", where, m.Test)
		}
		if m.Test == TestCount && m.Direction != Lower {
			add("%s: direction: a count metric counts bad events; lower is better", where)
		}
		for _, t := range []string{q.Histogram, q.Count, q.Sum, q.SumSquares, q.Events, q.Requests} {
			if t == "" {
				continue
			}
			if _, err := template.New(m.Name).Funcs(templateFuncs).Option("missingkey=error").Parse(t); err != nil {
				add("%s: query: %v", where, err)
			}
		}
	}
	n := 0
	if c.Provider.Prometheus != nil {
		n++
		if c.Provider.Prometheus.URL == "" {
			add("provider: prometheus: url: required")
		}
	}
	if c.Provider.File != "" {
		n++
	}
	if n != 1 {
		add("provider: give exactly one of prometheus or file")
	}
	n = 0
	if c.Actuator.Router != nil {
		n++
		if c.Actuator.Router.URL == "" {
			add("actuator: router: url: required (the router's admin address)")
		}
	}
	if g := c.Actuator.GatewayAPI; g != nil {
		n++
		if g.Route == "" || g.BaselineBackend == "" || g.CanaryBackend == "" {
			add("actuator: gateway_api: route, baseline_backend and canary_backend are required")
		}
	}
	if c.Actuator.None != nil {
		n++
	}
	if n > 1 {
		add("actuator: give one of router, gateway_api or none")
	}
	return errors.Join(errs...)
}

// Path resolves a path from canary.yaml against the file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Judged reports the steps the judge looks at: every step below 100%.
func (c *Config) Judged() []Step {
	if n := len(c.Steps); n > 0 && c.Steps[n-1].Weight == 100 {
		return c.Steps[:n-1]
	}
	return c.Steps
}

// templateData is what a metric's query templates see.
type templateData struct {
	Variant string
	Digest  string
	Window  string
	Metric  string
}

// Render fills in a query template for q.
func Render(text string, q Query) (string, error) {
	t, err := template.New(q.Metric.Name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	secs := int64(math.Ceil(q.Window().Seconds()))
	var b strings.Builder
	err = t.Execute(&b, templateData{Variant: q.Variant.Name, Digest: q.Variant.Digest, Window: strconv.FormatInt(max(secs, 1), 10) + "s", Metric: q.Metric.Name})
	if err != nil {
		return "", fmt.Errorf("rendering the query of %s: %w", q.Metric.Name, err)
	}
	return b.String(), nil
}
