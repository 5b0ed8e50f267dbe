package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's Prometheus series (airlock_admission_*).
type Metrics struct {
	decisions      *prometheus.CounterVec
	duration       prometheus.Histogram
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	registryErrors prometheus.Counter
	breakGlass     prometheus.Counter
}

// NewMetrics registers the series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_admission_decisions_total",
			Help: "Admission answers by outcome (allowed, denied, warned, skipped, error) and mode.",
		}, []string{"outcome", "mode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_admission_duration_seconds",
			Help:    "Time to answer one AdmissionReview, from the decoded request to the answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_admission_cache_hits_total",
			Help: "Release checks answered from the verdict cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_admission_cache_misses_total",
			Help: "Release checks that read the registry (or joined a read in flight).",
		}),
		registryErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_admission_registry_errors_total",
			Help: "Release checks whose verdicts could not be read.",
		}),
		breakGlass: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_admission_break_glass_total",
			Help: "Answers in which a break-glass exception admitted a release without a pass verdict.",
		}),
	}
	reg.MustRegister(m.decisions, m.duration, m.cacheHits, m.cacheMisses, m.registryErrors, m.breakGlass)
	return m
}

func (m *Metrics) observe(outcome, mode string, d time.Duration) {
	m.decisions.WithLabelValues(outcome, mode).Inc()
	m.duration.Observe(d.Seconds())
}
