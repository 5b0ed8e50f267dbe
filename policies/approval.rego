# A change to a part whose role needs approval (safety settings,
# tokenizer, …) needs an attributed, unexpired approval naming that role.
package airlock.gate.approval

now_ns := time.now_ns()

valid(a, role) if {
	role in a.for
	trim_space(a.by) != ""
	time.parse_rfc3339_ns(a.expires) > now_ns
	about(a, role)
}

# An approval bound to a subject covers only that release digest or a
# part of the role with that new digest.
about(a, _) if not a.subject

about(a, _) if a.subject == input.release.digest

about(a, role) if {
	some p in input.changes.parts
	p.role == role
	p.to == a.subject
}

expired(role) := [sprintf("%s's expired %s", [a.by, a.expires]) |
	some a in input.approvals
	role in a.for
	time.parse_rfc3339_ns(a.expires) <= now_ns
]

deny contains {
	"msg": sprintf("the %s changed (%s) and nobody approved it%s", [role, concat(", ", paths(role)), expired_note(role)]),
	"remediation": sprintf("get an approval for %q from an owner: approvals: [{by, for: [%s], expires}] in the gate config", [role, role]),
} if {
	some role in input.rules.approval_required
	role in input.changes.roles
	not any_valid(role)
}

any_valid(role) if {
	some a in input.approvals
	valid(a, role)
}

paths(role) := [p.path | some p in input.changes.parts; p.role == role]

expired_note(role) := sprintf(" (%s)", [concat("; ", expired(role))]) if {
	count(expired(role)) > 0
} else := ""
