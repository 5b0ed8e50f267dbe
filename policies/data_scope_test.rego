package airlock.gate.data_scope_test

import data.airlock.gate.data_scope
import data.airlock.lib.testbase as t

test_allowed_scopes_pass if {
	count(data_scope.deny) == 0 with input as t.input_ok
}

test_scope_outside_denies if {
	inp := object.union(t.input_ok, {"release": {"data_scopes": ["support-tickets", "hr"]}})
	some d in data_scope.deny with input as inp
	contains(d.msg, `data scope "hr" is not allowed in prod`)
}

test_model_may_not_access_dataset if {
	inp := object.union(t.input_ok, {"release": {"datasets": [{"name": "payments-raw", "license": "MIT"}]}})
	some d in data_scope.deny with input as inp
	contains(d.msg, `support-bot may not access "payments-raw"`)
}

test_rule_for_other_model if {
	inp := object.union(t.input_ok, {"release": {"name": "fraud", "datasets": [{"name": "payments-raw"}]}})
	count(data_scope.deny) == 0 with input as inp
}

test_no_allow_list if {
	inp := object.union(t.input_ok, {"rules": {"data_scopes": []}, "release": {"data_scopes": ["anything"]}})
	count(data_scope.deny) == 0 with input as inp
}
