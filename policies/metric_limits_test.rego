package airlock.gate.metric_limits_test

import data.airlock.gate.metric_limits as ml
import data.airlock.lib.testbase as t

test_within_limits_passes if {
	count(ml.deny) == 0 with input as t.input_ok
}

test_under_min_denies if {
	some d in ml.deny with input as object.union(t.input_ok, {"metrics": {"eval.golden.pass_rate": 0.85}})
	contains(d.msg, "under its minimum 0.9")
}

test_over_max_denies if {
	inp := object.union(t.input_ok, {"slo": {"metrics": {"eval.golden.pass_rate": {"max": 0.9}}}})
	some d in ml.deny with input as inp
	contains(d.msg, "over its maximum")
}

test_unmeasured_denies if {
	inp := object.union(t.input_ok, {"slo": {"metrics": {"bench.ttft_p99_ms": {"max": 100}}}})
	some d in ml.deny with input as inp
	contains(d.msg, "not measured")
}
