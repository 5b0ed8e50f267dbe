package runner

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bucket boundaries from the OpenTelemetry GenAI semantic conventions
// (runner.md (d)): client operation duration, server time to first token
// and server time per output token.
var (
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	tpotBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}
	lagBuckets      = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
)

// Metrics are the runner's airlock_bench_* Prometheus metrics, named as
// runner.md (d) proposes. They live on the registerer given to NewMetrics,
// never on a global one; a run's ID is only on airlock_run_info.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	tpot     *prometheus.HistogramVec
	chunk    *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
	lag      prometheus.Histogram
	good     *prometheus.CounterVec
	info     *prometheus.GaugeVec
}

// NewMetrics registers the runner's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	mv := []string{"model", "endpoint"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_bench_requests_total",
			Help: "Requests the runner finished, by outcome (success, error, timeout, cancelled) and error class.",
		}, []string{"model", "endpoint", "outcome", "error_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_bench_request_duration_seconds", Help: "End-to-end latency of successful requests.",
			Buckets: durationBuckets,
		}, mv),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_bench_time_to_first_token_seconds", Help: "Time to the first generated stream event.",
			Buckets: ttftBuckets,
		}, mv),
		tpot: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_bench_time_per_output_token_seconds", Help: "Per request (e2e - ttft) / (output tokens - 1).",
			Buckets: tpotBuckets,
		}, mv),
		chunk: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_bench_inter_chunk_latency_seconds", Help: "Gaps between consecutive generated stream events.",
			Buckets: tpotBuckets,
		}, mv),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_bench_tokens_total", Help: "Tokens of successful requests, by type (input, output) and count source (server, client).",
		}, []string{"model", "type", "source"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_bench_requests_in_flight", Help: "Requests sent and not yet finished.",
		}, []string{"model"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "airlock_bench_schedule_lag_seconds", Help: "Actual minus scheduled send time.",
			Buckets: lagBuckets,
		}),
		good: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_bench_good_requests_total", Help: "Successful requests meeting the run's SLO (the goodput numerator).",
		}, []string{"model", "slo"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_run_info", Help: "Always 1: the runs this process made, with their release digest.",
		}, []string{"run_id", "model", "model_digest", "server_kind", "profile"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.ttft, m.tpot, m.chunk, m.tokens, m.inFlight, m.lag, m.good, m.info} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("registering runner metrics"), err)
		}
	}
	return m, nil
}

// RunInfo sets airlock_run_info for a run.
func (m *Metrics) RunInfo(runID, model, digest, serverKind, profile string) {
	m.info.WithLabelValues(runID, model, digest, serverKind, profile).Set(1)
}

// observer is Metrics curried for one run, so the hot path looks up no
// label values.
type observer struct {
	m                           *Metrics
	model, endpoint             string
	slo                         SLO
	duration, ttft, tpot, chunk prometheus.Observer
	inFlight                    prometheus.Gauge
	good                        prometheus.Counter
	outServer, outClient, inTok prometheus.Counter
	success                     prometheus.Counter
}

func (m *Metrics) observer(eng Engine, slo SLO) *observer {
	var info EngineInfo
	if d, ok := eng.(Describer); ok {
		info = d.Describe()
	}
	o := &observer{m: m, model: info.Model, endpoint: info.Endpoint, slo: slo}
	o.duration = m.duration.WithLabelValues(o.model, o.endpoint)
	o.ttft = m.ttft.WithLabelValues(o.model, o.endpoint)
	o.tpot = m.tpot.WithLabelValues(o.model, o.endpoint)
	o.chunk = m.chunk.WithLabelValues(o.model, o.endpoint)
	o.inFlight = m.inFlight.WithLabelValues(o.model)
	o.outServer = m.tokens.WithLabelValues(o.model, "output", "server")
	o.outClient = m.tokens.WithLabelValues(o.model, "output", "client")
	o.inTok = m.tokens.WithLabelValues(o.model, "input", "server")
	o.success = m.requests.WithLabelValues(o.model, o.endpoint, "success", "")
	if !slo.IsZero() {
		o.good = m.good.WithLabelValues(o.model, slo.String())
	}
	return o
}

func (o *observer) start() { o.inFlight.Inc() }

func (o *observer) finish(tl *Timeline) {
	o.inFlight.Dec()
	if tl.Warmup {
		return
	}
	o.m.lag.Observe(max(0, time.Duration(tl.Sent-tl.Scheduled).Seconds()))
	if tl.Error != nil {
		outcome := "error"
		switch tl.Error.Class {
		case ClassTimeout:
			outcome = "timeout"
		case ClassCancelled:
			outcome = "cancelled"
		}
		o.m.requests.WithLabelValues(o.model, o.endpoint, outcome, string(tl.Error.Class)).Inc()
		return
	}
	o.success.Inc()
	m := Measure(tl)
	o.duration.Observe(m.E2E.Seconds())
	if m.HasTTFT {
		o.ttft.Observe(m.TTFT.Seconds())
	}
	if m.HasTPOT {
		o.tpot.Observe(m.TPOT.Seconds())
	}
	tl.eachGap(func(g Duration) { o.chunk.Observe(g.Seconds()) })
	switch {
	case m.FromServer:
		o.outServer.Add(float64(m.OutputTokens))
		o.inTok.Add(float64(tl.Usage.PromptTokens))
	case m.TokensUnknown:
	default:
		o.outClient.Add(float64(m.OutputTokens))
	}
	if o.good != nil && o.slo.Meets(m) {
		o.good.Inc()
	}
}
