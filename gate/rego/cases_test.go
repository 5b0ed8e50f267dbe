package rego_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/rego"
	"github.com/airlock-dev/airlock/policies"
)

// policyCase is one row of policies/testdata/cases.yaml.
type policyCase struct {
	Name    string         `yaml:"name"`
	Set     map[string]any `yaml:"set"`
	Delete  []string       `yaml:"delete"`
	Policy  string         `yaml:"policy"`
	Options struct {
		Warn    []string `yaml:"warn"`
		Disable []string `yaml:"disable"`
		Timeout string   `yaml:"timeout"`
	} `yaml:"options"`
	Want string   `yaml:"want"`
	Deny []string `yaml:"deny"`
	Warn []string `yaml:"warn"`
	Msg  string   `yaml:"msg"`
}

// caseNow is base.yaml's now: cases decide as of then.
var caseNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func builtins(t testing.TB) []rego.Module {
	t.Helper()
	ms, err := rego.LoadFS(policies.FS, true)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestPolicyCases runs the table of policy cases against the built-in
// policies, each through a prepared engine as airlock gate uses it.
func TestPolicyCases(t *testing.T) {
	var cases []policyCase
	readYAML(t, "../../policies/testdata/cases.yaml", &cases)
	if len(cases) < 40 {
		t.Fatalf("%d policy cases; the table must keep at least 40", len(cases))
	}
	var base map[string]any
	readYAML(t, "../../policies/testdata/base.yaml", &base)
	ms := builtins(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if seen[c.Name] {
				t.Fatalf("case name %q used twice", c.Name)
			}
			seen[c.Name] = true
			in := deepCopy(t, base)
			for _, p := range c.Delete {
				if err := edit(in, p, nil, true); err != nil {
					t.Fatalf("delete %s: %v", p, err)
				}
			}
			keys := make([]string, 0, len(c.Set))
			for k := range c.Set {
				keys = append(keys, k)
			}
			slices.Sort(keys) // a whole object before a field in it
			for _, k := range keys {
				if err := edit(in, k, c.Set[k], false); err != nil {
					t.Fatalf("set %s: %v", k, err)
				}
			}
			mods := slices.Clone(ms)
			if c.Policy != "" {
				mods = append(mods, rego.Module{Path: "user/case.rego", Source: []byte(c.Policy)})
			}
			opts := rego.Options{Warn: c.Options.Warn, Disable: c.Options.Disable, Now: func() time.Time { return caseNow }}
			if c.Options.Timeout != "" {
				d, err := time.ParseDuration(c.Options.Timeout)
				if err != nil {
					t.Fatal(err)
				}
				opts.Timeout = d
			}
			e, err := rego.New(ctx, mods, opts)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			d := e.DecideJSON(ctx, raw)
			if d.Outcome != c.Want {
				t.Errorf("outcome %s, want %s; deny %v", d.Outcome, c.Want, d.Deny)
			}
			if got := policyNames(d.Deny); !slices.Equal(got, sortedCopy(c.Deny)) {
				t.Errorf("denied by %v, want %v: %v", got, sortedCopy(c.Deny), d.Deny)
			}
			if got := policyNames(d.Warn); !slices.Equal(got, sortedCopy(c.Warn)) {
				t.Errorf("warned by %v, want %v: %v", got, sortedCopy(c.Warn), d.Warn)
			}
			if c.Msg != "" && !anyMsg(d, c.Msg) {
				t.Errorf("no message contains %q: deny %v, warn %v", c.Msg, d.Deny, d.Warn)
			}
			if d.Allow != (d.Outcome == gate.Pass) {
				t.Errorf("allow %t with outcome %s", d.Allow, d.Outcome)
			}
		})
	}
}

func anyMsg(d *gate.Decision, s string) bool {
	for _, r := range append(slices.Clone(d.Deny), d.Warn...) {
		if strings.Contains(r.Msg, s) {
			return true
		}
	}
	return false
}

func policyNames(rs []gate.Reason) []string {
	out := []string{}
	for _, r := range rs {
		if !slices.Contains(out, r.Policy) {
			out = append(out, r.Policy)
		}
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return out
}

func deepCopy(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// edit sets (or deletes) the value at path: keys separated by "/" when
// the path has one, else by "."; numbers index arrays; a last "+"
// appends.
func edit(root map[string]any, path string, val any, del bool) error {
	sep := "."
	if strings.Contains(path, "/") {
		sep = "/"
	}
	parts := strings.Split(path, sep)
	var cur any = root
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if del {
					if _, ok := c[p]; !ok {
						return os.ErrNotExist
					}
					delete(c, p)
				} else {
					c[p] = normalise(val)
				}
				return nil
			}
			next, ok := c[p]
			if !ok {
				next = map[string]any{}
				c[p] = next
			}
			if p2 := parts[i+1]; p2 == "+" {
				arr, _ := next.([]any)
				c[p] = append(arr, normalise(val))
				return nil
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n >= len(c) {
				return os.ErrNotExist
			}
			if last {
				if del {
					return os.ErrInvalid
				}
				c[n] = normalise(val)
				return nil
			}
			cur = c[n]
		default:
			return os.ErrInvalid
		}
	}
	return nil
}

// normalise turns YAML-decoded values into JSON-decoded ones.
func normalise(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}
