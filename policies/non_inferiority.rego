# With a baseline and rules.non_inferiority, each required suite's paired
# comparison against that baseline must show the candidate non-inferior at
# its margin. Inconclusive and insufficient evidence are not passes.
package airlock.gate.non_inferiority

import data.airlock.lib.evidence as ev

enabled if {
	input.rules.non_inferiority
	input.baseline
}

deny contains {
	"msg": sprintf("suite %q was not compared with the baseline %s", [e.suite, input.baseline.digest]),
	"remediation": "give the eval job compare: true so it runs the paired comparison against the baseline",
} if {
	enabled
	some e in ev.required_evals
	not e.comparison
}

deny contains {
	"msg": sprintf("suite %q was compared with %s, not the baseline %s", [e.suite, e.comparison.baseline_digest, input.baseline.digest]),
	"remediation": "run the comparison against the release the candidate replaces",
} if {
	enabled
	some e in ev.required_evals
	e.comparison.baseline_digest != input.baseline.digest
}

deny contains {
	"msg": sprintf("suite %q: worse than the baseline by %v points (interval %v to %v, margin %v, McNemar p = %v); regressed items: %s", [
		e.suite, ev.n1(-100 * c.delta), ev.n1(100 * c.lower), ev.n1(100 * c.upper), ev.n1(100 * c.margin), ev.n3(c.p_value), concat(", ", c.regressed),
	]),
	"remediation": "fix the regressed items, or widen the margin in the eval job if this loss is acceptable",
} if {
	enabled
	some e in ev.required_evals
	c := e.comparison
	c.baseline_digest == input.baseline.digest
	c.verdict == "inferior"
}

deny contains {
	"msg": sprintf("suite %q: the comparison with the baseline is %s (%d items, %d needed for the %v-point margin)", [
		e.suite, c.verdict, c.items, c.min_items, ev.n1(100 * c.margin),
	]),
	"remediation": "evaluate on more items so the paired test can decide",
} if {
	enabled
	some e in ev.required_evals
	c := e.comparison
	c.baseline_digest == input.baseline.digest
	c.verdict in {"inconclusive", "insufficient-evidence"}
}
