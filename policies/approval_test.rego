package airlock.gate.approval_test

import data.airlock.gate.approval
import data.airlock.lib.testbase as t

test_approved_change_passes if {
	count(approval.deny) == 0 with input as t.input_ok with time.now_ns as t.now
}

test_unapproved_change_denies if {
	some d in approval.deny with input as object.union(t.input_ok, {"approvals": []}) with time.now_ns as t.now
	contains(d.msg, "the safety changed (safety.yaml) and nobody approved it")
}

test_expired_approval_denies if {
	inp := object.union(t.input_ok, {"approvals": [{"by": "alice", "for": ["safety"], "expires": "2026-11-30T00:00:00Z"}]})
	some d in approval.deny with input as inp with time.now_ns as t.now
	contains(d.msg, "alice's expired")
}

test_unattributed_denies if {
	inp := object.union(t.input_ok, {"approvals": [{"by": "", "for": ["safety"], "expires": "2026-12-08T00:00:00Z"}]})
	count(approval.deny) == 1 with input as inp with time.now_ns as t.now
}

test_unchanged_role_needs_nothing if {
	inp := object.union(t.input_ok, {"approvals": [], "changes": {"roles": ["prompt"]}})
	count(approval.deny) == 0 with input as inp with time.now_ns as t.now
}

test_approval_bound_to_another_release_denies if {
	inp := object.union(t.input_ok, {"approvals": [{"by": "alice", "for": ["safety"], "expires": "2026-12-08T00:00:00Z", "subject": "sha256:9999"}]})
	count(approval.deny) == 1 with input as inp with time.now_ns as t.now
}

test_approval_bound_to_this_release_passes if {
	inp := object.union(t.input_ok, {"approvals": [{"by": "alice", "for": ["safety"], "expires": "2026-12-08T00:00:00Z", "subject": t.digest}]})
	count(approval.deny) == 0 with input as inp with time.now_ns as t.now
}

test_approval_bound_to_the_part_passes if {
	parts := [{"role": "safety", "path": "safety.yaml", "change": "modified", "to": "sha256:dddd"}]
	inp := object.union(t.input_ok, {
		"changes": {"parts": parts},
		"approvals": [{"by": "alice", "for": ["safety"], "expires": "2026-12-08T00:00:00Z", "subject": "sha256:dddd"}],
	})
	count(approval.deny) == 0 with input as inp with time.now_ns as t.now
}
