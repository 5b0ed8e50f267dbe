// Package evals owns eval suites, assertions, scoring, statistics and the
// eval report, with no I/O (DESIGN.md §5): callers hand it bytes and
// outputs, it hands back results. runner/evaljob does the I/O around it
// (sending items to an engine, the cache, the judge model).
//
//   - suite.go: the suite format (YAML or JSONL), parsed and compiled whole,
//     every problem naming its item and assertion.
//   - score.go: the assertions, and Score for one output.
//   - shipped.go: the release's system prompt and safety settings, applied
//     as shipped (template variables, redaction, the refusal message).
//   - stats.go: Wilson intervals, the zero-events bound, unbiased pass@k,
//     the exact McNemar test, paired sample sizes and the paired bootstrap,
//     each checked in tests against published values or a second exact
//     implementation.
//   - metrics.go: Summarize, the metrics of a set of samples.
//   - compare.go, paired.go: the paired non-inferiority comparison against
//     a baseline, with its "insufficient evidence" verdict.
//   - judge.go: the judge model's prompts and the parsing of its answers,
//     rubric scores and order-swapped side-by-side verdicts.
//   - report.go: the eval report (the eval attestation's predicate) and its
//     Markdown summary.
//   - import*.go: promptfoo results and lm-evaluation-harness samples as
//     evidence.
package evals
