package evals

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Shipped is how a release says its model is to be used: the system
// prompt template and the safety settings it ships. An eval applies them
// as the serving stack would, so a prompt-only or safety-only change is
// evaluated as released (DESIGN.md §3, §5).
type Shipped struct {
	// System is the release's system prompt, a template: {{name}} is
	// replaced by the item's variable name, or the suite's default.
	System string
	Safety Safety
}

// Safety is the release's safety file (the part with role safety).
// Airlock reads these sections; serving-only settings go under serving,
// which it keeps but does not interpret. Any other key is an error, so a
// misspelt limit is never silently ignored.
type Safety struct {
	Refusal struct {
		Categories []string `yaml:"categories" json:"categories,omitempty"`
		// Message is the release's own refusal; an output containing it
		// counts as a refusal.
		Message string `yaml:"message" json:"message,omitempty"`
	} `yaml:"refusal" json:"refusal"`
	PII struct {
		// RedactOutput lists what the serving stack redacts from answers
		// (email, phone, card_number, ssn); evals score the redacted text.
		RedactOutput []string `yaml:"redact_output" json:"redact_output,omitempty"`
	} `yaml:"pii" json:"pii"`
	Limits struct {
		MaxOutputTokens int      `yaml:"max_output_tokens" json:"max_output_tokens,omitempty"`
		Temperature     *float64 `yaml:"temperature" json:"temperature,omitempty"`
		TopP            *float64 `yaml:"top_p" json:"top_p,omitempty"`
		Stop            []string `yaml:"stop" json:"stop,omitempty"`
	} `yaml:"limits" json:"limits"`
	// Engine is passed to the engine as extra request fields, as is
	// (vendor guardrail switches, guided decoding).
	Engine map[string]any `yaml:"engine" json:"engine,omitempty"`
	// Serving is for the serving stack only.
	Serving map[string]any `yaml:"serving" json:"serving,omitempty"`
}

// Redactors are the kinds of PII redact_output may name.
func Redactors() []string { return []string{"card_number", "email", "phone", "ssn"} }

// ErrSafety marks a safety file that cannot be applied.
var ErrSafety = errors.New("invalid safety settings")

// ParseSafety reads a release's safety file.
func ParseSafety(data []byte) (Safety, error) {
	var s Safety
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return s, fmt.Errorf("%w: %w (Airlock reads refusal, pii, limits and engine; put serving-only settings under serving)", ErrSafety, err)
	}
	var errs []string
	for _, k := range s.PII.RedactOutput {
		if !slices.Contains(Redactors(), k) {
			errs = append(errs, fmt.Sprintf("pii.redact_output: unknown kind %q (want %s)", k, strings.Join(Redactors(), ", ")))
		}
	}
	if s.Limits.MaxOutputTokens < 0 {
		errs = append(errs, fmt.Sprintf("limits.max_output_tokens %d is negative", s.Limits.MaxOutputTokens))
	}
	if t := s.Limits.Temperature; t != nil && (*t < 0 || *t > 2) {
		errs = append(errs, fmt.Sprintf("limits.temperature %v: want 0 to 2", *t))
	}
	if t := s.Limits.TopP; t != nil && (*t <= 0 || *t > 1) {
		errs = append(errs, fmt.Sprintf("limits.top_p %v: want more than 0, at most 1", *t))
	}
	for k := range s.Engine {
		switch k {
		case "model", "messages", "prompt", "stream", "stream_options":
			errs = append(errs, fmt.Sprintf("engine.%s: the runner sets this field", k))
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("%w:\n  %s", ErrSafety, strings.Join(errs, "\n  "))
	}
	return s, nil
}

var templateVar = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}`)

// Render replaces {{name}} in text by vars[name]. A variable with no
// value is an error naming it: an eval never sends a half-filled prompt.
func Render(text string, vars map[string]string) (string, error) {
	var missing []string
	out := templateVar.ReplaceAllStringFunc(text, func(m string) string {
		name := templateVar.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("template variables with no value: %s (set them in the item's vars or the suite's)", strings.Join(missing, ", "))
	}
	return out, nil
}

// Messages are the messages an item is sent with, as shipped: the
// release's system prompt first, then the item's messages, every
// template variable filled from the item's vars over the suite's.
func (s *Suite) Messages(it *Item, sh *Shipped) ([]Message, error) {
	vars := s.Vars
	if len(it.Vars) > 0 {
		vars = make(map[string]string, len(s.Vars)+len(it.Vars))
		for k, v := range s.Vars {
			vars[k] = v
		}
		for k, v := range it.Vars {
			vars[k] = v
		}
	}
	out := make([]Message, 0, len(it.Messages)+1)
	if sh != nil && strings.TrimSpace(sh.System) != "" {
		sys, err := Render(sh.System, vars)
		if err != nil {
			return nil, fmt.Errorf("item %q: the release's system prompt: %w", it.ID, err)
		}
		out = append(out, Message{Role: "system", Content: sys})
	}
	for i, m := range it.Messages {
		c, err := Render(m.Content, vars)
		if err != nil {
			return nil, fmt.Errorf("item %q: messages[%d]: %w", it.ID, i, err)
		}
		out = append(out, Message{Role: m.Role, Content: c})
	}
	return out, nil
}

var redactors = map[string]*regexp.Regexp{
	"email":       regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`),
	"card_number": regexp.MustCompile(`\b(?:\d[ -]?){12,18}\d\b`),
	"ssn":         regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`),
	"phone":       regexp.MustCompile(`(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)[ .-]?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b`),
}

// Redact applies the release's output redaction: each match of a kind is
// replaced by [REDACTED:kind]. Card numbers are redacted only when they
// pass the Luhn check, as payment filters do.
func (sf *Safety) Redact(text string) string {
	for _, k := range sf.PII.RedactOutput {
		re := redactors[k]
		text = re.ReplaceAllStringFunc(text, func(m string) string {
			if k == "card_number" && !luhn(m) {
				return m
			}
			return "[REDACTED:" + k + "]"
		})
	}
	return text
}

func luhn(s string) bool {
	sum, n := 0, 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n >= 13 && sum%10 == 0
}
