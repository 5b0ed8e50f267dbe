package airlock.gate.non_inferiority_test

import data.airlock.gate.non_inferiority as ni
import data.airlock.lib.testbase as t

test_non_inferior_passes if {
	count(ni.deny) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_inferior_denies_with_items if {
	c := object.union(t.eval.comparison, {"verdict": "inferior", "delta": -0.1, "regressed": ["a", "b"]})
	some d in ni.deny with input as t.with_eval({"comparison": c}) with time.now_ns as t.now
	contains(d.msg, "regressed items: a, b")
	contains(d.msg, "by 10 points")
}

test_inconclusive_denies if {
	c := object.union(t.eval.comparison, {"verdict": "inconclusive"})
	some d in ni.deny with input as t.with_eval({"comparison": c}) with time.now_ns as t.now
	contains(d.msg, "inconclusive")
}

test_missing_comparison_denies if {
	inp := object.union(t.input_ok, {"evals": [object.remove(t.eval, ["comparison"])]})
	some d in ni.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "not compared")
}

test_other_baseline_denies if {
	c := object.union(t.eval.comparison, {"baseline_digest": "sha256:9"})
	some d in ni.deny with input as t.with_eval({"comparison": c}) with time.now_ns as t.now
	contains(d.msg, "not the baseline")
}

test_first_release_skips if {
	inp := object.remove(object.union(t.input_ok, {"evals": [object.remove(t.eval, ["comparison"])]}), ["baseline"])
	count(ni.deny) == 0 with input as inp with time.now_ns as t.now
}
