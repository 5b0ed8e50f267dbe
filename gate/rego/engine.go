package rego

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/airlock-dev/airlock/gate"
)

// Root is the package every policy lives under: a policy named NAME is
// package airlock.gate.NAME, and its deny and warn rules are collected.
// Shared helpers may live under airlock.lib.
const Root = "airlock.gate"

// EngineName is the Reason.Policy of the evaluation itself.
const EngineName = "engine"

// Module is one Rego source file.
type Module struct {
	// Path names the file in messages and in the revision.
	Path   string
	Source []byte
	// Builtin marks Airlock's own policies (policies/).
	Builtin bool
}

// IsTest reports whether the module is a test file (NAME_test.rego).
func (m Module) IsTest() bool { return strings.HasSuffix(m.Path, "_test.rego") }

// Options are an engine's modes. The zero value enforces every loaded
// policy with a two-second timeout.
type Options struct {
	// Disable turns built-in policies off by name.
	Disable []string
	// Warn demotes the named policies' denies to warnings.
	Warn []string
	// DryRun decides but never fails.
	DryRun bool
	// Timeout bounds one evaluation (default 2s).
	Timeout time.Duration
	// Now is the clock (default time.Now); Rego's time.now_ns() sees it.
	Now func() time.Time
	// Logger gets one line per decision at debug level (default: none).
	Logger *slog.Logger
}

// Engine is a prepared policy set: parse and compile happen once, in New;
// Decide is safe for concurrent use.
type Engine struct {
	pq       rego.PreparedEvalQuery
	bindings []string // query variables: one per policy's deny or warn
	revision string
	policies []string
	builtin  map[string]bool
	warn     map[string]bool
	opts     Options
}

// LoadFS reads the .rego files of fsys (recursively), as built-in
// modules when builtin is set.
func LoadFS(fsys fs.FS, builtin bool) ([]Module, error) {
	var ms []Module
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ms = append(ms, Module{Path: p, Source: b, Builtin: builtin})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading policies: %w", err)
	}
	return ms, nil
}

// LoadDir reads the user policies in dir; paths are named dir-relative
// under the directory's name. A directory with no .rego file is an error,
// so that a mistyped path is not a silently empty policy set.
func LoadDir(dir string) ([]Module, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("reading policies: %w", err)
	}
	if !st.IsDir() {
		b, err := os.ReadFile(dir)
		if err != nil {
			return nil, fmt.Errorf("reading policies: %w", err)
		}
		return []Module{{Path: filepath.Base(dir), Source: b}}, nil
	}
	ms, err := LoadFS(os.DirFS(dir), false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("reading policies: %s has no .rego file", dir)
	}
	for i := range ms {
		ms[i].Path = filepath.ToSlash(filepath.Join(filepath.Base(filepath.Clean(dir)), ms[i].Path))
	}
	return ms, nil
}

// LoadBundle reads the .rego files of an OPA bundle (a .tar.gz as opa
// build writes it).
func LoadBundle(r io.Reader, name string) ([]Module, error) {
	b, err := bundle.NewReader(r).WithSkipBundleVerification(true).Read()
	if err != nil {
		return nil, fmt.Errorf("reading policy bundle %s: %w", name, err)
	}
	var ms []Module
	for _, m := range b.Modules {
		ms = append(ms, Module{Path: name + "/" + strings.TrimPrefix(m.Path, "/"), Source: m.Raw})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("reading policy bundle %s: no .rego module", name)
	}
	return ms, nil
}

// PolicyName is the policy a module belongs to: NAME of package
// airlock.gate.NAME, "" for a helper under airlock.lib.
func PolicyName(m *ast.Module) (string, error) {
	p := strings.TrimPrefix(m.Package.Path.String(), "data.")
	if p == "airlock.lib" || strings.HasPrefix(p, "airlock.lib.") {
		return "", nil
	}
	name, ok := strings.CutPrefix(p, Root+".")
	if !ok || name == "" || strings.Contains(name, ".") || strings.ContainsAny(name, `"[]`) {
		return "", fmt.Errorf("package %s: a policy is package %s.NAME (one segment), a helper airlock.lib.…", p, Root)
	}
	return name, nil
}

