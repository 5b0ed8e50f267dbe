# A release may touch only the data scopes the environment allows, and
# data_deny rules forbid given models (a glob on the release name) a
# dataset or scope outright.
package airlock.gate.data_scope

deny contains {
	"msg": sprintf("data scope %q is not allowed in %s (allowed: %s)", [s, input.environment.name, concat(", ", input.rules.data_scopes)]),
	"remediation": "remove the scope from airlock.yaml's dataScopes, or have the environment's owners allow it",
} if {
	count(object.get(input.rules, "data_scopes", [])) > 0
	some s in input.release.data_scopes
	not s in input.rules.data_scopes
}

touches contains s if some s in input.release.data_scopes

touches contains d.name if some d in input.release.datasets

deny contains {
	"msg": sprintf("%s may not access %q%s", [input.release.name, r.dataset, because(r)]),
	"remediation": "remove the dataset from the release, or change the data rule with its owners",
} if {
	some r in input.rules.data_deny
	glob.match(r.model, [], input.release.name)
	r.dataset in touches
}

because(r) := sprintf(": %s", [r.reason]) if {
	r.reason
} else := ""
