// Package providertest is the conformance suite every canary.Provider
// passes, in the manner of distribution's storage-driver suites: one set of
// checks, run by each implementation's own test against its own storage.
//
// The suite generates a Dataset: deterministic per-request samples of four
// metrics (a latency and a quality score, judged on their means; errors,
// a count; quality passes, a proportion) for a few variants over a minute.
// An implementation's test turns the Dataset into whatever its provider
// reads (an observations file, a Prometheus TSDB), says where offset zero
// is and which queries reach each metric, and Run checks what Observe
// answers against the samples themselves:
//
//   - N and Events exactly; Mean and Var within a relative tolerance the
//     implementation declares per metric (histogram buckets are
//     approximate, sums are not);
//   - cumulative values for windows that grow from the canary's start;
//   - variants told apart by the {{.Variant}} label, and two deployments
//     with the same variant name told apart by {{.Digest}};
//   - canary.ErrNoData for a variant that never existed, for one whose
//     series exist but saw no requests, and for a window that ends before
//     the first request;
//   - an error wrapping context.Canceled, not ErrNoData, when the context is
//     cancelled.
package providertest
