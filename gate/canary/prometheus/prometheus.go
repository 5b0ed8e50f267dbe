package prometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/gate/canary"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultTimeout bounds each query when the config gives no timeout.
const DefaultTimeout = 10 * time.Second

// Options are a Provider's dependencies; the zero value is the default.
type Options struct {
	// Logger receives Prometheus' warnings and infos about a query;
	// nil discards them.
	Logger *slog.Logger
	// Transport carries the requests (default client_golang's
	// api.DefaultRoundTripper); the config's headers are added on top.
	Transport http.RoundTripper
}

// Provider reads observations from the Prometheus HTTP API.
type Provider struct {
	api     v1.API
	timeout time.Duration
	log     *slog.Logger
}

var _ canary.Provider = (*Provider)(nil)

// New returns a provider for the Prometheus at cfg.URL, sending cfg.Headers
// with every request and giving each query cfg.Timeout (default 10s).
func New(cfg canary.PrometheusConfig, opts Options) (*Provider, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus: url %q is not an http or https URL such as http://prometheus:9090", cfg.URL)
	}
	rt := opts.Transport
	if rt == nil {
		rt = api.DefaultRoundTripper
	}
	if len(cfg.Headers) > 0 {
		rt = headerTransport{headers: cfg.Headers, next: rt}
	}
	client, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.Timeout.Duration
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Provider{api: v1.NewAPI(client), timeout: timeout, log: log}, nil
}

// headerTransport adds configured headers (an Authorization, a tenant ID)
// to every request.
type headerTransport struct {
	headers map[string]string
	next    http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}

// Observe runs the metric's queries for the variant at q.End and derives
// the observation (see the package documentation).
func (p *Provider) Observe(ctx context.Context, q canary.Query) (canary.Observation, error) {
	qs := q.Metric.Query
	switch {
	case qs.Histogram != "":
		return p.histogram(ctx, q)
	case qs.Count != "" && qs.Sum != "":
		return p.moments(ctx, q)
	case qs.Events != "" && qs.Requests != "":
		return p.events(ctx, q)
	}
	return canary.Observation{}, fmt.Errorf("metric %s has no queries Prometheus can answer: give histogram, count and sum, or events and requests", q.Metric.Name)
}

func (p *Provider) histogram(ctx context.Context, q canary.Query) (canary.Observation, error) {
	sel, err := canary.Render(q.Metric.Query.Histogram, q)
	if err != nil {
		return canary.Observation{}, err
	}
	window, err := canary.Render("{{.Window}}", q)
	if err != nil {
		return canary.Observation{}, err
	}
	query := fmt.Sprintf("sum by (le) (increase(%s[%s]))", sel, window)
	v, err := p.query(ctx, query, q.End)
	if err != nil {
		return canary.Observation{}, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return canary.Observation{}, fmt.Errorf("query %s returned a %s, want an instant vector", query, v.Type())
	}
	if len(vec) == 0 {
		return canary.Observation{}, fmt.Errorf("%w: query %s returned no series", canary.ErrNoData, query)
	}
	buckets := make([]Bucket, 0, len(vec))
	for _, s := range vec {
		le, ok := s.Metric[model.BucketLabel]
		if !ok {
			return canary.Observation{}, fmt.Errorf("query %s returned a series without an le label: the histogram query is a _bucket selector, such as x_bucket{variant=\"{{.Variant}}\"}", query)
		}
		ub, err := strconv.ParseFloat(string(le), 64)
		if err != nil {
			return canary.Observation{}, fmt.Errorf("query %s returned le=%q, which is not a number", query, le)
		}
		buckets = append(buckets, Bucket{UpperBound: ub, Count: float64(s.Value)})
	}
	o, err := Moments(buckets)
	if err != nil {
		return canary.Observation{}, fmt.Errorf("query %s: %w", query, err)
	}
	return o, nil
}

// Bucket is one cumulative histogram bucket: Count samples at or below
// UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Moments derives N, the mean and the sample variance from cumulative
// histogram buckets, placing each bucket's samples at its midpoint: half
// the upper bound for the first bucket, the last finite bound for +Inf.
// Buckets may come in any order; two with the same bound are added (series
// from targets that spell le differently). A count lower than the bucket
// below it (increase() extrapolating each bucket on its own) counts as no
// samples. It returns ErrNoData when the +Inf bucket is zero or NaN.
func Moments(buckets []Bucket) (canary.Observation, error) {
	bs := make([]Bucket, 0, len(buckets))
	for _, b := range buckets {
		if math.IsNaN(b.UpperBound) {
			return canary.Observation{}, errors.New("a bucket's le is NaN")
		}
		bs = append(bs, b)
	}
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].UpperBound < bs[j].UpperBound })
	merged := bs[:0]
	for _, b := range bs {
		if n := len(merged); n > 0 && merged[n-1].UpperBound == b.UpperBound {
			merged[n-1].Count += b.Count
			continue
		}
		merged = append(merged, b)
	}
	bs = merged
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].UpperBound, 1) {
		return canary.Observation{}, errors.New(`the histogram has no le="+Inf" bucket`)
	}
	n := bs[len(bs)-1].Count
	if math.IsNaN(n) || n == 0 {
		return canary.Observation{}, fmt.Errorf("%w: the histogram counts no samples", canary.ErrNoData)
	}
	if len(bs) == 1 {
		return canary.Observation{}, errors.New("the histogram has no finite bucket to place samples in")
	}
	lastFinite := bs[len(bs)-2].UpperBound
	// Each bucket's samples and where they are placed.
	type point struct{ at, n float64 }
	points := make([]point, 0, len(bs))
	below, lower := 0.0, 0.0
	for i, b := range bs {
		if math.IsNaN(b.Count) {
			return canary.Observation{}, fmt.Errorf("%w: the bucket le=%g is NaN", canary.ErrNoData, b.UpperBound)
		}
		k := max(b.Count-below, 0)
		below = max(below, b.Count)
		var at float64
		switch {
		case math.IsInf(b.UpperBound, 1):
			at = lastFinite
		case i == 0 && b.UpperBound > 0:
			at = b.UpperBound / 2
		case i == 0:
			at = b.UpperBound
		default:
			at = (lower + b.UpperBound) / 2
		}
		lower = b.UpperBound
		points = append(points, point{at, k})
	}
	// Counts may not add up to the +Inf bucket when buckets are
	// extrapolated separately; weigh by what was placed.
	var total, sum float64
	for _, p := range points {
		total += p.n
		sum += p.n * p.at
	}
	mean := sum / total
	var ss float64
	for _, p := range points {
		ss += p.n * (p.at - mean) * (p.at - mean)
	}
	o := canary.Observation{N: n, Mean: mean}
	if total > 1 {
		o.Var = ss / (total - 1)
	}
	return o, nil
}

