package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads a version file (Parse).
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading the simulator config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a version file's YAML (JSON is YAML too; durations are
// written "50ms") and validates it. Unknown fields are errors, so a typo
// does not silently change behaviour.
func Parse(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errors.New("simulator config: the file is empty")
		}
		return Config{}, fmt.Errorf("simulator config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// faults lists the values Answer.Fault may take.
const faults = "http_429, http_500, http_400, cut, hang, garbage, close"

// Validate reports every problem in c, each naming its field, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Model == "" {
		bad("model: required")
	}
	for _, d := range []struct {
		name string
		Dist
	}{{"ttft", c.TTFT}, {"per_token", c.PerToken}} {
		switch d.Kind {
		case "", "fixed", "normal", "lognormal":
		default:
			bad("%s.kind: %q is not fixed, normal or lognormal", d.name, d.Kind)
		}
		if d.Mean < 0 {
			bad("%s.mean: %v is negative", d.name, d.Mean)
		}
		if d.StdDev < 0 {
			bad("%s.stddev: %v is negative", d.name, d.StdDev)
		}
		if d.Kind == "lognormal" && d.Mean == 0 && d.StdDev > 0 {
			bad("%s.mean: a lognormal needs a mean above zero", d.name)
		}
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"refusal_rate", c.RefusalRate}, {"error_rate", c.ErrorRate}} {
		if !(r.v >= 0 && r.v <= 1) { // also NaN
			bad("%s: %v is not a probability between 0 and 1", r.name, r.v)
		}
	}
	if c.ErrorStatus != 0 && (c.ErrorStatus < 400 || c.ErrorStatus > 599) {
		bad("error_status: %d is not an HTTP error status (400-599)", c.ErrorStatus)
	}
	if c.TokensPerChunk < 0 {
		bad("tokens_per_chunk: %d is negative", c.TokensPerChunk)
	}
	if c.MaxConcurrency < 0 {
		bad("max_concurrency: %d is negative", c.MaxConcurrency)
	}
	if c.StartupDelay < 0 {
		bad("startup_delay: %v is negative", c.StartupDelay)
	}
	for i, a := range c.Answers {
		switch {
		case a.Match == "" && a.Regex == "":
			bad("answers[%d]: needs match or regex", i)
		case a.Match != "" && a.Regex != "":
			bad("answers[%d]: give match or regex, not both", i)
		case a.Regex != "":
			if _, err := regexp.Compile(a.Regex); err != nil {
				bad("answers[%d].regex: %w", i, err)
			}
		}
		if a.Fault != "" && !slices.Contains(strings.Split(faults, ", "), a.Fault) {
			bad("answers[%d].fault: %q is not one of %s", i, a.Fault, faults)
		}
		if a.RetryAfter < 0 {
			bad("answers[%d].retry_after: %v is negative", i, a.RetryAfter)
		}
		if a.RetryAfter != 0 && a.Fault != "http_429" {
			bad("answers[%d].retry_after: only an http_429 fault sends Retry-After", i)
		}
		if a.FaultTimes < 0 {
			bad("answers[%d].fault_times: %d is negative", i, a.FaultTimes)
		}
		if a.FaultTimes != 0 && a.Fault == "" {
			bad("answers[%d].fault_times: there is no fault to limit", i)
		}
	}
	return errors.Join(errs...)
}
