//go:build linux && cgo

package gpu

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestDevices(t *testing.T) {
	s, _ := newServer(t, 8)
	inv, st := OpenNVML(s, Options{})
	defer inv.Close()
	if !st.Available || st.DriverVersion != "550.54.15" || st.Reason != "" {
		t.Errorf("status %+v", st)
	}
	devs, err := inv.Devices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 8 {
		t.Fatalf("%d devices, want 8", len(devs))
	}
	want := Device{Index: 3, UUID: "GPU-00000003-0000-0000-0000-000000000000", Name: "Mock NVIDIA A100-SXM4-40GB",
		MemoryTotal: gib40, MemoryFree: gib40 - 4<<30, MemoryUsed: 4 << 30, Utilization: ptr(0.4)}
	if !reflect.DeepEqual(devs[3], want) {
		t.Errorf("device 3 = %+v\nwant       %+v", devs[3], want)
	}
}

func TestMemoryInfoVersion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v2       bool
		wantUsed uint64
	}{
		{"v2 when the library has it", true, 1 << 30},
		{"v1 on older drivers", false, 1<<30 + 512<<20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, devs := newServer(t, 1)
			// v1 counts the driver's reserved memory as used, v2 apart.
			devs[0].MemoryInfo.Used += 512 << 20
			devs[0].GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
				return nvml.Memory_v2{Total: gib40, Reserved: 512 << 20, Used: 1 << 30, Free: gib40 - 1<<30 - 512<<20}, nvml.SUCCESS
			}
			if !tc.v2 {
				withoutSymbols(s, "nvmlDeviceGetMemoryInfo_v2")
				devs[0].GetMemoryInfo_v2Func = nil // calling it would panic
			}
			devs2, err := openMock(t, s).Devices(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := devs2[0].MemoryUsed; got != tc.wantUsed {
				t.Errorf("used %d, want %d", got, tc.wantUsed)
			}
		})
	}
}

func TestMIG(t *testing.T) {
	s, devs := newServer(t, 2)
	enableMIG(devs[0])
	inv := openMock(t, s)

	got, err := inv.Devices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].MIG || got[1].MIG {
		t.Errorf("MIG = %v, %v; want GPU 0 only", got[0].MIG, got[1].MIG)
	}
	want := []MIGInstance{
		{UUID: "MIG-00000000-0", ParentUUID: devs[0].UUID, Name: "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
			GPUInstanceID: 1, ComputeInstanceID: 0, MemoryTotal: 20 << 30, MemoryFree: 19 << 30, MemoryUsed: 1 << 30},
		{UUID: "MIG-00000000-1", ParentUUID: devs[0].UUID, Name: "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
			GPUInstanceID: 2, ComputeInstanceID: 0, MemoryTotal: 20 << 30, MemoryFree: 18 << 30, MemoryUsed: 2 << 30},
	}
	if !reflect.DeepEqual(got[0].MIGInstances, want) {
		t.Errorf("MIG instances\n got %+v\nwant %+v", got[0].MIGInstances, want)
	}

	samples, err := inv.Sample(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var uuids []string
	for _, s := range samples {
		uuids = append(uuids, s.UUID)
	}
	if want := []string{devs[0].UUID, "MIG-00000000-0", "MIG-00000000-1", devs[1].UUID}; !reflect.DeepEqual(uuids, want) {
		t.Fatalf("samples of %v, want %v", uuids, want)
	}
	parent, mig := samples[0], samples[2]
	if parent.UtilizationGPU != nil || parent.PowerWatts == nil || parent.MIG() {
		t.Errorf("MIG parent: utilization %v (want unknown), power %v (want known)", parent.UtilizationGPU, parent.PowerWatts)
	}
	if !mig.MIG() || mig.ParentUUID != devs[0].UUID || mig.GPUInstanceID != 2 || *mig.MemoryUsed != 2<<30 ||
		mig.UtilizationGPU != nil || mig.PowerWatts != nil || mig.EnergyJoules != nil {
		t.Errorf("MIG sample %+v", mig)
	}
}

// TestMIGOnOldDriver checks that MIG calls are not made when the library
// lacks one of them (go-nvml #17: that call would kill the process).
func TestMIGOnOldDriver(t *testing.T) {
	s, devs := newServer(t, 1)
	enableMIG(devs[0])
	devs[0].GetMigModeFunc = nil // calling it would panic
	withoutSymbols(s, "nvmlDeviceGetGpuInstanceId")
	got, err := openMock(t, s).Devices(t.Context())
	if err != nil || got[0].MIG || got[0].MIGInstances != nil {
		t.Errorf("Devices = %+v, %v; want no MIG", got, err)
	}
}

