# Each required suite's pass rate must reach slo.quality_pass_rate, shown
# by its interval: a lower bound below the target is not a pass, even when
# the point estimate is above it.
package airlock.gate.quality

import data.airlock.lib.evidence as ev

target := input.slo.quality_pass_rate

deny contains {
	"msg": sprintf("suite %q passes %s (interval %s to %s, %d items): its upper bound is below the %s target", [
		e.suite, ev.pct(e.pass_rate.value), ev.pct(e.pass_rate.lower), ev.pct(e.pass_rate.upper), e.items, ev.pct(target),
	]),
	"remediation": "fix the regression; the release cannot reach the target on this suite",
} if {
	some e in ev.required_evals
	e.pass_rate.upper < target
}

deny contains {
	"msg": sprintf("suite %q passes %s, but its interval (%s to %s, %d items) does not show the %s target", [
		e.suite, ev.pct(e.pass_rate.value), ev.pct(e.pass_rate.lower), ev.pct(e.pass_rate.upper), e.items, ev.pct(target),
	]),
	"remediation": "evaluate on more items (or more samples per item) so the interval narrows",
} if {
	some e in ev.required_evals
	e.pass_rate.upper >= target
	e.pass_rate.lower < target
}
