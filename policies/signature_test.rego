package airlock.gate.signature_test

import data.airlock.gate.signature
import data.airlock.lib.testbase as t

test_signed_passes if {
	count(signature.deny) == 0 with input as t.input_ok
}

test_unsigned_denies if {
	some d in signature.deny with input as object.union(t.input_ok, {"signatures": {"verified": false, "keys": []}})
	contains(d.msg, "not signed by a trusted key")
}

test_problem_denies if {
	some d in signature.deny with input as object.union(t.input_ok, {"signatures": {"verified": false, "problems": ["bad bundle"]}})
	d.msg == "signature problem: bad bundle"
}
