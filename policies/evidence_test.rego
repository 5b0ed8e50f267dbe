package airlock.gate.evidence_test

import data.airlock.gate.evidence
import data.airlock.lib.testbase as t

test_fresh_signed_evidence_passes if {
	count(evidence.deny) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_missing_eval_denies if {
	some d in evidence.deny with input as object.union(t.input_ok, {"evals": []}) with time.now_ns as t.now
	contains(d.msg, `suite "golden"`)
}

test_other_digest_denies if {
	some d in evidence.deny with input as t.with_eval({"release_digest": "sha256:4444"}) with time.now_ns as t.now
	contains(d.msg, "not this release")
}

test_stale_denies if {
	some d in evidence.deny with input as t.with_eval({"time": "2026-11-01T00:00:00Z"}) with time.now_ns as t.now
	contains(d.msg, "hours old")
}

test_unsigned_file_denies if {
	some d in evidence.deny with input as t.with_eval({"signed": false, "source": "file"}) with time.now_ns as t.now
	contains(d.msg, "not signed by a trusted key")
}

test_gate_run_counts if {
	count(evidence.deny) == 0 with input as t.with_eval({"signed": false, "source": "run"}) with time.now_ns as t.now
}

test_malformed_denies if {
	inp := object.union(t.input_ok, {"evals": [t.eval, {"digest": "sha256:0bad", "problem": "not an eval report"}]})
	some d in evidence.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "cannot be read")
}

test_missing_bench_denies if {
	some d in evidence.deny with input as object.union(t.input_ok, {"bench": []}) with time.now_ns as t.now
	contains(d.msg, "no usable benchmark")
}

test_bench_not_required if {
	inp := object.union(t.input_ok, {"bench": [], "rules": {"require_bench": false}})
	count(evidence.deny) == 0 with input as inp with time.now_ns as t.now
}

test_prompt_only_uses_lighter_suite if {
	inp := object.union(t.with_eval({"suite": "smoke"}), {"changes": {"roles": ["prompt"], "prompt_only": true}})
	count(evidence.deny) == 0 with input as inp with time.now_ns as t.now
}

test_half_age_warns if {
	some w in evidence.warn with input as t.with_eval({"time": "2026-11-27T00:00:00Z"}) with time.now_ns as t.now
	contains(w, "older than half")
}
