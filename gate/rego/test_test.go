package rego_test

import (
	"context"
	"testing"

	"github.com/airlock-dev/airlock/gate/rego"
)

// TestBuiltinPolicyTests runs the built-in policies' Rego tests, as make
// test and airlock policy test do, and keeps their coverage high.
func TestBuiltinPolicyTests(t *testing.T) {
	rep, err := rego.RunTests(context.Background(), builtins(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if !r.Pass {
			t.Errorf("%s.%s (%s): %s %s", r.Package, r.Name, r.File, r.Error, r.Output)
		}
	}
	if rep.Passed < 40 {
		t.Errorf("%d Rego tests passed; expected the built-in set (at least 40)", rep.Passed)
	}
	for _, f := range rep.Files {
		if f.Coverage < 90 {
			t.Errorf("%s: %.1f%% of lines covered by its tests (missed %v); keep built-ins at 90%% or more", f.File, f.Coverage, f.Missed)
		}
	}
}

// TestRunTestsReportsFailures makes sure a failing Rego test is reported
// as failing, not passed over.
func TestRunTestsReportsFailures(t *testing.T) {
	ms := []rego.Module{
		{Path: "p.rego", Source: []byte("package airlock.gate.p\ndeny contains \"x\" if input.bad\n")},
		{Path: "p_test.rego", Source: []byte("package airlock.gate.p_test\nimport data.airlock.gate.p\ntest_fails if count(p.deny) == 1\ntest_passes if count(p.deny) == 1 with input as {\"bad\": true}\n")},
	}
	rep, err := rego.RunTests(context.Background(), ms, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed != 1 || rep.Failed != 1 {
		t.Fatalf("passed %d failed %d, want 1 and 1: %+v", rep.Passed, rep.Failed, rep.Results)
	}
}
