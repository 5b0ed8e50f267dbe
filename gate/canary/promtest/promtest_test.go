package promtest_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/gate/canary/promtest"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
)

func query(t *testing.T, base, q string, at time.Time) model.Vector {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: base})
	if err != nil {
		t.Fatal(err)
	}
	v, _, _, err := v1.NewAPI(c).Query(t.Context(), q, at)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		t.Fatalf("%s: %s, want a vector", q, v.Type())
	}
	return vec
}

// TestBackfill: samples written with OpenMetrics and backfilled are served
// at their timestamps, including an escaped label value.
func TestBackfill(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	var om promtest.OpenMetrics
	om.Family("jobs_done", "counter")
	for i := range 11 {
		om.Sample("jobs_done_total", float64(10*i), start.Add(time.Duration(i)*time.Second), "queue", `a "quoted"\name`)
	}
	srv := promtest.Start(t, promtest.Options{DataDir: promtest.Backfill(t, om.Bytes())})
	vec := query(t, srv.URL, `increase(jobs_done_total{queue="a \"quoted\"\\name"}[10s])`, start.Add(10*time.Second))
	if len(vec) != 1 || vec[0].Value != 100 {
		t.Fatalf("increase over the backfilled 10s: %v, want 100", vec)
	}
	if vec := query(t, srv.URL, `jobs_done_total`, start.Add(5*time.Second)); len(vec) != 1 || vec[0].Value != 50 {
		t.Fatalf("the sample at 5s: %v, want 50", vec)
	}
}

// TestScrape: Start scrapes its targets; the test polls, with a deadline,
// until the first scrape has landed.
func TestScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "promtest_requests_total", Help: "Requests."})
	reg.MustRegister(c)
	c.Add(7)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()
	srv := promtest.Start(t, promtest.Options{ScrapeTargets: []string{strings.TrimPrefix(target.URL, "http://")}, ScrapeInterval: 100 * time.Millisecond})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		vec := query(t, srv.URL, "promtest_requests_total", time.Time{})
		if len(vec) == 1 {
			if vec[0].Value != 7 {
				t.Fatalf("scraped %v, want 7", vec[0].Value)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no scrape of %s within 30s; log:\n%s", target.URL, srv.Logs())
		case <-tick.C:
		}
	}
}
