// Package evals owns eval suites, assertions, scoring and statistics, with
// no I/O (DESIGN.md §5). The statistics are in (stats.go: Wilson
// intervals, the zero-events bound, unbiased pass@k, the exact McNemar
// test, paired non-inferiority, paired sample sizes and the paired
// bootstrap, each checked against published values or a second exact
// implementation); suites, assertions and scoring are the open evals
// issue. The suite shape is fixed already: see
// examples/support-bot/evals/golden.yaml.
package evals
