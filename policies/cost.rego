# Cost per request, measured by the evals with token prices, must stay
# within slo.cost_us_per_request (millionths of a dollar).
package airlock.gate.cost

import data.airlock.lib.evidence as ev

limit := input.slo.cost_us_per_request

measured contains e if {
	some e in ev.required_evals
	e.cost_us_per_request
}

deny contains {
	"msg": sprintf("suite %q costs %v µ$ per request, over the %v µ$ limit", [e.suite, ev.n1(e.cost_us_per_request), limit]),
	"remediation": "shorten prompts or outputs, or use a cheaper model",
} if {
	some e in measured
	e.cost_us_per_request > limit
}

deny contains {
	"msg": sprintf("the environment limits cost to %v µ$ per request, and no required suite measured cost", [limit]),
	"remediation": "run the evals with --prices (token prices per model) so they measure cost",
} if {
	limit
	count(ev.required_evals) > 0 # the evidence policy reports missing evals
	count(measured) == 0
}
