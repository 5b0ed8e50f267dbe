// Package evals will own eval suites, assertions, scoring and statistics,
// with no I/O (DESIGN.md §5). Nothing is implemented yet; see the open
// evals issue. The suite shape is fixed already: see
// examples/support-bot/evals/golden.yaml.
package evals
