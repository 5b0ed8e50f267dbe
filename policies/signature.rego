# The release must carry a valid signature by a trusted key, and nothing
# broken beside it.
package airlock.gate.signature

deny contains {
	"msg": "the release is not signed by a trusted key",
	"remediation": "sign it (airlock sign REF --key K.key) with a key whose public half the gate trusts",
} if {
	not input.signatures.verified
	count(object.get(input.signatures, "problems", [])) == 0
}

deny contains {
	"msg": sprintf("signature problem: %s", [p]),
	"remediation": "remove or replace the broken signature, then sign again",
} if {
	some p in input.signatures.problems
}
