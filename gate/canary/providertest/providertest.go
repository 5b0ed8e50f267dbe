package providertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/gate/canary"
)

// Setup is what an implementation gives the suite for the Dataset.
type Setup struct {
	Provider canary.Provider
	// Start is the wall time of the dataset's offset 0: the canary's
	// start. The suite asks for windows [Start, Start+w].
	Start time.Time
	// Queries are the queries that reach each metric (by name) in the
	// implementation's storage, templated with {{.Variant}}, {{.Digest}}
	// and {{.Window}}. An implementation that does not query (the file
	// provider) leaves it nil.
	Queries map[string]canary.Queries
	// Tolerance is how far each metric's Mean and Var may be from the
	// exact values, relative to them; a metric not listed must be exact
	// (up to float rounding). N and Events are always exact.
	Tolerance map[string]Tolerance
}

// Tolerance bounds the relative error of a mean metric's Mean and Var.
type Tolerance struct {
	Mean float64
	Var  float64
}

// exact is the relative error float rounding explains: sums taken in
// another order, a variance from sums of squares.
const exact = 1e-9

// Run runs the conformance suite. setup is called once, with NewDataset(),
// and must make a provider that holds it; its cleanups run when t ends.
func Run(t *testing.T, setup func(t *testing.T, d Dataset) Setup) {
	t.Helper()
	d := NewDataset()
	s := setup(t, d)
	if s.Provider == nil {
		t.Fatal("setup returned no provider")
	}
	if s.Start.IsZero() {
		t.Fatal("setup returned no start time")
	}
	h := &harness{d: d, s: s}
	var unknown []string
	for name := range s.Tolerance {
		if !hasMetric(d, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		t.Fatalf("setup gives tolerances for metrics the dataset lacks: %v", unknown)
	}

	t.Run("Cumulative", h.cumulative)
	t.Run("Variant", h.variant)
	t.Run("Digest", h.digest)
	t.Run("UnknownVariant", h.unknownVariant)
	t.Run("IdleVariant", h.idleVariant)
	t.Run("BeforeFirstRequest", h.beforeFirstRequest)
	t.Run("CancelledContext", h.cancelled)
}

type harness struct {
	d Dataset
	s Setup
}

func hasMetric(d Dataset, name string) bool {
	for _, m := range d.Metrics {
		if m.Name == name {
			return true
		}
	}
	return false
}

// query is the suite's question: metric for v over [Start, Start+w].
func (h *harness) query(m canary.Metric, v canary.Variant, w time.Duration) canary.Query {
	m.Query = h.s.Queries[m.Name]
	return canary.Query{Metric: m, Variant: v, Start: h.s.Start, End: h.s.Start.Add(w)}
}

func (h *harness) observe(ctx context.Context, m canary.Metric, v canary.Variant, w time.Duration) (canary.Observation, error) {
	return h.s.Provider.Observe(ctx, h.query(m, v, w))
}

func name(v canary.Variant) string { return v.Name + "@" + v.Digest[:min(len(v.Digest), 12)] }

// check compares got with the exact observation of m for v over [0, w].
func (h *harness) check(t *testing.T, m canary.Metric, v canary.Variant, w time.Duration) canary.Observation {
	t.Helper()
	want := h.d.Exact(m.Name, v, w)
	if want.N == 0 {
		t.Fatalf("suite bug: no samples of %s for %s in %v", m.Name, name(v), w)
	}
	got, err := h.observe(t.Context(), m, v, w)
	if err != nil {
		t.Errorf("%s of %s over %v: %v", m.Name, name(v), w, err)
		return got
	}
	tol := Tolerance{Mean: exact, Var: exact}
	if x, ok := h.s.Tolerance[m.Name]; ok {
		tol = Tolerance{Mean: max(x.Mean, exact), Var: max(x.Var, exact)}
	}
	field := func(what string, got, want, rel float64) {
		t.Helper()
		if !(math.Abs(got-want) <= rel*math.Abs(want)) {
			t.Errorf("%s of %s over %v: %s = %.9g, want %.9g (relative error %.3g, tolerance %.3g)",
				m.Name, name(v), w, what, got, want, relErr(got, want), rel)
		}
	}
	// N (and Events) are counts: a histogram's +Inf bucket and a counter's
	// increase are as exact as a file's number.
	field("N", got.N, want.N, exact)
	field("Events", got.Events, want.Events, exact)
	if m.Test == canary.TestMean {
		field("Mean", got.Mean, want.Mean, tol.Mean)
		field("Var", got.Var, want.Var, tol.Var)
	} else {
		field("Mean", got.Mean, want.Mean, exact)
		field("Var", got.Var, want.Var, exact)
	}
	return got
}

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

// cumulative: windows from the start that grow see every sample once, so
// N grows and each answer is the whole window's.
func (h *harness) cumulative(t *testing.T) {
	for _, m := range h.d.Metrics {
		for _, v := range h.d.Variants {
			t.Run(m.Name+"/"+name(v), func(t *testing.T) {
				last := 0.0
				for _, w := range []time.Duration{10 * time.Second, 30 * time.Second, h.d.Duration} {
					got := h.check(t, m, v, w)
					if got.N <= last {
						t.Errorf("%s of %s: N = %g over %v, not more than %g over a shorter window: the window is not cumulative",
							m.Name, name(v), got.N, w, last)
					}
					last = got.N
				}
			})
		}
	}
}

// variant: stable and canary differ only in their variant label (and
// digest); each query reads its own.
func (h *harness) variant(t *testing.T) {
	h.apart(t, h.d.Variants[0], h.d.Variants[1])
}

// digest: the canary and the earlier canary share a variant name; only
// {{.Digest}} tells them apart.
func (h *harness) digest(t *testing.T) {
	a, b := h.d.Variants[1], h.d.Variants[2]
	if a.Name != b.Name {
		t.Fatal("suite bug: the digest case needs two variants with one name")
	}
	h.apart(t, a, b)
}

func (h *harness) apart(t *testing.T, a, b canary.Variant) {
	for _, m := range h.d.Metrics {
		t.Run(m.Name, func(t *testing.T) {
			ga := h.check(t, m, a, h.d.Duration)
			gb := h.check(t, m, b, h.d.Duration)
			if ga.N == gb.N && ga.Mean == gb.Mean {
				t.Errorf("%s: %s and %s have the same observation %+v: the query does not tell them apart", m.Name, name(a), name(b), ga)
			}
		})
	}
}

func (h *harness) wantNoData(t *testing.T, m canary.Metric, v canary.Variant, w time.Duration, why string) {
	t.Helper()
	got, err := h.observe(t.Context(), m, v, w)
	if !errors.Is(err, canary.ErrNoData) {
		t.Errorf("%s of %s over %v (%s): got %+v, %v; want an error wrapping canary.ErrNoData", m.Name, name(v), w, why, got, err)
	}
}

// unknownVariant: a variant that never existed has no series at all.
func (h *harness) unknownVariant(t *testing.T) {
	ghost := canary.Variant{Name: "ghost", Digest: digest('e')}
	for _, m := range h.d.Metrics {
		h.wantNoData(t, m, ghost, h.d.Duration, "a variant that never existed")
	}
}

// idleVariant: series exist but count nothing.
func (h *harness) idleVariant(t *testing.T) {
	for _, m := range h.d.Metrics {
		h.wantNoData(t, m, h.d.Idle, h.d.Duration, "a variant that saw no requests")
	}
}

// beforeFirstRequest: a window that closes before the first request.
func (h *harness) beforeFirstRequest(t *testing.T) {
	w := h.d.FirstRequest - 2*h.d.Step
	for _, m := range h.d.Metrics {
		for _, v := range h.d.Variants {
			if h.d.Exact(m.Name, v, w).N != 0 {
				t.Fatalf("suite bug: samples before %v", w)
			}
			h.wantNoData(t, m, v, w, fmt.Sprintf("the first request came at %v", h.d.FirstRequest))
		}
	}
}

// cancelled: a cancelled context is an error that says so, not "no data",
// which would extend a step that nobody is running any more.
func (h *harness) cancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, m := range h.d.Metrics {
		_, err := h.observe(ctx, m, h.d.Variants[0], h.d.Duration)
		switch {
		case err == nil:
			t.Errorf("%s: Observe with a cancelled context returned no error", m.Name)
		case errors.Is(err, canary.ErrNoData):
			t.Errorf("%s: Observe with a cancelled context: %v; want an error that is not ErrNoData", m.Name, err)
		case !errors.Is(err, context.Canceled):
			t.Errorf("%s: Observe with a cancelled context: %v; want it to wrap context.Canceled", m.Name, err)
		}
	}
}
