# Budgets keep headroom: after what is used and what this release is
# projected to add, at least min_headroom of each limit stays free. Token
# and GPU limits are checked against the benchmark.
package airlock.gate.budget

import data.airlock.lib.evidence as ev

headroom(b) := (b.limit - b.used) - b.projected

deny contains {
	"msg": sprintf("budget %q: %v used + %v projected leaves %v of %v, under the %s headroom required", [
		name, b.used, b.projected, headroom(b), b.limit, ev.pct(b.min_headroom),
	]),
	"remediation": "raise the budget, free some of it, or lower this release's projected use",
} if {
	some name, b in input.slo.budgets
	headroom(b) < b.min_headroom * b.limit
}

deny contains {
	"msg": sprintf("budget %q has no positive limit", [name]),
	"remediation": "set limit to the budget's size",
} if {
	some name, b in input.slo.budgets
	b.limit <= 0
}

warn contains sprintf("budget %q: headroom %v is under twice the required %s", [name, headroom(b), ev.pct(b.min_headroom)]) if {
	some name, b in input.slo.budgets
	headroom(b) >= b.min_headroom * b.limit
	headroom(b) < (2 * b.min_headroom) * b.limit
}

deny contains {
	"msg": sprintf("%v output tokens per request on average, over the %v budget", [ev.n1(ev.bench.output_tokens_per_request), input.slo.tokens.output_per_request]),
	"remediation": "lower max_output_tokens in the safety settings, or ask for shorter answers in the prompt",
} if {
	ev.bench.output_tokens_per_request > input.slo.tokens.output_per_request
}

deny contains {
	"msg": sprintf("the benchmark used %d GPUs, over the %d allowed", [ev.bench.gpu.count, input.slo.gpu.count]),
	"remediation": "serve the release on fewer GPUs",
} if {
	ev.bench.gpu.count > input.slo.gpu.count
}

deny contains {
	"msg": sprintf("peak GPU memory %d bytes, over the %d allowed", [ev.bench.gpu.peak_memory_bytes, input.slo.gpu.memory_bytes]),
	"remediation": "use a smaller quantisation or a shorter context",
} if {
	ev.bench.gpu.peak_memory_bytes > input.slo.gpu.memory_bytes
}
