# The release's licence, and every licence of the datasets it names, must
# be on the environment's allow-list (when it has one).
package airlock.gate.license

allowed := input.rules.licenses

enabled if count(object.get(input.rules, "licenses", [])) > 0

deny contains {
	"msg": "the release declares no licence",
	"remediation": "set metadata.license in airlock.yaml (an SPDX id)",
} if {
	enabled
	object.get(input.release, "license", "") == ""
}

deny contains {
	"msg": sprintf("licence %q is not on the allow-list (%s)", [input.release.license, concat(", ", allowed)]),
	"remediation": "relicense, or have legal add the licence to rules.licenses",
} if {
	enabled
	l := object.get(input.release, "license", "")
	l != ""
	not l in allowed
}

deny contains {
	"msg": sprintf("dataset %q has licence %q, not on the allow-list", [d.name, object.get(d, "license", "")]),
	"remediation": "use a dataset with an allowed licence, or record its licence in airlock.yaml",
} if {
	enabled
	some d in input.release.datasets
	not object.get(d, "license", "") in allowed
}
