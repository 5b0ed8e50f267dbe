package sim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"
)

// Load reads a version file.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a version file's YAML (JSON is YAML too). Unknown fields
// are errors, so a typo does not silently change behaviour.
func Parse(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("simulator config: %w", err)
	}
	return c, c.Validate()
}

// knownFault reports a fault the simulator can play.
func knownFault(f string) bool {
	switch f {
	case "", "http_429", "http_500", "http_400", "cut", "hang", "garbage", "close":
		return true
	}
	return false
}

// Validate reports every problem in c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required"))
	}
	for name, d := range map[string]Dist{"ttft": c.TTFT, "per_token": c.PerToken} {
		switch d.Kind {
		case "", "fixed", "normal", "lognormal":
		default:
			errs = append(errs, fmt.Errorf("%s.kind: %q is not fixed, normal or lognormal", name, d.Kind))
		}
		if d.Mean < 0 || d.StdDev < 0 {
			errs = append(errs, fmt.Errorf("%s: mean and stddev cannot be negative", name))
		}
		if d.Kind == "lognormal" && d.Mean == 0 && d.StdDev > 0 {
			errs = append(errs, fmt.Errorf("%s: a lognormal needs a mean > 0", name))
		}
	}
	for name, r := range map[string]float64{"refusal_rate": c.RefusalRate, "error_rate": c.ErrorRate} {
		if r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("%s: %v is not between 0 and 1", name, r))
		}
	}
	if c.ErrorStatus != 0 && (c.ErrorStatus < 400 || c.ErrorStatus > 599) {
		errs = append(errs, fmt.Errorf("error_status: %d is not an HTTP error status", c.ErrorStatus))
	}
	if c.TokensPerChunk < 0 || c.MaxConcurrency < 0 || c.StartupDelay < 0 {
		errs = append(errs, errors.New("tokens_per_chunk, max_concurrency and startup_delay cannot be negative"))
	}
	for i, a := range c.Answers {
		switch {
		case a.Match == "" && a.Regex == "":
			errs = append(errs, fmt.Errorf("answers[%d]: needs match or regex", i))
		case a.Match != "" && a.Regex != "":
			errs = append(errs, fmt.Errorf("answers[%d]: give match or regex, not both", i))
		case a.Regex != "":
			if _, err := regexp.Compile(a.Regex); err != nil {
				errs = append(errs, fmt.Errorf("answers[%d].regex: %w", i, err))
			}
		}
		if !knownFault(a.Fault) {
			errs = append(errs, fmt.Errorf("answers[%d].fault: %q is not one of http_429, http_500, http_400, cut, hang, garbage, close", i, a.Fault))
		}
		if a.FaultTimes < 0 || a.RetryAfter < 0 {
			errs = append(errs, fmt.Errorf("answers[%d]: fault_times and retry_after cannot be negative", i))
		}
	}
	return errors.Join(errs...)
}
