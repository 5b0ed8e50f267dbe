// Package policies holds Airlock's built-in Rego v1 policies, one per
// rule of DESIGN.md §6, each with its Rego tests (NAME_test.rego), and the
// table of policy cases in testdata/cases.yaml. FS embeds them; gate/rego
// loads them. A policy NAME is package airlock.gate.NAME with deny and
// warn rules; helpers are under airlock.lib.
package policies

import "embed"

// FS holds the built-in policies and their tests.
//
//go:embed *.rego
var FS embed.FS
