# A passing input the policies' Rego tests start from (object.union merges
# a test's changes into it), and the clock they decide at.
package airlock.lib.testbase

now := time.parse_rfc3339_ns("2026-12-01T12:00:00Z")

digest := "sha256:1111111111111111111111111111111111111111111111111111111111111111"

baseline := "sha256:3333333333333333333333333333333333333333333333333333333333333333"

eval := {
	"digest": "sha256:e1", "release_digest": digest, "source": "attestation", "signed": true,
	"time": "2026-12-01T10:00:00Z", "suite": "golden", "items": 400, "errors": 0, "slices": {},
	"pass_rate": {"value": 0.95, "lower": 0.925, "upper": 0.967, "items": 400, "samples": 400},
	"safety_violation_rate": {"value": 0, "lower": 0, "upper": 0.03, "items": 100, "samples": 100},
	"cost_us_per_request": 20,
	"comparison": {
		"baseline_digest": baseline, "verdict": "non-inferior", "delta": 0.005, "lower": -0.01, "upper": 0.02,
		"p_value": 0.5, "margin": 0.02, "items": 400, "min_items": 300, "regressed": [],
	},
}

bench := {
	"digest": "sha256:b1", "release_digest": digest, "source": "attestation", "signed": true,
	"time": "2026-12-01T09:00:00Z", "requests": 200, "failed": 0, "error_rate": 0,
	"ttft_p95_ms": 80, "e2e_p95_ms": 450, "output_tokens_per_request": 120,
	"gpu": {"status": "ok", "count": 1, "peak_memory_bytes": 8000000000},
}

input_ok := {
	"environment": {"name": "prod"},
	"release": {
		"digest": digest, "name": "support-bot", "license": "Apache-2.0", "owner": "team-support",
		"data_scopes": ["support-tickets"], "datasets": [{"name": "support-tickets", "license": "MIT"}],
	},
	"signatures": {"verified": true, "keys": [{"name": "release.pub"}], "problems": []},
	"evals": [eval],
	"bench": [bench],
	"baseline": {"digest": baseline},
	"changes": {"parts": [{"role": "safety", "path": "safety.yaml", "change": "modified"}], "roles": ["safety"], "prompt_only": false},
	"slo": {
		"latency_p95_ms": 800, "ttft_p95_ms": 200, "error_rate": 0.01, "cost_us_per_request": 50,
		"quality_pass_rate": 0.9, "safety_violation_rate": 0.05,
		"tokens": {"output_per_request": 256}, "gpu": {"count": 2, "memory_bytes": 24000000000},
		"budgets": {"gpu_hours": {"limit": 1000, "used": 500, "projected": 100, "min_headroom": 0.1}},
		"metrics": {"eval.golden.pass_rate": {"min": 0.9}},
	},
	"rules": {
		"max_evidence_age_hours": 168, "required_suites": ["golden"], "prompt_only_suites": ["smoke"],
		"require_bench": true, "non_inferiority": true, "licenses": ["Apache-2.0", "MIT"],
		"data_scopes": ["support-tickets"], "approval_required": ["safety", "tokenizer"],
		"data_deny": [{"model": "support-*", "dataset": "payments-raw"}],
	},
	"approvals": [{"by": "alice@example.com", "for": ["safety"], "expires": "2026-12-08T00:00:00Z"}],
	"metrics": {"eval.golden.pass_rate": 0.95},
}

with_eval(patch) := object.union(input_ok, {"evals": [object.union(eval, patch)]})

with_bench(patch) := object.union(input_ok, {"bench": [object.union(bench, patch)]})
