package evals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"regexp"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// Suite is an eval suite (DESIGN.md §5): items with messages and
// assertions, tags for slicing. Parse checks it whole and compiles every
// regular expression and JSON schema, so scoring never fails on the
// suite's own mistakes.
type Suite struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
	Name       string `yaml:"name" json:"name"`
	// Vars are defaults for the template variables of every item (the
	// release's system prompt and the items' messages); an item's own
	// vars win.
	Vars  map[string]string `yaml:"vars" json:"vars,omitempty"`
	Items []Item            `yaml:"items" json:"items"`
}

// Message is one chat message of an item.
type Message struct {
	Role    string `yaml:"role" json:"role"`
	Content string `yaml:"content" json:"content"`
}

// Item is one eval case.
type Item struct {
	ID       string            `yaml:"id" json:"id"`
	Tags     []string          `yaml:"tags" json:"tags,omitempty"`
	Messages []Message         `yaml:"messages" json:"messages"`
	Vars     map[string]string `yaml:"vars" json:"vars,omitempty"`
	// N is how many samples to draw for the item (pass@k); zero means 1.
	N      int         `yaml:"n" json:"n,omitempty"`
	Assert []Assertion `yaml:"assert" json:"assert"`
	// Threshold, when set, passes the item when the weighted share of
	// its assertions that pass reaches it; otherwise every assertion
	// must pass.
	Threshold *float64 `yaml:"threshold" json:"threshold,omitempty"`
}

// Assertion is one check of an output. Which fields matter depends on
// Type (see Types).
type Assertion struct {
	Type     string         `yaml:"type" json:"type"`
	Value    string         `yaml:"value" json:"value,omitempty"`
	Expected *bool          `yaml:"expected" json:"expected,omitempty"` // refusal
	Schema   map[string]any `yaml:"schema" json:"schema,omitempty"`     // json-schema
	Max      *float64       `yaml:"max" json:"max,omitempty"`           // max-tokens (tokens), latency (ms), cost (USD)
	// IgnoreCase for equals, contains and not-contains.
	IgnoreCase bool     `yaml:"ignoreCase" json:"ignoreCase,omitempty"`
	Weight     *float64 `yaml:"weight" json:"weight,omitempty"`
	// Rubric and Scale are for a judge model (type rubric); Threshold is
	// the passing score on the scale, or of a composite.
	Rubric string `yaml:"rubric" json:"rubric,omitempty"`
	Scale  int    `yaml:"scale" json:"scale,omitempty"`
	// Prompt, for a rubric, replaces the judge's question: a template
	// with {{rubric}}, {{question}}, {{answer}} and {{scale}}.
	Prompt    string      `yaml:"prompt" json:"prompt,omitempty"`
	Threshold *float64    `yaml:"threshold" json:"threshold,omitempty"`
	Assert    []Assertion `yaml:"assert" json:"assert,omitempty"` // all, any, weighted

	re     *regexp.Regexp
	schema *jsonschema.Schema
}

// Types lists the assertion types a suite may use.
func Types() []string {
	return []string{"equals", "contains", "not-contains", "regex", "json-schema", "refusal", "max-tokens", "latency", "cost", "rubric", "all", "any", "weighted"}
}

// ErrSuite marks a suite that cannot be used; the message names the item.
var ErrSuite = errors.New("invalid eval suite")

// jsonLines yields the non-blank lines of JSON Lines data, trimmed, with
// their 1-based line numbers.
func jsonLines(data []byte) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		n := 0
		for len(data) > 0 {
			n++
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			if b := bytes.TrimSpace(line); len(b) > 0 && !yield(n, b) {
				return
			}
		}
	}
}

// ParseSuite reads a suite from YAML (apiVersion airlock.dev/v1, kind
// EvalSuite) or, when the first non-blank byte is '{', from JSONL: one item
// per line, the suite named name. Every problem is reported, each naming
// its item and assertion.
func ParseSuite(data []byte, name string) (*Suite, error) {
	var s Suite
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		s = Suite{APIVersion: "airlock.dev/v1", Kind: "EvalSuite", Name: name}
		for line, b := range jsonLines(data) {
			var it Item
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&it); err != nil {
				return nil, fmt.Errorf("%w %s: line %d: %w", ErrSuite, name, line, err)
			}
			s.Items = append(s.Items, it)
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w %s: %w", ErrSuite, name, err)
		}
		if s.Name == "" {
			s.Name = name
		}
	}
	if err := s.compile(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Suite) compile() error {
	var errs []string
	if s.APIVersion != "airlock.dev/v1" || s.Kind != "EvalSuite" {
		errs = append(errs, fmt.Sprintf("apiVersion %q, kind %q: want airlock.dev/v1, EvalSuite", s.APIVersion, s.Kind))
	}
	if len(s.Items) == 0 {
		errs = append(errs, "no items")
	}
	seen := map[string]int{}
	cc := compiled{re: map[string]compiledRe{}, schema: map[string]compiledSchema{}}
	for i := range s.Items {
		it := &s.Items[i]
		where := fmt.Sprintf("item %d", i)
		if it.ID != "" {
			where = fmt.Sprintf("item %q", it.ID)
		}
		bad := func(format string, a ...any) { errs = append(errs, where+": "+fmt.Sprintf(format, a...)) }
		switch prev, dup := seen[it.ID]; {
		case it.ID == "":
			bad("id is required")
		case dup:
			bad("id already used by item %d", prev)
		}
		seen[it.ID] = i
		if len(it.Messages) == 0 {
			bad("messages: at least one is required")
		}
		for j, m := range it.Messages {
			if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
				bad("messages[%d].role %q: want system, user or assistant", j, m.Role)
			}
		}
		if it.N < 0 {
			bad("n %d is negative", it.N)
		}
		if len(it.Assert) == 0 {
			bad("assert: at least one assertion is required (an item that checks nothing would always pass)")
		}
		if it.Threshold != nil && (*it.Threshold < 0 || *it.Threshold > 1) {
			bad("threshold %v: want 0 to 1", *it.Threshold)
		}
		for j := range it.Assert {
			cc.assertion(&it.Assert[j], fmt.Sprintf("assert[%d]", j), bad)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %s:\n  %s", ErrSuite, s.Name, strings.Join(errs, "\n  "))
	}
	return nil
}