func TestSample(t *testing.T) {
	s, _ := newServer(t, 2)
	samples, err := openMock(t, s).Sample(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := Sample{
		Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Index: 1,
		UUID: "GPU-00000001-0000-0000-0000-000000000000", Name: "Mock NVIDIA A100-SXM4-40GB",
		UtilizationGPU: ptr(0.2), MemoryUsed: ptr[uint64](2 << 30), MemoryFree: ptr[uint64](gib40 - 2<<30),
		MemoryTotal: ptr[uint64](gib40), PowerWatts: ptr(101.0), EnergyJoules: ptr(2000.0),
		TemperatureC: ptr(41.0), SMClockHz: ptr(1.41e9),
	}
	if len(samples) != 2 || !reflect.DeepEqual(samples[1], want) {
		t.Errorf("samples %v\nwant [_ %v]", samples, want)
	}
}

// TestSampleUnknown checks that a field NVML does not support is unknown
// without an error, and that a failing call leaves its field unknown,
// reports the error and spares the other fields.
func TestSampleUnknown(t *testing.T) {
	for _, ret := range []nvml.Return{nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_UNKNOWN} {
		t.Run(ret.Error(), func(t *testing.T) {
			s, devs := newServer(t, 2)
			devs[1].GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, ret }
			devs[1].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, ret }
			samples, err := openMock(t, s).Sample(t.Context())
			if ret == nvml.ERROR_NOT_SUPPORTED && err != nil {
				t.Errorf("unsupported fields gave error %v", err)
			}
			if ret == nvml.ERROR_UNKNOWN && (!errors.Is(err, nvml.ERROR_UNKNOWN) || countErrors(err) != 2 ||
				!strings.Contains(err.Error(), "reading power of GPU 1")) {
				t.Errorf("error %v, want power and temperature of GPU 1 failing", err)
			}
			got := samples[1]
			if got.PowerWatts != nil || got.TemperatureC != nil {
				t.Errorf("power %v, temperature %v; want unknown", got.PowerWatts, got.TemperatureC)
			}
			if got.UtilizationGPU == nil || got.EnergyJoules == nil || got.SMClockHz == nil || samples[0].PowerWatts == nil {
				t.Errorf("other fields lost: %+v", got)
			}
		})
	}
}

func TestEnergyOnOldDriver(t *testing.T) {
	s, devs := newServer(t, 1)
	withoutSymbols(s, "nvmlDeviceGetTotalEnergyConsumption")
	devs[0].GetTotalEnergyConsumptionFunc = nil // calling it would panic
	samples, err := openMock(t, s).Sample(t.Context())
	if err != nil || samples[0].EnergyJoules != nil || samples[0].PowerWatts == nil {
		t.Errorf("sample %+v, %v; want energy unknown", samples[0], err)
	}
}

func TestGPULost(t *testing.T) {
	s, devs := newServer(t, 3)
	inv := openMock(t, s)
	if _, err := inv.Devices(t.Context()); err != nil { // learns the UUIDs
		t.Fatal(err)
	}
	// GPU 1 is lost while being read; GPU 2 cannot even be opened.
	devs[1].GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST }
	devs[1].GetTotalEnergyConsumptionFunc = nil // no call after the loss
	devs[1].GetTemperatureFunc = nil
	devs[1].GetClockInfoFunc = nil
	s.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 2 {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		return s.Devices[i], nvml.SUCCESS
	}

	samples, err := inv.Sample(t.Context())
	if err != nil {
		t.Errorf("a lost GPU is reported, not an error: %v", err)
	}
	if len(samples) != 3 || samples[0].Lost || !samples[1].Lost || !samples[2].Lost {
		t.Fatalf("samples %+v; want GPUs 1 and 2 lost", samples)
	}
	if samples[1].UtilizationGPU == nil || samples[1].PowerWatts != nil {
		t.Errorf("GPU 1: fields read before the loss are kept, none after: %+v", samples[1])
	}
	if samples[2].UUID != devs[2].UUID {
		t.Errorf("lost GPU 2 named %q, want its last UUID %q", samples[2].UUID, devs[2].UUID)
	}
	got, _ := inv.Devices(t.Context())
	if !got[2].Lost || got[2].UUID != devs[2].UUID || got[2].MemoryTotal != 0 {
		t.Errorf("Devices reports GPU 2 as %+v", got[2])
	}
}

func TestClose(t *testing.T) {
	s, _ := newServer(t, 2)
	inv, _ := OpenNVML(s, Options{})
	for range 2 {
		if err := inv.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want once", n)
	}
	counted := len(s.DeviceGetCountCalls())
	if _, err := inv.Devices(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Devices after Close: %v, want ErrClosed", err)
	}
	if _, err := inv.Sample(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Sample after Close: %v, want ErrClosed", err)
	}
	if len(s.DeviceGetCountCalls()) != counted {
		t.Error("NVML called after Shutdown")
	}
}

func TestCancelled(t *testing.T) {
	s, _ := newServer(t, 8)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := openMock(t, s).Sample(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sample with a cancelled context: %v", err)
	}
}
