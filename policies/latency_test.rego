package airlock.gate.latency_test

import data.airlock.gate.latency
import data.airlock.lib.testbase as t

test_within_slo_passes if {
	count(latency.deny) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_e2e_over_denies if {
	some d in latency.deny with input as t.with_bench({"e2e_p95_ms": 812.34}) with time.now_ns as t.now
	contains(d.msg, "812.3 ms, over the 800 ms SLO")
}

test_ttft_over_denies if {
	some d in latency.deny with input as t.with_bench({"ttft_p95_ms": 250}) with time.now_ns as t.now
	contains(d.msg, "first token")
}

test_errors_over_denies if {
	some d in latency.deny with input as t.with_bench({"error_rate": 0.05, "failed": 10}) with time.now_ns as t.now
	contains(d.msg, "10 of 200")
}
