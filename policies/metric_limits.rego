# slo.metrics bounds any number of input.metrics by name; a bounded metric
# that was not measured denies.
package airlock.gate.metric_limits

deny contains {
	"msg": sprintf("metric %s is %v, under its minimum %v", [name, input.metrics[name], l.min]),
	"remediation": "see the evidence the metric comes from",
} if {
	l := input.slo.metrics[name]
	input.metrics[name] < l.min
}

deny contains {
	"msg": sprintf("metric %s is %v, over its maximum %v", [name, input.metrics[name], l.max]),
	"remediation": "see the evidence the metric comes from",
} if {
	l := input.slo.metrics[name]
	input.metrics[name] > l.max
}

deny contains {
	"msg": sprintf("metric %s has a limit but was not measured", [name]),
	"remediation": "run the eval or bench job that measures it; metric names are listed in docs/gate.md",
} if {
	some name in unmeasured
}

# Computed once, by set difference, not once per limit.
unmeasured := object.keys(object.get(input.slo, "metrics", {})) - object.keys(object.get(input, "metrics", {}))