// Parse parses modules as Rego v1.
func Parse(ms []Module) (map[string]*ast.Module, error) {
	out := map[string]*ast.Module{}
	var errs []error
	for _, m := range ms {
		if _, dup := out[m.Path]; dup {
			errs = append(errs, fmt.Errorf("%s: loaded twice", m.Path))
			continue
		}
		pm, err := ast.ParseModuleWithOpts(m.Path, string(m.Source), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[m.Path] = pm
	}
	return out, errors.Join(errs...)
}

// Revision is the digest of a policy set and its modes: the modules (path
// and source, sorted by path) and the disabled and demoted names. Any
// change to what decides changes it.
func Revision(ms []Module, opts Options) string {
	sorted := slices.Clone(ms)
	slices.SortFunc(sorted, func(a, b Module) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, m := range sorted {
		fmt.Fprintf(h, "%s\x00%d\x00", m.Path, len(m.Source))
		h.Write(m.Source)
	}
	d, w := slices.Clone(opts.Disable), slices.Clone(opts.Warn)
	slices.Sort(d)
	slices.Sort(w)
	fmt.Fprintf(h, "disable=%s\x00warn=%s\x00dryrun=%t", strings.Join(d, ","), strings.Join(w, ","), opts.DryRun)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// capabilities are OPA's built-ins less those that reach outside the
// process: a decision depends on its input and the policies only.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool {
		switch b.Name {
		case "http.send", "net.lookup_ip_addr", "opa.runtime", "trace":
			return true
		}
		return false
	})
	return c
}

// New prepares modules (built-in and user; test modules are left out)
// for evaluation. Disabled built-in policies are not loaded; naming a
// policy that does not exist in Disable or Warn is an error, as is a user
// policy with a built-in's name.
func New(ctx context.Context, ms []Module, opts Options) (*Engine, error) {
	e := &Engine{builtin: map[string]bool{}, warn: map[string]bool{}, opts: opts}
	var use []Module
	names := map[string]bool{}
	parsed, err := Parse(ms)
	if err != nil {
		return nil, fmt.Errorf("parsing policies: %w", err)
	}
	user := map[string]string{}
	for _, m := range ms {
		if m.IsTest() {
			continue
		}
		name, err := PolicyName(parsed[m.Path])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Path, err)
		}
		if name != "" {
			names[name] = true
			if m.Builtin {
				e.builtin[name] = true
			} else {
				user[name] = m.Path
			}
		}
	}
	for name, p := range user {
		if e.builtin[name] {
			return nil, fmt.Errorf("%s: policy %q has a built-in policy's name; choose another package name", p, name)
		}
	}
	for _, n := range opts.Disable {
		if !e.builtin[n] {
			return nil, fmt.Errorf("disable: %q is not a built-in policy (%s)", n, strings.Join(sortedKeys(e.builtin), ", "))
		}
	}
	for _, n := range opts.Warn {
		if !names[n] {
			return nil, fmt.Errorf("warn: %q is not a loaded policy (%s)", n, strings.Join(sortedKeys(names), ", "))
		}
		e.warn[n] = true
	}
	var mods []func(*rego.Rego)
	for _, m := range ms {
		if m.IsTest() {
			continue
		}
		name, _ := PolicyName(parsed[m.Path])
		if m.Builtin && slices.Contains(opts.Disable, name) {
			continue
		}
		use = append(use, m)
		mods = append(mods, rego.ParsedModule(parsed[m.Path]))
		if name != "" && !slices.Contains(e.policies, name) {
			e.policies = append(e.policies, name)
		}
	}
	slices.Sort(e.policies)
	if len(e.policies) == 0 {
		return nil, errors.New("no policy to evaluate: every built-in policy is disabled and no user policy was given")
	}
	e.revision = Revision(use, opts)
	// The query names each policy's deny and warn rules, so evaluation
	// computes only those (and what they use), not every rule of the
	// tree.
	var exprs []string
	for _, m := range use {
		name, _ := PolicyName(parsed[m.Path])
		if name == "" {
			continue
		}
		for _, r := range parsed[m.Path].Rules {
			rule := r.Head.Name.String()
			if len(r.Head.Reference) > 0 {
				rule = r.Head.Reference[0].String()
			}
			if rule != "deny" && rule != "warn" {
				continue
			}
			b := queryVar(name, rule)
			if !slices.Contains(e.bindings, b) {
				e.bindings = append(e.bindings, b)
				exprs = append(exprs, fmt.Sprintf("%s := data.%s.%s.%s", b, Root, name, rule))
			}
		}
	}
	if len(exprs) == 0 {
		return nil, errors.New("no policy defines deny or warn rules")
	}
	args := append([]func(*rego.Rego){
		rego.Query(strings.Join(exprs, "; ")),
		rego.Capabilities(capabilities()),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	}, mods...)
	pq, err := rego.New(args...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compiling policies: %w", err)
	}
	e.pq = pq
	return e, nil
}

