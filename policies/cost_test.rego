package airlock.gate.cost_test

import data.airlock.gate.cost
import data.airlock.lib.testbase as t

test_within_limit_passes if {
	count(cost.deny) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_over_limit_denies if {
	some d in cost.deny with input as t.with_eval({"cost_us_per_request": 60.25}) with time.now_ns as t.now
	contains(d.msg, "60.3 µ$")
}

test_unmeasured_denies if {
	inp := object.union(t.input_ok, {"evals": [object.remove(t.eval, ["cost_us_per_request"])]})
	some d in cost.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "no required suite measured cost")
}
