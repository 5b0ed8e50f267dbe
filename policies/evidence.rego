# Eval evidence must be present, fresh, trusted and about this exact
# digest for every required suite (the lighter suites for a prompt-only
# change), and benchmark evidence when the rules need it. Evidence that
# cannot be read denies.
package airlock.gate.evidence

import data.airlock.lib.evidence as ev

deny contains {
	"msg": sprintf("no usable eval of suite %q for this digest%s", [suite, tried(suite)]),
	"remediation": sprintf("run the %q eval against this digest (airlock gate runs it when the config has the job) and attach it signed", [suite]),
} if {
	some suite in ev.required_suites
	not ev.eval_for(suite)
}

deny contains {
	"msg": concat("", ["no usable benchmark of this digest", bench_tried]),
	"remediation": "run airlock bench against this digest with --attach, or give the gate a bench job",
} if {
	input.rules.require_bench
	not ev.bench
}

deny contains {
	"msg": sprintf("%s evidence %s cannot be read: %s", [kind, e.digest, e.problem]),
	"remediation": "replace the malformed attestation; evidence that cannot be read is never ignored",
} if {
	some [kind, e] in all_evidence
	e.problem
}

warn contains sprintf("eval of suite %q is older than half the allowed age (%v hours)", [e.suite, ev.n1(ev.age_hours(e))]) if {
	some e in ev.required_evals
	ev.age_hours(e) > input.rules.max_evidence_age_hours / 2
}

all_evidence contains ["eval", e] if some e in input.evals

all_evidence contains ["bench", e] if some e in input.bench

tried(suite) := concat("", [": ", concat("; ", reasons)]) if {
	reasons := [sprintf("evidence %s was not used because %s", [substring(e.digest, 0, 19), ev.why_not(e)]) |
		some e in input.evals
		e.suite == suite
	]
	count(reasons) > 0
} else := " (none was found or run)"

bench_tried := concat("", [": ", concat("; ", reasons)]) if {
	reasons := [sprintf("evidence %s was not used because %s", [substring(e.digest, 0, 19), ev.why_not(e)]) | some e in input.bench]
	count(reasons) > 0
} else := " (none was found or run)"
