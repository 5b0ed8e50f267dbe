package canary

import (
	"context"
	"errors"
	"time"
)

// ErrNoData says a provider found no samples for a variant in the window: no
// series, or a series with nothing in it. The judge turns it into NoData,
// which extends a step instead of failing it.
var ErrNoData = errors.New("no data")

// Variant is one side of the comparison: the baseline (the release serving
// now) or the canary. Name is what the traffic layer labels it with (the
// router's variant label, a Kubernetes Service name), which queries are
// templated with.
type Variant struct {
	Name   string `json:"name" yaml:"name"`
	Digest string `json:"digest,omitempty" yaml:"digest,omitempty"`
}

// Query asks a provider for one metric of one variant, cumulated over
// [Start, End]: the canary's whole life so far, so the sequential tests see
// every sample once.
type Query struct {
	Metric  Metric
	Variant Variant
	Start   time.Time
	End     time.Time
}

// Window is the query's length.
func (q Query) Window() time.Duration { return q.End.Sub(q.Start) }

// Observation is what a provider measured of one variant over a window.
//
// For a mean metric (latency, quality score, cost): N samples with Mean and
// Var (the sample variance). For a count or proportion metric (errors,
// refusals, safety blocks, quality passes): Events out of N requests; Mean
// and Var are then Events/N and its Bernoulli variance.
type Observation struct {
	N      float64 `json:"n"`
	Mean   float64 `json:"mean"`
	Var    float64 `json:"var"`
	Events float64 `json:"events,omitempty"`
}

// Provider reads observations from a metrics system. Implementations pass
// the conformance suite in gate/canary/providertest.
type Provider interface {
	// Observe returns the metric's observation of the variant over the
	// query's window, or an error wrapping ErrNoData when there is none.
	Observe(ctx context.Context, q Query) (Observation, error)
}
