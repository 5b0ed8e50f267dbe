package gpu

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the airlock_gpu_* metrics (docs/gpu.md). It reads the
// GPUs when Prometheus scrapes it rather than from a background sampler:
// NVML answers these calls in microseconds and already averages
// utilization over its own sample period, so every scrape sees fresh values
// at the scraper's interval, and nothing runs between scrapes. When the
// inventory is unavailable or closed it exports airlock_gpu_collector_up 0
// and nothing else, and makes no NVML call.
type Collector struct {
	inv    Inventory
	errors atomic.Uint64

	up, errs, util, memUsed, memFree, memTotal, power, energy, temp, clock *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector over inv and registers it with reg,
// when reg is not nil.
func NewCollector(reg prometheus.Registerer, inv Inventory) (*Collector, error) {
	labels := []string{"gpu", "uuid", "name", "gpu_instance_id", "compute_instance_id"}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("airlock_gpu_"+name, help, labels, nil)
	}
	c := &Collector{
		inv:      inv,
		up:       prometheus.NewDesc("airlock_gpu_collector_up", "1 when NVML initialised and the GPUs are read, 0 when GPU telemetry is unavailable.", nil, nil),
		errs:     prometheus.NewDesc("airlock_gpu_collect_errors_total", "NVML calls that failed while scraping; unsupported fields are not errors.", nil, nil),
		util:     desc("utilization_ratio", "Share of the driver's last sample period in which a kernel ran on the GPU; not reported for MIG."),
		memUsed:  desc("memory_used_bytes", "Device memory in use; for a GPU in MIG mode, per MIG instance only."),
		memFree:  desc("memory_free_bytes", "Device memory free; for a GPU in MIG mode, per MIG instance only."),
		memTotal: desc("memory_total_bytes", "Device memory; for a GPU in MIG mode, per MIG instance only."),
		power:    desc("power_watts", "Power draw of the GPU board."),
		energy:   desc("energy_joules_total", "Energy used by the GPU since the driver loaded; starts again at zero when it reloads."),
		temp:     desc("temperature_celsius", "GPU core temperature."),
		clock:    desc("sm_clock_hertz", "Current SM clock."),
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.errs, c.util, c.memUsed, c.memFree, c.memTotal, c.power, c.energy, c.temp, c.clock} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if !c.inv.Status().Available {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	// prometheus.Collector gives Collect no context; NVML calls do not block.
	samples, err := c.inv.Sample(context.Background())
	if errors.Is(err, ErrClosed) {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(c.errors.Add(uint64(countErrors(err)))))

	migParents := map[string]bool{}
	for _, s := range samples {
		if s.MIG() {
			migParents[s.ParentUUID] = true
		}
	}
	for _, s := range samples {
		if s.Lost {
			continue
		}
		lv := []string{strconv.Itoa(s.Index), s.UUID, s.Name, "", ""}
		if s.MIG() {
			lv[3], lv[4] = strconv.Itoa(s.GPUInstanceID), strconv.Itoa(s.ComputeInstanceID)
		}
		gauge := func(d *prometheus.Desc, v *float64) {
			if v != nil {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, *v, lv...)
			}
		}
		gauge(c.util, s.UtilizationGPU)
		if !migParents[s.UUID] { // its MIG instances carry its memory; sum() stays true
			gauge(c.memUsed, bytes(s.MemoryUsed))
			gauge(c.memFree, bytes(s.MemoryFree))
			gauge(c.memTotal, bytes(s.MemoryTotal))
		}
		gauge(c.power, s.PowerWatts)
		if s.EnergyJoules != nil {
			ch <- prometheus.MustNewConstMetric(c.energy, prometheus.CounterValue, *s.EnergyJoules, lv...)
		}
		gauge(c.temp, s.TemperatureC)
		gauge(c.clock, s.SMClockHz)
	}
}

func bytes(v *uint64) *float64 {
	if v == nil {
		return nil
	}
	return ptr(float64(*v))
}

// countErrors counts the failures joined in err.
func countErrors(err error) int {
	var joined interface{ Unwrap() []error }
	switch {
	case err == nil:
		return 0
	case errors.As(err, &joined):
		return len(joined.Unwrap())
	}
	return 1
}
