package airlock.gate.quality_test

import data.airlock.gate.quality
import data.airlock.lib.testbase as t

test_above_target_passes if {
	count(quality.deny) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_below_target_denies if {
	inp := t.with_eval({"pass_rate": {"value": 0.8, "lower": 0.76, "upper": 0.84}})
	some d in quality.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "upper bound is below the 90% target")
}

test_straddling_interval_denies if {
	inp := t.with_eval({"pass_rate": {"value": 0.91, "lower": 0.85, "upper": 0.95}})
	some d in quality.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "does not show")
}

test_no_target_no_rule if {
	inp := t.with_eval({"pass_rate": {"value": 0.15, "lower": 0.1, "upper": 0.2}})
	count(quality.deny) == 0 with input as inp with input.slo as {} with time.now_ns as t.now
}
