package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsFromARun(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.RunInfo("run-1", "fake-model", "sha256:abc", "fake", "closed")
	f := &fakeEngine{ttft: time.Millisecond, tokens: 3, fail: func(r *Request, n int) *Error {
		if r.ID == "r0" {
			return &Error{Class: ClassHTTP5xx, Status: 503}
		}
		return nil
	}}
	if _, err := Run(t.Context(), f, reqs(4), Options{Metrics: m, SLO: SLO{TTFT: Duration(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
	want := `
# HELP airlock_bench_requests_total Requests the runner finished, by outcome (success, error, timeout, cancelled) and error class.
# TYPE airlock_bench_requests_total counter
airlock_bench_requests_total{endpoint="inproc",error_class="",model="fake-model",outcome="success"} 3
airlock_bench_requests_total{endpoint="inproc",error_class="http_5xx",model="fake-model",outcome="error"} 1
# HELP airlock_bench_tokens_total Tokens of successful requests, by type (input, output) and count source (server, client).
# TYPE airlock_bench_tokens_total counter
airlock_bench_tokens_total{model="fake-model",source="client",type="output"} 0
airlock_bench_tokens_total{model="fake-model",source="server",type="input"} 15
airlock_bench_tokens_total{model="fake-model",source="server",type="output"} 9
# HELP airlock_bench_good_requests_total Successful requests meeting the run's SLO (the goodput numerator).
# TYPE airlock_bench_good_requests_total counter
airlock_bench_good_requests_total{model="fake-model",slo="ttft<=1h0m0s"} 3
# HELP airlock_bench_requests_in_flight Requests sent and not yet finished.
# TYPE airlock_bench_requests_in_flight gauge
airlock_bench_requests_in_flight{model="fake-model"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "airlock_bench_requests_total",
		"airlock_bench_tokens_total", "airlock_bench_good_requests_total", "airlock_bench_requests_in_flight"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.ttft); n != 1 {
		t.Errorf("ttft series %d, want 1", n)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry should fail")
	}
}
