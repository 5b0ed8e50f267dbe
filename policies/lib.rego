# Helpers the built-in policies share: which evidence is usable for the
# release under decision, and which suites a change requires.
package airlock.lib.evidence

# Suites a change must be evaluated on: the lighter prompt_only_suites
# when only prompts changed and the rules name some, else required_suites.
required_suites := input.rules.prompt_only_suites if {
	input.changes.prompt_only
	count(object.get(input.rules, "prompt_only_suites", [])) > 0
} else := input.rules.required_suites

now_ns := time.now_ns()

age_hours(e) := (now_ns - time.parse_rfc3339_ns(e.time)) / 3600000000000

# Evidence is about the release when the report names its digest.
about_release(e) if e.release_digest == input.release.digest

fresh(e) if age_hours(e) <= input.rules.max_evidence_age_hours

# Signed by a trusted key, or produced by this gate run.
trusted(e) if e.signed == true

trusted(e) if e.source == "run"

ok(e) if not e.problem

usable(e) if {
	ok(e)
	about_release(e)
	fresh(e)
	trusted(e)
}

# The newest usable eval of a suite.
eval_for(suite) := es[i] if {
	es := [x | some x in input.evals; x.suite == suite; usable(x)]
	newest := max({time.parse_rfc3339_ns(x.time) | some x in es})
	i := min({j | some j, x in es; time.parse_rfc3339_ns(x.time) == newest})
}

# The newest usable benchmark.
bench := bs[i] if {
	bs := [x | some x in input.bench; usable(x)]
	newest := max({time.parse_rfc3339_ns(x.time) | some x in bs})
	i := min({j | some j, x in bs; time.parse_rfc3339_ns(x.time) == newest})
}

# The evals policies decide on: the newest usable one of each required
# suite.
required_evals contains eval_for(s) if {
	some s in required_suites
}

# Why a piece of evidence is not usable, for messages.
why_not(e) := sprintf("it could not be read: %s", [e.problem]) if {
	not ok(e)
} else := sprintf("it is about %s, not this release (%s)", [e.release_digest, input.release.digest]) if {
	not about_release(e)
} else := sprintf("it is %v hours old; evidence may be %v hours old", [n1(age_hours(e)), input.rules.max_evidence_age_hours]) if {
	not fresh(e)
} else := "it is not signed by a trusted key" if {
	not trusted(e)
} else := "it is usable"

# Numbers for messages: sprintf's %f refuses Rego's integers.
n1(x) := round(x * 10) / 10

n3(x) := round(x * 1000) / 1000

pct(x) := sprintf("%v%%", [n1(x * 100)])