// compiled shares compiled regular expressions and schemas between the
// assertions of a suite that repeat them (both are safe for concurrent
// use), so a generated suite of 100,000 items compiles each pattern once.
type compiled struct {
	re     map[string]compiledRe
	schema map[string]compiledSchema
}

type compiledRe struct {
	re  *regexp.Regexp
	err error
}

type compiledSchema struct {
	s   *jsonschema.Schema
	err error
}

func (cc compiled) assertion(a *Assertion, path string, bad func(string, ...any)) {
	needValue := func() {
		if a.Value == "" {
			bad("%s (%s): value is required", path, a.Type)
		}
	}
	needMax := func(unit string) {
		if a.Max == nil || *a.Max < 0 {
			bad("%s (%s): max (%s) is required and cannot be negative", path, a.Type, unit)
		}
	}
	if a.Weight != nil && *a.Weight < 0 {
		bad("%s: weight %v is negative", path, *a.Weight)
	}
	switch a.Type {
	case "equals", "contains", "not-contains":
		needValue()
	case "regex":
		needValue()
		c, ok := cc.re[a.Value]
		if !ok {
			c.re, c.err = regexp.Compile(a.Value)
			cc.re[a.Value] = c
		}
		if c.err != nil {
			bad("%s (regex): %v", path, c.err)
		}
		a.re = c.re
	case "json-schema":
		if a.Schema == nil {
			bad("%s (json-schema): schema is required", path)
			return
		}
		key, err := json.Marshal(a.Schema)
		if err != nil {
			bad("%s (json-schema): %v", path, err)
			return
		}
		c, ok := cc.schema[string(key)]
		if !ok {
			c.s, c.err = compileSchema(key)
			cc.schema[string(key)] = c
		}
		if c.err != nil {
			bad("%s (json-schema): %v", path, c.err)
		}
		a.schema = c.s
	case "refusal":
		if a.Expected == nil {
			bad("%s (refusal): expected (true or false) is required", path)
		}
	case "max-tokens":
		needMax("tokens")
	case "latency":
		needMax("milliseconds")
	case "cost":
		needMax("US dollars")
	case "rubric":
		if strings.TrimSpace(a.Rubric) == "" {
			bad("%s (rubric): rubric text is required", path)
		}
		if a.Scale < 2 {
			bad("%s (rubric): scale %d: want 2 or more points", path, a.Scale)
		}
		if a.Threshold == nil || *a.Threshold < 1 || *a.Threshold > float64(a.Scale) {
			bad("%s (rubric): threshold is required, between 1 and the scale", path)
		}
		if a.Prompt != "" {
			const mark = "\x00answer\x00"
			if out, err := Render(a.Prompt, judgeVars("", "", mark, 0)); err != nil {
				bad("%s (rubric): prompt: %v (it may use rubric, question, answer and scale)", path, err)
			} else if !strings.Contains(out, mark) {
				bad("%s (rubric): prompt never shows the judge the {{answer}}", path)
			}
		}
	case "all", "any", "weighted":
		if len(a.Assert) == 0 {
			bad("%s (%s): assert: at least one nested assertion is required", path, a.Type)
		}
		if a.Type == "weighted" && (a.Threshold == nil || *a.Threshold < 0 || *a.Threshold > 1) {
			bad("%s (weighted): threshold between 0 and 1 is required", path)
		}
		for k := range a.Assert {
			cc.assertion(&a.Assert[k], fmt.Sprintf("%s.assert[%d]", path, k), bad)
		}
	case "":
		bad("%s: type is required", path)
	default:
		bad("%s: unknown type %q (want one of %s)", path, a.Type, strings.Join(Types(), ", "))
	}
}

func compileSchema(b []byte) (*jsonschema.Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	const url = "mem://assertion.json"
	if err := c.AddResource(url, v); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// Tags lists the suite's tags, sorted, for slicing.
func (s *Suite) Tags() []string {
	set := map[string]bool{}
	for _, it := range s.Items {
		for _, t := range it.Tags {
			set[t] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
