package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Buckets. TTFT spans a cached prefix on a small model (5 ms) to a long
// prompt queued on a busy server (10 s); durations reach the default
// timeout.
var (
	ttftBuckets     = []float64{.005, .01, .025, .05, .075, .1, .15, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10}
	durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}
)

// codeClasses are the values of the code label, by status/100.
var codeClasses = [...]string{2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

// metrics are the router's Prometheus metrics. Labels are bounded: variant
// is stable, canary or fallback; digest is an upstream's configured
// digest; code a status class.
type metrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	ttft     *prometheus.HistogramVec
	duration *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	safety   *prometheus.CounterVec
	cost     *prometheus.CounterVec // nil without prices

	shedLow, shedNormal prometheus.Counter
	weight              *prometheus.GaugeVec
	kill                prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, inFlight func() float64, priced bool) *metrics {
	vd := []string{"variant", "digest"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_router_requests_total",
			Help: "Requests proxied, by variant, the variant's digest and the status class sent to the client (a client that left counts as 4xx)."},
			[]string{"variant", "digest", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_router_errors_total",
			Help: "Requests that failed upstream: status 5xx, unreachable (502), timed out (504) or cut off mid-response."}, vd),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "airlock_router_ttft_seconds",
			Help:    "Time to the first generated text of a stream, or to the whole answer when not streamed, of successful generations.",
			Buckets: ttftBuckets}, vd),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "airlock_router_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its response.", Buckets: durationBuckets}, vd),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_router_tokens_total",
			Help: "Tokens reported by the upstream's usage, by type (prompt, completion); answers without usage are not counted."},
			[]string{"variant", "digest", "type"}),
		safety: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_router_safety_blocks_total",
			Help: "Answers that were safety blocks: a configured finish_reason, or generated text containing a refusal pattern."}, vd),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "airlock_router_weight",
			Help: "Percent of traffic the weights send to each variant (the kill-switch overrides them)."}, []string{"variant"}),
		kill: prometheus.NewGauge(prometheus.GaugeOpts{Name: "airlock_router_kill_switch",
			Help: "1 while the kill-switch sends all traffic to the fallback or stable, else 0."}),
	}
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_router_shed_total",
		Help: "Requests refused with 429 because too many were in flight, by priority (low, normal)."}, []string{"priority"})
	m.shedLow, m.shedNormal = shed.WithLabelValues("low"), shed.WithLabelValues("normal")
	cs := []prometheus.Collector{m.requests, m.errors, m.ttft, m.duration, m.tokens, m.safety, shed, m.weight, m.kill,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "airlock_router_in_flight",
			Help: "Requests in flight through the proxy."}, inFlight)}
	if priced {
		m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_router_cost_total",
			Help: "Cost of the tokens counted, in the currency of router.yaml's prices."}, vd)
		cs = append(cs, m.cost)
	}
	if reg != nil {
		reg.MustRegister(cs...)
	}
	return m
}

// variantMetrics are one upstream's series, made when the upstream is
// configured so that they exist (at zero) before its first request, and so
// that a request records without looking labels up.
type variantMetrics struct {
	requests           [len(codeClasses)]prometheus.Counter
	errors             prometheus.Counter
	ttft, duration     prometheus.Observer
	prompt, completion prometheus.Counter
	safety             prometheus.Counter
	cost               prometheus.Counter // nil without a price
}

func (m *metrics) variant(variant, digest string, price *Price) *variantMetrics {
	v := &variantMetrics{
		errors:     m.errors.WithLabelValues(variant, digest),
		ttft:       m.ttft.WithLabelValues(variant, digest),
		duration:   m.duration.WithLabelValues(variant, digest),
		prompt:     m.tokens.WithLabelValues(variant, digest, "prompt"),
		completion: m.tokens.WithLabelValues(variant, digest, "completion"),
		safety:     m.safety.WithLabelValues(variant, digest),
	}
	for i, c := range codeClasses {
		if c != "" {
			v.requests[i] = m.requests.WithLabelValues(variant, digest, c)
		}
	}
	if price != nil && m.cost != nil {
		v.cost = m.cost.WithLabelValues(variant, digest)
	}
	return v
}

// class maps a status to its code class; anything outside 2xx–5xx (which
// a proxy does not send as a final status) is counted as 5xx.
func class(status int) int {
	if c := status / 100; c >= 2 && c <= 5 {
		return c
	}
	return 5
}

// setState exports the weights and the kill-switch.
func (m *metrics) setState(weight int, kill bool) {
	m.weight.WithLabelValues(Canary).Set(float64(weight))
	m.weight.WithLabelValues(Stable).Set(float64(100 - weight))
	k := 0.0
	if kill {
		k = 1
	}
	m.kill.Set(k)
}