// noMetrics keeps OPA from timing the stages of every evaluation.
var noMetrics = metrics.NoOp()

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Revision is the prepared policy set's revision.
func (e *Engine) Revision() string { return e.revision }

// Policies are the names of the policies evaluated.
func (e *Engine) Policies() []string { return slices.Clone(e.policies) }

// Decide evaluates the policies on in. It never returns a passing
// decision by accident: an evaluation error, a timeout, or a policy that
// answers something other than sets of messages denies, with the reason.
func (e *Engine) Decide(ctx context.Context, in *gate.Input) *gate.Decision {
	d := e.start(in.Environment.Name, in.Release.Digest)
	b, err := json.Marshal(in)
	if err != nil {
		return e.fail(d, fmt.Errorf("encoding input: %w", err))
	}
	d.InputDigest = gate.ContentDigest(b)
	v, err := parseValue(b)
	if err != nil {
		return e.fail(d, fmt.Errorf("input is not JSON: %w", err))
	}
	return e.decideValue(ctx, d, v)
}

// DecideJSON evaluates the policies on an input document given as JSON
// (airlock gate --input, and the benchmark).
func (e *Engine) DecideJSON(ctx context.Context, raw []byte) *gate.Decision {
	d := e.start("", "")
	d.InputDigest = gate.ContentDigest(raw)
	v, err := parseValue(raw)
	if err != nil {
		return e.fail(d, fmt.Errorf("input is not JSON: %w", err))
	}
	if obj, ok := v.(ast.Object); ok {
		d.Environment = stringAt(obj, "environment", "name")
		d.Digest = stringAt(obj, "release", "digest")
	}
	return e.decideValue(ctx, d, v)
}

