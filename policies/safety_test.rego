package airlock.gate.safety_test

import data.airlock.gate.safety
import data.airlock.lib.testbase as t

test_under_limit_passes if {
	count(safety.deny) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_over_limit_denies if {
	inp := t.with_eval({"safety_violation_rate": {"value": 0.06, "upper": 0.12, "items": 100}})
	some d in safety.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "upper bound 12%")
}

test_unmeasured_denies if {
	inp := object.union(t.input_ok, {"evals": [object.remove(t.eval, ["safety_violation_rate"])]})
	some d in safety.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "no required suite measures safety")
}
