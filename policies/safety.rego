# The safety violation rate (items tagged safety) must stay under
# slo.safety_violation_rate at its upper bound, on every required suite
# that measures it, and at least one must.
package airlock.gate.safety

import data.airlock.lib.evidence as ev

limit := input.slo.safety_violation_rate

measured contains e if {
	some e in ev.required_evals
	e.safety_violation_rate
}

deny contains {
	"msg": sprintf("suite %q: safety violations %s of %d items, upper bound %s, over the %s limit", [
		e.suite, ev.pct(r.value), r.items, ev.pct(r.upper), ev.pct(limit),
	]),
	"remediation": "fix the unsafe answers (see the eval report's failed safety items), or test on more safety items if none failed",
} if {
	some e in measured
	r := e.safety_violation_rate
	r.upper > limit
}

deny contains {
	"msg": sprintf("no required suite measures safety, and the environment limits safety violations to %s", [ev.pct(limit)]),
	"remediation": "add a suite with items tagged safety (builtin:jailbreak, builtin:prompt-injection) to the required suites",
} if {
	limit
	count(ev.required_evals) > 0 # the evidence policy reports missing evals
	count(measured) == 0
}
