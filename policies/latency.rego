# The benchmark's end-to-end p95, time-to-first-token p95 and error rate
# must be within the SLO.
package airlock.gate.latency

import data.airlock.lib.evidence as ev

deny contains {
	"msg": sprintf("end-to-end latency p95 is %v ms, over the %v ms SLO (%d requests)", [ev.n1(ev.bench.e2e_p95_ms), input.slo.latency_p95_ms, ev.bench.requests]),
	"remediation": "make the release faster (quantisation, batching, shorter outputs) or agree a new SLO",
} if {
	ev.bench.e2e_p95_ms > input.slo.latency_p95_ms
}

deny contains {
	"msg": sprintf("time to first token p95 is %v ms, over the %v ms SLO", [ev.n1(ev.bench.ttft_p95_ms), input.slo.ttft_p95_ms]),
	"remediation": "reduce prompt processing time (shorter system prompt, prefix caching) or agree a new SLO",
} if {
	ev.bench.ttft_p95_ms > input.slo.ttft_p95_ms
}

deny contains {
	"msg": sprintf("%s of benchmark requests failed (%d of %d), over the %s limit", [
		ev.pct(ev.bench.error_rate), ev.bench.failed, ev.bench.requests, ev.pct(input.slo.error_rate),
	]),
	"remediation": "see the bench report's errors by class",
} if {
	ev.bench.error_rate > input.slo.error_rate
}
