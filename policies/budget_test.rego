package airlock.gate.budget_test

import data.airlock.gate.budget
import data.airlock.lib.testbase as t

test_headroom_passes if {
	count(budget.deny) == 0 with input as t.input_ok with time.now_ns as t.now
	count(budget.warn) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_no_headroom_denies if {
	inp := object.union(t.input_ok, {"slo": {"budgets": {"gpu_hours": {"used": 850}}}})
	some d in budget.deny with input as inp with time.now_ns as t.now
	contains(d.msg, `budget "gpu_hours"`)
}

test_thin_headroom_warns if {
	inp := object.union(t.input_ok, {"slo": {"budgets": {"gpu_hours": {"used": 750}}}})
	count(budget.deny) == 0 with input as inp with time.now_ns as t.now
	count(budget.warn) == 1 with input as inp with time.now_ns as t.now
}

test_zero_limit_denies if {
	inp := object.union(t.input_ok, {"slo": {"budgets": {"gpu_hours": {"limit": 0, "used": 0, "projected": 0}}}})
	some d in budget.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "no positive limit")
}

test_tokens_over_denies if {
	some d in budget.deny with input as t.with_bench({"output_tokens_per_request": 300}) with time.now_ns as t.now
	contains(d.msg, "300 output tokens")
}

test_gpus_over_denies if {
	some d in budget.deny with input as t.with_bench({"gpu": {"count": 4}}) with time.now_ns as t.now
	contains(d.msg, "4 GPUs")
}

test_gpu_memory_over_denies if {
	some d in budget.deny with input as t.with_bench({"gpu": {"peak_memory_bytes": 30000000000}}) with time.now_ns as t.now
	contains(d.msg, "peak GPU memory")
}
