package gate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/gate"
)

// loadSchema compiles docs/schemas/NAME.
func loadSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../docs/schemas/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate reports whether the JSON b matches s.
func validate(t *testing.T, s *jsonschema.Schema, b []byte) error {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(doc)
}

func ptr[T any](v T) *T { return &v }

// fullInput has every field set, the optional ones too, so that a field
// added to the Go types and not to the schema is caught by its
// additionalProperties: false.
func fullInput() *gate.Input {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rel := "sha256:1111"
	meta := func(src string) gate.EvidenceMeta {
		return gate.EvidenceMeta{Digest: "sha256:e1", ReleaseDigest: rel, Source: src, Signed: true, Signer: "release.pub",
			Time: now.Add(-2 * time.Hour), AgeHours: 2, Problem: "a problem"}
	}
	rate := func(v float64) gate.Rate {
		return gate.Rate{Value: v, Lower: v / 2, Upper: 1, Items: 100, Samples: 200}
	}
	eval := gate.EvalEvidence{
		EvidenceMeta: meta(gate.SourceAttestation), Suite: "golden", SuiteDigest: "sha256:5555", Items: 400, Engine: "process",
		PassRate: rate(0.95), SafetyViolations: ptr(rate(0.01)), BenignRefusals: ptr(rate(0.02)),
		LatencyP95Ms: ptr(120.0), CostUSPerRequest: ptr(20.0), Errors: 1,
		Slices: map[string]gate.Rate{"safety": rate(1)},
		Comparison: &gate.Comparison{BaselineDigest: "sha256:3333", Verdict: "non-inferior", Delta: 0.005, Lower: -0.01, Upper: 0.02,
			PValue: 0.04, Margin: 0.02, Items: 400, MinItems: 300, Regressed: []string{"item-1"}},
	}
	bench := gate.BenchEvidence{
		EvidenceMeta: meta(gate.SourceRun), Requests: 200, Failed: 1, ErrorRate: 0.005, TTFTP95Ms: 80, TPOTP95Ms: 12,
		E2EP50Ms: 300, E2EP95Ms: 450, E2EP99Ms: 600, OutputTokensPerRequest: 120,
		GPU: gate.GPU{Status: "ok", Count: 1, PeakMemoryBytes: 8e9},
	}
	fileEval := eval
	fileEval.EvidenceMeta = meta(gate.SourceFile)
	part := gate.Part{Role: "prompt", Path: "prompts/system.md", Digest: "sha256:cccc", Size: 10, MediaType: "text/markdown"}
	return &gate.Input{
		Schema:      gate.InputSchema,
		Stage:       gate.StageAdmission,
		Now:         now,
		Environment: gate.Environment{Name: "prod"},
		Release: gate.Release{
			Ref: "registry.example/support-bot:1.5.0", Digest: rel, Name: "support-bot", Version: "1.5.0",
			Owner: "team-support", License: "Apache-2.0", Parts: []gate.Part{part},
			Annotations: map[string]string{"org.opencontainers.image.source": "https://example.com"},
			DataScopes:  []string{"support-tickets"},
			Datasets:    []gate.Dataset{{Name: "support-tickets", License: "CC-BY-4.0", Digest: "sha256:dada"}},
			BaseModel:   "registry.example/base/llama@sha256:2222",
			Model:       &gate.ModelFacts{Format: "gguf", Architecture: "llama", ParamSize: "8B", Precision: "Q4_K_M"},
		},
		Signatures: gate.Signatures{Verified: true, Keys: []gate.Signer{{Name: "release.pub", KeyID: "abc", Layout: "bundle"}},
			Problems: []string{"one signature by an unknown key"}},
		Evals: []gate.EvalEvidence{eval, fileEval},
		Bench: []gate.BenchEvidence{bench},
		Baseline: &gate.Baseline{Ref: "registry.example/support-bot:prod", Digest: "sha256:3333",
			Parts: []gate.Part{part}, Evals: []gate.EvalEvidence{eval}, Bench: []gate.BenchEvidence{bench}},
		Changes: gate.Changes{FirstRelease: false, Parts: []gate.PartChange{
			{Role: "prompt", Path: "prompts/system.md", Change: gate.ChangeModified, From: "sha256:c0c0", To: "sha256:cccc"},
			{Role: "safety", Path: "safety.yaml", Change: gate.ChangeAdded, To: "sha256:dddd"},
			{Role: "tokenizer", Path: "tokenizer.json", Change: gate.ChangeRemoved, From: "sha256:bbbb"},
		}, Roles: []string{"prompt", "safety", "tokenizer"}, PromptOnly: true},
		SLO: gate.SLO{
			LatencyP95Ms: ptr(800.0), TTFTP95Ms: ptr(200.0), ErrorRate: ptr(0.01), CostUSPerRequest: ptr(50.0),
			QualityPassRate: ptr(0.9), SafetyViolationRate: ptr(0.05),
			Tokens:       &gate.TokenLimits{OutputPerRequest: ptr(256.0)},
			GPU:          &gate.GPULimits{Count: ptr(2), MemoryBytes: ptr(int64(24e9))},
			Budgets:      map[string]gate.Budget{"tokens_per_day": {Limit: 1e9, Used: 5e8, Projected: 1e8, MinHeadroom: 0.1}},
			FeatureFlags: map[string]bool{"strict": true},
			Metrics:      map[string]gate.Limit{"eval.golden.pass_rate": {Min: ptr(0.9), Max: ptr(1.0)}},
		},
		Rules: gate.Rules{
			MaxEvidenceAgeHours: 168, RequiredSuites: []string{"golden"}, PromptOnlySuites: []string{"smoke"},
			RequireBench: true, NonInferiority: true, Licenses: []string{"Apache-2.0"}, DataScopes: []string{"support-tickets"},
			DataDeny:         []gate.DataRule{{Model: "support-*", Dataset: "payments-raw", Reason: "card data"}},
			ApprovalRequired: []string{"safety", "tokenizer"},
		},
		Approvals: []gate.Approval{{By: "alice@example.com", For: []string{"safety"}, Reason: "stricter refusals", Ticket: "SEC-1", Subject: "sha256:1111",
			Expires: now.Add(7 * 24 * time.Hour)}},
		Metrics: map[string]float64{"eval.golden.pass_rate": 0.95, "bench.e2e_p95_ms": 450},
		Admission: &gate.Admission{Namespace: "prod-support", Kind: "apps/v1/Deployment", Name: "support-bot", Operation: "CREATE",
			User: "system:serviceaccount:argocd:argocd-application-controller", Groups: []string{"system:serviceaccounts"},
			Field: "spec.template.spec.containers[0].image", Mode: "enforce", Verdict: true},
	}
}

