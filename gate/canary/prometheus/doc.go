// Package prometheus is the canary metric provider that reads Prometheus
// (provider: prometheus: in canary.yaml) through client_golang's HTTP API
// client: one instant query per number, at the look's time (Query.End),
// over the window since the canary started ({{.Window}}, whole seconds).
//
// A metric's queries are templates rendered per variant with
// canary.Render. What the provider runs depends on which are given:
//
//   - histogram: a bucket selector, such as
//     airlock_router_ttft_seconds_bucket{variant="{{.Variant}}"}. The
//     provider runs sum by (le) (increase(SELECTOR[WINDOW])) and derives
//     N, the mean and the variance from the buckets (see below).
//   - count, sum and sum_squares: three scalar queries, full PromQL such
//     as sum(increase(x_count{variant="{{.Variant}}"}[{{.Window}}])). Mean
//     is sum/count and Var (sum_squares − N·mean²)/(N−1). Without
//     sum_squares the variance is unknown, which is an error for a mean
//     metric; a proportion metric (sum counting passes) takes the
//     Bernoulli variance.
//   - events and requests: two scalar queries; N is requests, Mean
//     events/requests and Var Mean·(1−Mean).
//
// A scalar query must return one series (or a scalar): several are an
// error that says to aggregate with sum(). An empty result, NaN, or N of
// zero is canary.ErrNoData. A counter series that appears only when its
// first event happens gives an empty result until then; write the query
// with "or vector(0)" where zero is what that means. HTTP errors and
// timeouts are errors that name the query, never ErrNoData. Prometheus'
// warnings go to the Options' logger.
//
// # The histogram approximation
//
// A histogram keeps counts per bucket, not the samples, so the mean and
// variance are computed as if every sample in a bucket sat at the bucket's
// midpoint: the first bucket's midpoint is half its upper bound (the
// samples are taken to be non-negative, as latencies are), and samples in
// the +Inf bucket are placed at the last finite bound. The variance is the
// sample variance of those points; it is not corrected for grouping
// (Sheppard's correction would assume buckets of equal width). The error
// is small when the buckets are narrow where the samples are and few
// samples exceed the last finite bound. N, the +Inf bucket, is exact. For
// the router's TTFT buckets and a log-normal latency (median 90 to 150 ms)
// the conformance test measures the mean high by up to 5% and the variance
// high by 15 to 25% with a few hundred samples (up to 56% with 30). The
// bias has the same sign for the canary and its baseline, so their
// difference suffers less than either value (though not nothing when
// their shapes differ), and a variance too high widens the judge's
// confidence sequence, which delays decisions. Use count, sum and
// sum_squares where exact values matter.
//
// # Windows and increase()
//
// increase() extrapolates to the window's edges. The window starts at the
// canary's start; a counter that exists (at zero) from before the canary's
// first request, as the router's do, is not extrapolated below zero, so
// the start is exact, and a window ending on a scrape is exact at its end.
// Otherwise the values are off by up to half a scrape interval's worth of
// requests, which the sequential tests tolerate.
package prometheus