// stringAt reads a string two keys down, "" when it is not one.
func stringAt(obj ast.Object, k1, k2 string) string {
	t := obj.Get(ast.StringTerm(k1))
	if t == nil {
		return ""
	}
	inner, ok := t.Value.(ast.Object)
	if !ok {
		return ""
	}
	if t := inner.Get(ast.StringTerm(k2)); t != nil {
		if s, ok := t.Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}

func (e *Engine) now() time.Time {
	if e.opts.Now != nil {
		return e.opts.Now()
	}
	return time.Now()
}

func (e *Engine) start(env, digest string) *gate.Decision {
	return &gate.Decision{
		ID: newID(), Time: e.now().UTC(), Environment: env, Digest: digest,
		Revision: e.revision, Policies: e.Policies(), Deny: []gate.Reason{}, Warn: []gate.Reason{}, DryRun: e.opts.DryRun,
	}
}

func (e *Engine) decideValue(ctx context.Context, d *gate.Decision, v ast.Value) *gate.Decision {
	start := time.Now()
	defer func() {
		d.DurationMs = float64(time.Since(start).Microseconds()) / 1000
		if l := e.opts.Logger; l != nil {
			l.Debug("decision", "decision_id", d.ID, "outcome", d.Outcome, "digest", d.Digest, "policy_revision", d.Revision, "ms", d.DurationMs)
		}
	}()
	if _, ok := v.(ast.Object); !ok {
		return e.fail(d, errors.New("input is not a JSON object"))
	}
	timeout := e.opts.Timeout
	if timeout <= 0 {
		timeout = gate.DefaultTimeout
	}
	// OPA starts a goroutine per evaluation to watch a cancellable
	// context; an external cancel with a timer and context.AfterFunc does
	// the same without one, which keeps the tail of a decision short.
	cancel := topdown.NewCancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(timeout, func() {
		timedOut.Store(true)
		cancel.Cancel()
	})
	defer timer.Stop()
	defer context.AfterFunc(ctx, cancel.Cancel)()
	rs, err := e.pq.Eval(context.WithoutCancel(ctx), rego.EvalParsedInput(v), rego.EvalTime(d.Time), rego.EvalExternalCancel(cancel),
		rego.EvalMetrics(noMetrics))
	if err != nil {
		switch {
		case timedOut.Load():
			return e.fail(d, fmt.Errorf("policy evaluation did not finish within %s: %w", timeout, err))
		case ctx.Err() != nil:
			return e.fail(d, fmt.Errorf("policy evaluation was stopped: %w: %w", context.Cause(ctx), err))
		}
		return e.fail(d, fmt.Errorf("policy evaluation failed: %w", err))
	}
	if len(rs) != 1 {
		return e.fail(d, fmt.Errorf("policy evaluation returned %d results: a complete deny or warn rule (deny := …) is undefined; use deny contains …", len(rs)))
	}
	var problems []error
	for _, b := range e.bindings {
		name, rule := splitQueryVar(b)
		rs, err := reasons(name, rule, rs[0].Bindings[b])
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, r := range rs {
			switch {
			case rule == "warn":
				d.Warn = append(d.Warn, r)
			case e.warn[name]:
				r.Demoted = true
				d.Warn = append(d.Warn, r)
			default:
				d.Deny = append(d.Deny, r)
			}
		}
	}
	if len(problems) > 0 {
		return e.fail(d, fmt.Errorf("unexpected policy result: %w", errors.Join(problems...)))
	}
	d.Allow = len(d.Deny) == 0
	d.Outcome = gate.Fail
	if d.Allow {
		d.Outcome = gate.Pass
	}
	return d
}

// reasons reads one deny or warn rule's value: absent, or a set of
// strings or of objects with msg (and remediation).
func reasons(policy, rule string, v any) ([]gate.Reason, error) {
	if v == nil {
		return nil, nil
	}
	set, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("policy %s: %s is %s, want a set of messages", policy, rule, kind(v))
	}
	var out []gate.Reason
	for _, m := range set {
		r := gate.Reason{Policy: policy, Rule: rule}
		switch m := m.(type) {
		case string:
			r.Msg = m
		case map[string]any:
			msg, ok := m["msg"].(string)
			if !ok || msg == "" {
				return nil, fmt.Errorf("policy %s: a %s entry has no msg string", policy, rule)
			}
			r.Msg = msg
			if rem, ok := m["remediation"].(string); ok {
				r.Remediation = rem
			}
		default:
			return nil, fmt.Errorf("policy %s: a %s entry is %s, want a string or {msg, remediation}", policy, rule, kind(m))
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b gate.Reason) int { return strings.Compare(a.Msg, b.Msg) })
	return out, nil
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int:
		return "a number"
	case []any:
		return "a set or array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// queryVar names the query variable of a policy's rule: policy names
// are Rego identifiers, so "__" cannot occur at their end.
func queryVar(policy, rule string) string { return "x_" + policy + "__" + rule }

func splitQueryVar(v string) (policy, rule string) {
	s := strings.TrimPrefix(v, "x_")
	i := strings.LastIndex(s, "__")
	return s[:i], s[i+2:]
}

// fail turns an evaluation problem into a denying decision.
func (e *Engine) fail(d *gate.Decision, err error) *gate.Decision {
	d.Allow = false
	d.Outcome = gate.Error
	d.Deny = append(d.Deny, gate.Reason{Policy: EngineName, Rule: "deny", Msg: err.Error(),
		Remediation: "fix the policy or the input; a decision that cannot be taken denies (fail closed)"})
	return d
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