func TestBaseInputMatchesSchema(t *testing.T) {
	sch := loadSchema(t, "gate-input.v1.json")
	y, err := os.ReadFile("../policies/testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, sch, b); err != nil {
		t.Fatalf("policies/testdata/base.yaml does not match docs/schemas/gate-input.v1.json: %v", err)
	}
	// And it reads as a gate.Input.
	var in gate.Input
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	if in.Schema != gate.InputSchema || in.Release.Name != "support-bot" {
		t.Errorf("base.yaml read as %+v", in)
	}
}

func TestInputMatchesSchema(t *testing.T) {
	sch := loadSchema(t, "gate-input.v1.json")
	full, err := json.Marshal(fullInput())
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, sch, full); err != nil {
		t.Fatalf("the full input does not match docs/schemas/gate-input.v1.json: %v\n%s", err, full)
	}

	// A minimal input, as the builder makes it: no baseline, empty
	// slices and maps rather than nil ones.
	minimal := &gate.Input{
		Schema: gate.InputSchema, Stage: gate.StageCI, Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Environment: gate.Environment{Name: "staging"},
		Release: gate.Release{Ref: "r", Digest: "sha256:1", Name: "n", Version: "1", Parts: []gate.Part{},
			Annotations: map[string]string{}, DataScopes: []string{}, Datasets: []gate.Dataset{}},
		Signatures: gate.Signatures{Keys: []gate.Signer{}, Problems: []string{}},
		Evals:      []gate.EvalEvidence{},
		Bench:      []gate.BenchEvidence{},
		Changes:    gate.Changes{FirstRelease: true, Parts: []gate.PartChange{}, Roles: []string{}},
		Rules:      gate.Rules{RequiredSuites: []string{}, ApprovalRequired: []string{}},
		Approvals:  []gate.Approval{},
		Metrics:    map[string]float64{},
	}
	b, err := json.Marshal(minimal)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, sch, b); err != nil {
		t.Fatalf("the minimal input does not match docs/schemas/gate-input.v1.json: %v\n%s", err, b)
	}

	// The schema is not a rubber stamp: each of these edits of the full
	// input is rejected.
	obj := func(v any) map[string]any { return v.(map[string]any) }
	first := func(v any) map[string]any { return v.([]any)[0].(map[string]any) }
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"unknown top-level field", func(m map[string]any) { m["verdict"] = "pass" }},
		{"wrong schema", func(m map[string]any) { m["schema"] = "https://airlock.dev/gate/input/v2" }},
		{"stage prod", func(m map[string]any) { m["stage"] = "prod" }},
		{"pass rate as a string", func(m map[string]any) { obj(first(m["evals"])["pass_rate"])["value"] = "0.95" }},
		{"pass rate above 1", func(m map[string]any) { obj(first(m["evals"])["pass_rate"])["value"] = 1.5 }},
		{"evidence source email", func(m map[string]any) { first(m["bench"])["source"] = "email" }},
		{"unknown evidence field", func(m map[string]any) { first(m["evals"])["trusted"] = true }},
		{"part change renamed", func(m map[string]any) { first(obj(m["changes"])["parts"])["change"] = "renamed" }},
		{"no release digest", func(m map[string]any) { delete(obj(m["release"]), "digest") }},
		{"approval without by", func(m map[string]any) { delete(first(m["approvals"]), "by") }},
		{"no approvals", func(m map[string]any) { delete(m, "approvals") }},
		{"now not a string", func(m map[string]any) { m["now"] = 1764590400 }},
		{"admission operation DELETE", func(m map[string]any) { m["admission"].(map[string]any)["operation"] = "DELETE" }},
		{"admission without a namespace", func(m map[string]any) { delete(m["admission"].(map[string]any), "namespace") }},
		{"metric not a number", func(m map[string]any) { obj(m["metrics"])["bench.e2e_p95_ms"] = "450" }},
		{"budget without limit", func(m map[string]any) {
			delete(obj(obj(obj(m["slo"])["budgets"])["tokens_per_day"]), "limit")
		}},
		{"unknown slo field", func(m map[string]any) { obj(m["slo"])["p99_ms"] = 900 }},
		{"annotation not a string", func(m map[string]any) { obj(obj(m["release"])["annotations"])["n"] = 1 }},
		{"comparison verdict", func(m map[string]any) { obj(first(m["evals"])["comparison"])["verdict"] = "pass" }},
	} {
		var m map[string]any
		if err := json.Unmarshal(full, &m); err != nil {
			t.Fatal(err)
		}
		tc.mutate(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if validate(t, sch, b) == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestVerdictMatchesSchema(t *testing.T) {
	sch := loadSchema(t, "verdict.v1.json")
	in := fullInput()
	digest, err := in.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d := &gate.Decision{
		ID: "d-1", Time: in.Now, Environment: in.Environment.Name, Digest: in.Release.Digest, Revision: "sha256:9999",
		InputDigest: digest, Outcome: gate.Fail, Allow: false,
		Deny:     []gate.Reason{{Policy: "approvals", Rule: "deny", Msg: "safety changed without approval", Remediation: "ask security"}},
		Warn:     []gate.Reason{{Policy: "slo", Rule: "deny", Msg: "latency close to its limit", Demoted: true}},
		Policies: []string{"approvals", "slo"}, DurationMs: 3,
	}
	v := gate.NewVerdict(d, in, 24*time.Hour)
	v.Extra = map[string]any{"ci_run": "https://ci.example/1"}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, sch, b); err != nil {
		t.Fatalf("the verdict does not match docs/schemas/verdict.v1.json: %v\n%s", err, b)
	}
	if len(v.Evidence) != 3 || v.Baseline == nil || len(v.Approvals) != 1 {
		t.Errorf("verdict %s lacks evidence, baseline or approvals", b)
	}

	// A pass with no baseline, approvals or reasons.
	in.Baseline, in.Approvals = nil, []gate.Approval{}
	d.Outcome, d.Allow, d.Deny, d.Warn = gate.Pass, true, []gate.Reason{}, []gate.Reason{}
	b, err = json.Marshal(gate.NewVerdict(d, in, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, sch, b); err != nil {
		t.Fatalf("the pass verdict does not match docs/schemas/verdict.v1.json: %v\n%s", err, b)
	}

	for name, mutate := range map[string]func(m map[string]any){
		"outcome maybe":    func(m map[string]any) { m["outcome"] = "maybe" },
		"wrong schema":     func(m map[string]any) { m["schema"] = gate.InputSchema },
		"no expires":       func(m map[string]any) { delete(m, "expires") },
		"unknown field":    func(m map[string]any) { m["allow"] = true },
		"subject digest":   func(m map[string]any) { delete(m["subject"].(map[string]any), "digest") },
		"evidence kind":    func(m map[string]any) { m["evidence"].([]any)[0].(map[string]any)["kind"] = "vibes" },
		"environment list": func(m map[string]any) { m["environment"] = []any{"prod"} },
	} {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		mb, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if validate(t, sch, mb) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
