// Package canary promotes a release by canary analysis (DESIGN.md §7): a
// plan of traffic steps (canary.yaml), metric providers that read the
// canary and its baseline over the same window (Prometheus, or a file for
// tests and replays), a sequential statistical judge, and actuators that
// move traffic (the built-in router, Gateway API HTTPRoute weights).
//
// The judge compares the canary with the baseline serving beside it, per
// metric, with anytime-valid tests: mSPRT for means and proportions and a
// one-sided Beta-binomial mixture test for rare counts (errors, refusals,
// safety blocks). Because the tests stay valid however often they are
// looked at, a clearly bad canary is stopped at the first look that shows
// it, and a good one is not stopped by chance: the family-wise false-alarm
// rate across all metrics and looks is at most the plan's alpha
// (Bonferroni over the metrics).
package canary
