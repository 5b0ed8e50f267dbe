//go:build linux && cgo

package gpu

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

const gib40 = 42949672960 // memory of the mock A100-SXM4-40GB

// fakeNow is a clock for tests: each reading is one second after the last.
func fakeNow() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

// newServer returns go-nvml's mock DGX A100 with n of its 8 GPUs visible,
// fixed UUIDs, and answers for the calls dgxa100 leaves nil (its devices
// panic on those, which the tests use to prove a call is not made). GPU i
// has i+1 GiB in use, 10(i+1)% utilization, 100+i W, (i+1)·1000 J used and
// runs at 40+i °C, 1410 MHz. Tests override Func fields to inject failures.
func newServer(t *testing.T, n int) (*dgxa100.Server, []*dgxa100.Device) {
	t.Helper()
	s := dgxa100.New()
	s.DeviceGetCountFunc = func() (int, nvml.Return) { return n, nvml.SUCCESS }
	var devs []*dgxa100.Device
	for i := range n {
		d := s.Devices[i].(*dgxa100.Device)
		d.UUID = fmt.Sprintf("GPU-%08d-0000-0000-0000-000000000000", i)
		used := uint64(i+1) << 30
		d.MemoryInfo = nvml.Memory{Total: gib40, Used: used, Free: gib40 - used}
		d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
			m := d.MemoryInfo
			return nvml.Memory_v2{Total: m.Total, Used: m.Used, Free: m.Free}, nvml.SUCCESS
		}
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(10 * (i + 1)), Memory: 5}, nvml.SUCCESS
		}
		d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(100_000 + 1000*i), nvml.SUCCESS }
		d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return uint64(i+1) * 1_000_000, nvml.SUCCESS }
		d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(40 + i), nvml.SUCCESS }
		d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
			if c != nvml.CLOCK_SM {
				t.Errorf("GetClockInfo(%v), want CLOCK_SM", c)
			}
			return 1410, nvml.SUCCESS
		}
		devs = append(devs, d)
	}
	return s, devs
}

// enableMIG puts d in MIG mode with two 3g.20gb instances (GPU instances 1
// and 2, compute instance 0) in slots 0 and 1 of 7.
func enableMIG(d *dgxa100.Device) []*mock.Device {
	d.MigMode = nvml.DEVICE_MIG_ENABLE
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	var migs []*mock.Device
	for j := range 2 {
		used := uint64(j+1) << 30
		migs = append(migs, &mock.Device{
			GetUUIDFunc:              func() (string, nvml.Return) { return fmt.Sprintf("MIG-%s-%d", d.UUID[4:12], j), nvml.SUCCESS },
			GetNameFunc:              func() (string, nvml.Return) { return "NVIDIA A100-SXM4-40GB MIG 3g.20gb", nvml.SUCCESS },
			GetGpuInstanceIdFunc:     func() (int, nvml.Return) { return j + 1, nvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
			GetMemoryInfo_v2Func: func() (nvml.Memory_v2, nvml.Return) {
				return nvml.Memory_v2{Total: 20 << 30, Used: used, Free: 20<<30 - used}, nvml.SUCCESS
			},
		})
	}
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(j int) (nvml.Device, nvml.Return) {
		if j < len(migs) {
			return migs[j], nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	return migs
}

// withoutSymbols makes the mock library lack the named NVML symbols.
func withoutSymbols(s *dgxa100.Server, names ...string) {
	s.LookupSymbolFunc = func(sym string) error {
		for _, n := range names {
			if sym == n {
				return errors.New("undefined symbol: " + sym)
			}
		}
		return nil
	}
}

// openMock opens an inventory over s and closes it at the end of the test.
func openMock(t *testing.T, s nvml.Interface) Inventory {
	t.Helper()
	inv, st := OpenNVML(s, Options{Now: fakeNow()})
	if !st.Available {
		t.Fatalf("OpenNVML: %v", st)
	}
	t.Cleanup(func() {
		if err := inv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return inv
}
