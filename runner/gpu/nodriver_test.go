//go:build linux && cgo

package gpu

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// initOnly passes Init to a library and panics on any other call (the
// embedded Interface is nil). After a failed Init the real library would
// not panic but kill the test binary with exit 127, which is loud too.
type initOnly struct {
	nvml.Interface
	lib   nvml.Interface
	inits int
}

func (l *initOnly) Init() nvml.Return {
	l.inits++
	return l.lib.Init()
}

// TestNoDriver runs the path every machine without the NVIDIA driver takes,
// against the real go-nvml library: Open reports why, and nothing calls
// NVML again — not Devices, Sample, the collector, a Sampler, nor Close.
func TestNoDriver(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		lib  nvml.Interface
	}{
		{"default path", nvml.New()},
		{"missing library", nvml.New(nvml.WithLibraryPath("/nonexistent/libnvidia-ml.so.1"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lib := &initOnly{lib: tc.lib}
			inv, st := OpenNVML(lib, Options{})
			if st.Available {
				if err := tc.lib.Shutdown(); err != nvml.SUCCESS {
					t.Errorf("Shutdown: %v", err)
				}
				t.Skip("this machine has an NVIDIA driver")
			}
			if want := "no GPU: NVML library not found"; st.Reason != want || inv.Status() != st || st.String() != want {
				t.Errorf("status %+v, want reason %q", st, want)
			}
			devs, err := inv.Devices(ctx)
			if err != nil || devs == nil || len(devs) != 0 {
				t.Errorf("Devices = %v, %v; want an empty list", devs, err)
			}
			if samples, err := inv.Sample(ctx); err != nil || len(samples) != 0 {
				t.Errorf("Sample = %v, %v; want nothing", samples, err)
			}

			c, err := NewCollector(nil, inv)
			if err != nil {
				t.Fatal(err)
			}
			if got := exposition(t, c); got != wantDown {
				t.Errorf("scrape without a driver:\n%s\nwant only:\n%s", got, wantDown)
			}

			sum := StartSampler(ctx, inv, SamplerOptions{NewTicker: newFakeTicker().new}).Stop(ctx)
			if len(sum.GPUs) != 0 || sum.Errors != 0 {
				t.Errorf("Sampler summary %+v, want no GPUs and no errors", sum)
			}
			if err := inv.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if lib.inits != 1 {
				t.Errorf("Init called %d times, want once", lib.inits)
			}
		})
	}
}

// TestInitFailureReasons checks that each Init failure is worded without
// asking NVML, which is unsafe after a failed Init.
func TestInitFailureReasons(t *testing.T) {
	for ret, want := range map[nvml.Return]string{
		nvml.ERROR_LIBRARY_NOT_FOUND:       "no GPU: NVML library not found",
		nvml.ERROR_DRIVER_NOT_LOADED:       "no GPU: NVIDIA driver not loaded",
		nvml.ERROR_NO_PERMISSION:           "no GPU: no permission to use NVML",
		nvml.ERROR_LIB_RM_VERSION_MISMATCH: "no GPU: NVML library and NVIDIA kernel driver versions differ",
		nvml.ERROR_UNKNOWN:                 "no GPU: NVML init failed with return code 999",
	} {
		s, _ := newServer(t, 8)
		s.InitFunc = func() nvml.Return { return ret }
		lib := &initOnly{lib: s}
		inv, st := OpenNVML(lib, Options{})
		if st.Available || st.Reason != want {
			t.Errorf("Init → %d: status %+v, want reason %q", int32(ret), st, want)
		}
		if devs, err := inv.Devices(t.Context()); len(devs) != 0 || err != nil {
			t.Errorf("Devices after failed Init = %v, %v", devs, err)
		}
		if err := inv.Close(); err != nil || len(s.ShutdownCalls()) != 0 {
			t.Errorf("Close after failed Init: err %v, %d Shutdown calls; want none", err, len(s.ShutdownCalls()))
		}
	}
}