func (p *Provider) moments(ctx context.Context, q canary.Query) (canary.Observation, error) {
	qs := q.Metric.Query
	if qs.SumSquares == "" && q.Metric.Test != canary.TestProportion {
		return canary.Observation{}, fmt.Errorf("metric %s: query: sum_squares is needed for the variance of a mean metric given by count and sum (or give a histogram)", q.Metric.Name)
	}
	n, err := p.count(ctx, q, qs.Count, "samples")
	if err != nil {
		return canary.Observation{}, err
	}
	sum, _, err := p.scalar(ctx, q, qs.Sum)
	if err != nil {
		return canary.Observation{}, err
	}
	mean := sum / n
	if qs.SumSquares == "" { // a proportion: sum counts the passes
		return canary.Observation{N: n, Mean: mean, Var: mean * (1 - mean), Events: sum}, nil
	}
	sq, _, err := p.scalar(ctx, q, qs.SumSquares)
	if err != nil {
		return canary.Observation{}, err
	}
	o := canary.Observation{N: n, Mean: mean}
	if n > 1 {
		// Cancellation can leave a tiny negative for a constant metric.
		o.Var = max((sq-n*mean*mean)/(n-1), 0)
	}
	return o, nil
}

func (p *Provider) events(ctx context.Context, q canary.Query) (canary.Observation, error) {
	qs := q.Metric.Query
	n, err := p.count(ctx, q, qs.Requests, "requests")
	if err != nil {
		return canary.Observation{}, err
	}
	k, err := p.count(ctx, q, qs.Events, "")
	if err != nil {
		return canary.Observation{}, err
	}
	if k > n {
		return canary.Observation{}, fmt.Errorf("metric %s: %g events out of %g requests: the events query counts something the requests query does not", q.Metric.Name, k, n)
	}
	mean := k / n
	return canary.Observation{N: n, Mean: mean, Var: mean * (1 - mean), Events: k}, nil
}

// count runs a scalar query that counts something: it must not be
// negative, and when what is named (samples, requests) it must not be zero.
func (p *Provider) count(ctx context.Context, q canary.Query, text, what string) (float64, error) {
	x, query, err := p.scalar(ctx, q, text)
	switch {
	case err != nil:
		return 0, err
	case x < 0:
		return 0, fmt.Errorf("query %s returned %g, a negative count", query, x)
	case x == 0 && what != "":
		return 0, fmt.Errorf("%w: query %s counts no %s", canary.ErrNoData, query, what)
	}
	return x, nil
}

// scalar renders a template and runs it, expecting one number: a scalar, or
// a vector of one series. Empty and NaN are ErrNoData. It returns the
// rendered query for messages.
func (p *Provider) scalar(ctx context.Context, q canary.Query, text string) (float64, string, error) {
	query, err := canary.Render(text, q)
	if err != nil {
		return 0, text, err
	}
	v, err := p.query(ctx, query, q.End)
	if err != nil {
		return 0, query, err
	}
	var x float64
	switch v := v.(type) {
	case *model.Scalar:
		x = float64(v.Value)
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, query, fmt.Errorf("%w: query %s returned no series", canary.ErrNoData, query)
		case 1:
			x = float64(v[0].Value)
		default:
			return 0, query, fmt.Errorf("query %s returned %d series; aggregate it with sum()", query, len(v))
		}
	default:
		return 0, query, fmt.Errorf("query %s returned a %s, want an instant vector or a scalar", query, v.Type())
	}
	if math.IsNaN(x) {
		return 0, query, fmt.Errorf("%w: query %s returned NaN", canary.ErrNoData, query)
	}
	if math.IsInf(x, 0) {
		return 0, query, fmt.Errorf("query %s returned %g, want a finite number", query, x)
	}
	return x, query, nil
}

// query runs one instant query with the provider's timeout, logging
// Prometheus' warnings.
func (p *Provider) query(ctx context.Context, query string, at time.Time) (model.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	v, warnings, infos, err := p.api.Query(ctx, query, at, v1.WithTimeout(p.timeout))
	for _, w := range warnings {
		p.log.Warn("prometheus warning", "query", query, "warning", w)
	}
	for _, i := range infos {
		p.log.Info("prometheus info", "query", query, "info", i)
	}
	if err != nil {
		return nil, fmt.Errorf("querying prometheus: %s: %w", query, err)
	}
	if v == nil {
		return nil, fmt.Errorf("querying prometheus: %s: the answer has no result", query)
	}
	return v, nil
}
