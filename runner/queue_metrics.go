package runner

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// queueMetrics are a Queue's airlock_runner_job* metrics. Their labels
// take bounded values only: the job kinds and the three outcomes.
type queueMetrics struct {
	queued   *prometheus.GaugeVec
	running  *prometheus.GaugeVec
	total    *prometheus.CounterVec
	wait     *prometheus.HistogramVec
	duration *prometheus.HistogramVec
	gpus     prometheus.Gauge
}

// newQueueMetrics registers the queue's metrics on reg, when it is not nil,
// with every kind and outcome present from the start at zero.
func newQueueMetrics(reg prometheus.Registerer) (*queueMetrics, error) {
	// Jobs load a model and run a suite or a load profile: seconds to
	// hours, both in the queue and running.
	buckets := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}
	kind := []string{"kind"}
	m := &queueMetrics{
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_runner_jobs_queued", Help: "Jobs waiting in the runner's queue for a slot or GPUs.",
		}, kind),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_runner_jobs_running", Help: "Jobs the runner's queue has started and that have not ended.",
		}, kind),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_runner_jobs_total", Help: "Jobs that ended, by outcome (succeeded, failed, cancelled).",
		}, []string{"kind", "outcome"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_runner_job_queue_wait_seconds", Help: "Time from submitting a job to starting it.",
			Buckets: buckets,
		}, kind),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "airlock_runner_job_duration_seconds", Help: "Time from starting a job to its end.",
			Buckets: buckets,
		}, kind),
		gpus: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_runner_gpus_reserved", Help: "GPUs and MIG instances the queue has given to running jobs.",
		}),
	}
	for _, k := range []JobKind{JobEval, JobBench} {
		m.queued.WithLabelValues(string(k))
		m.running.WithLabelValues(string(k))
		for _, o := range []string{"succeeded", "failed", "cancelled"} {
			m.total.WithLabelValues(string(k), o)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.queued, m.running, m.total, m.wait, m.duration, m.gpus} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("registering job queue metrics"), err)
		}
	}
	return m, nil
}
