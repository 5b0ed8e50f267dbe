// Package rego is Airlock's only importer of OPA (DESIGN.md §2, §6). It
// prepares a policy set (built-in policies from policies/, user policies
// from directories or OPA bundles) once per revision, evaluates it per
// decision with the input injected as a parsed value and the clock
// injected, and fails closed: an error, a timeout or a result that is not
// sets of messages denies with the reason. It also runs the policies' Rego
// tests with coverage (airlock policy test).
package rego
