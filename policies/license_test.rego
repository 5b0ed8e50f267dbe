package airlock.gate.license_test

import data.airlock.gate.license
import data.airlock.lib.testbase as t

test_allowed_passes if {
	count(license.deny) == 0 with input as t.input_ok
}

test_not_allowed_denies if {
	some d in license.deny with input as object.union(t.input_ok, {"release": {"license": "AGPL-3.0-only"}})
	contains(d.msg, "AGPL-3.0-only")
}

test_missing_denies if {
	some d in license.deny with input as t.input_ok with input.release.license as ""
	d.msg == "the release declares no licence"
}

test_dataset_denies if {
	some d in license.deny with input as object.union(t.input_ok, {"release": {"datasets": [{"name": "x", "license": "CC-BY-NC-4.0"}]}})
	contains(d.msg, `dataset "x"`)
}
