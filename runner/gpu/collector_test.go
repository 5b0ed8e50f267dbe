package gpu

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

const wantDown = `# HELP airlock_gpu_collector_up 1 when NVML initialised and the GPUs are read, 0 when GPU telemetry is unavailable.
# TYPE airlock_gpu_collector_up gauge
airlock_gpu_collector_up 0
`

// scrape gathers c through a pedantic registry, which also checks that
// every series matches a Desc from Describe, and returns its families.
func scrape(t *testing.T, c prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// exposition is one scrape of c in the text format, limited to the named
// families when names are given.
func exposition(t *testing.T, c prometheus.Collector, names ...string) string {
	t.Helper()
	var b strings.Builder
	for _, mf := range scrape(t, c) {
		if len(names) > 0 && !slices.Contains(names, mf.GetName()) {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// series counts the series of family name in one scrape of c.
func series(t *testing.T, c prometheus.Collector, name string) int {
	t.Helper()
	for _, mf := range scrape(t, c) {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func lint(t *testing.T, c prometheus.Collector) {
	t.Helper()
	problems, err := promlint.NewWithMetricFamilies(scrape(t, c)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

func TestCollectorUnavailable(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := NewCollector(reg, Unavailable("no GPU: test"))
	if err != nil {
		t.Fatal(err)
	}
	if got := exposition(t, c); got != wantDown {
		t.Errorf("scrape without GPUs:\n%s\nwant:\n%s", got, wantDown)
	}
	if n := series(t, c, "airlock_gpu_collector_up"); n != 1 {
		t.Errorf("%d collector_up series, want 1", n)
	}
	lint(t, c)
	if _, err := NewCollector(reg, Unavailable("no GPU: test")); err == nil {
		t.Error("a second collector registered on the same registry")
	}
}
