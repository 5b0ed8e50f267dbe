# slo.metrics bounds any number of input.metrics by name; a bounded metric
# that was not measured denies.
package airlock.gate.metric_limits

deny contains {
	"msg": sprintf("metric %s is %v, under its minimum %v", [name, input.metrics[name], l.min]),
	"remediation": "see the evidence the metric comes from",
} if {
	some name, l in input.slo.metrics
	input.metrics[name] < l.min
}

deny contains {
	"msg": sprintf("metric %s is %v, over its maximum %v", [name, input.metrics[name], l.max]),
	"remediation": "see the evidence the metric comes from",
} if {
	some name, l in input.slo.metrics
	input.metrics[name] > l.max
}

deny contains {
	"msg": sprintf("metric %s has a limit but was not measured", [name]),
	"remediation": "run the eval or bench job that measures it; metric names are listed in docs/gate.md",
} if {
	some name in unmeasured
}

# Looked up by name, limit by limit: the metrics themselves are never
# listed, however many there are. (Metrics are numbers, never false.)
unmeasured contains name if {
	some name, _ in input.slo.metrics
	not input.metrics[name]
}
