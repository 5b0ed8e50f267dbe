// Package policies will hold the built-in Rego v1 policies and their tests,
// embedded with go:embed (DESIGN.md §6). Nothing is implemented yet; see
// the open gate issue.
package policies
