package runner

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner/gpu"
)

func f64(v float64) *float64 { return &v }
func u64(v uint64) *uint64   { return &v }

func TestGPUReport(t *testing.T) {
	none := NewGPUReport(gpu.Status{Reason: "no GPU: NVML library not found"}, nil, 100)
	if none.Status != "no GPU: NVML library not found" || none.Summary != nil || none.EnergyPerOutputTokenJoules != nil {
		t.Errorf("no GPU: %+v", none)
	}
	sum := &gpu.Summary{GPUs: []gpu.GPUSummary{
		{UUID: "GPU-a", EnergyJoules: f64(300), PeakMemoryUsed: u64(20 << 30), MeanUtilization: f64(0.5), PeakUtilization: f64(0.9)},
		{UUID: "GPU-b", EnergyJoules: f64(100)},
		{UUID: "MIG-c", ParentUUID: "GPU-a"}, // a MIG instance's energy is its parent's
	}}
	r := NewGPUReport(gpu.Status{Available: true, DriverVersion: "550.1"}, sum, 200)
	if r.EnergyPerOutputTokenJoules == nil || *r.EnergyPerOutputTokenJoules != 2 {
		t.Errorf("energy per token %v, want (300+100)/200 = 2 J", r.EnergyPerOutputTokenJoules)
	}
	sum.GPUs[1].EnergyJoules = nil // a GPU whose counter reset: unknown, not understated
	if r := NewGPUReport(gpu.Status{Available: true}, sum, 200); r.EnergyPerOutputTokenJoules != nil {
		t.Errorf("energy per token %v with one GPU unknown, want none", *r.EnergyPerOutputTokenJoules)
	}

	rep := &Report{Schema: ReportSchema, RunID: "run-1", Engine: EngineInfo{Kind: "openai", Endpoint: "http://h", Model: "m"},
		Load: Load{Arrival: Poisson, Rate: 5, Concurrency: 8, Requests: 3}, Release: &Release{Digest: "sha256:ab"}, GPU: r,
		Summary: Summarize(&Result{Duration: Duration(time.Second), Timelines: []*Timeline{
			{ID: "a", Sent: ms(1), Done: ms(50), Attempts: 1, Events: []Event{{At: ms(10), Kind: EventContent}, {At: ms(20), Kind: EventContent}}},
			{ID: "b", Attempts: 1, Error: &Error{Class: ClassTimeout}},
		}}, SLO{})}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"run run-1 of sha256:ab on openai http://h (model m)", "poisson arrivals at 5 req/s, at most 8 in flight",
		"2 measured", "1 failed (50.00%)", "errors: timeout 1", "ttft", "10.00", "peak memory 20.00 GiB", "utilisation mean 50% peak 90%",
		"energy per output token 2.0000 J", "1 requests counted by stream events"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Summary.TTFT.P50 != rep.Summary.TTFT.P50 || back.Load.Arrival != Poisson || *back.GPU.EnergyPerOutputTokenJoules != 2 {
		t.Errorf("report does not round-trip through JSON:\n%s", js.String())
	}
}
