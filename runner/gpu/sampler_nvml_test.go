//go:build linux && cgo

package gpu

import (
	"reflect"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// seq answers each call with the next value, then repeats the last.
func seq[T any](vals ...T) func() T {
	i := 0
	return func() T {
		v := vals[min(i, len(vals)-1)]
		i++
		return v
	}
}

// TestSamplerRun records a run on two mock GPUs: a first sample at start,
// two ticks and a last sample at Stop. GPU 1's energy counter starts again
// from zero mid-run, so its energy is unknown rather than wrong.
func TestSamplerRun(t *testing.T) {
	s, devs := newServer(t, 2)
	energy0 := seq[uint64](1_000_000, 1_010_000, 1_025_000, 1_050_000)
	energy1 := seq[uint64](2_000_000, 2_005_000, 10_000, 20_000)
	util0 := seq[uint32](20, 40, 60, 80)
	used0 := seq[uint64](1<<30, 3<<30, 2<<30, 1<<30)
	devs[0].GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return energy0(), nvml.SUCCESS }
	devs[1].GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return energy1(), nvml.SUCCESS }
	devs[0].GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: util0()}, nvml.SUCCESS }
	devs[0].GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		u := used0()
		return nvml.Memory_v2{Total: gib40, Used: u, Free: gib40 - u}, nvml.SUCCESS
	}

	ft := newFakeTicker()
	sampler := StartSampler(t.Context(), openMock(t, s), SamplerOptions{NewTicker: ft.new})
	ft.tick()
	ft.tick()
	sum := sampler.Stop(t.Context())

	start := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC) // fakeNow: one second per Sample call
	if sum.Samples != 4 || sum.Errors != 0 || !sum.Start.Equal(start) || !sum.End.Equal(start.Add(3*time.Second)) {
		t.Errorf("run: %d samples, %d errors, %v–%v", sum.Samples, sum.Errors, sum.Start, sum.End)
	}
	want := []GPUSummary{
		{Index: 0, UUID: devs[0].UUID, Name: "Mock NVIDIA A100-SXM4-40GB", Samples: 4,
			PeakMemoryUsed: ptr[uint64](3 << 30), MeanUtilization: ptr(0.5), PeakUtilization: ptr(0.8), EnergyJoules: ptr(50.0)},
		{Index: 1, UUID: devs[1].UUID, Name: "Mock NVIDIA A100-SXM4-40GB", Samples: 4,
			PeakMemoryUsed: ptr[uint64](2 << 30), MeanUtilization: ptr(0.2), PeakUtilization: ptr(0.2), EnergyReset: true},
	}
	if !reflect.DeepEqual(sum.GPUs, want) {
		t.Errorf("GPUs\n got %+v\nwant %+v", sum.GPUs, want)
	}
}
