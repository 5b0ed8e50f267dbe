//go:build !linux || !cgo

package gpu

import (
	"runtime"
	"testing"
)

func TestOpenWithoutCgo(t *testing.T) {
	inv, st := Open(Options{})
	want := "GPU telemetry unavailable: built without cgo"
	if runtime.GOOS != "linux" {
		want = "GPU telemetry unavailable: NVML is read on Linux only"
	}
	if st.Available || st.Reason != want || inv.Status() != st {
		t.Errorf("status %+v, want reason %q", st, want)
	}
	if devs, err := inv.Devices(t.Context()); err != nil || devs == nil || len(devs) != 0 {
		t.Errorf("Devices = %v, %v; want an empty list", devs, err)
	}
	if err := inv.Close(); err != nil {
		t.Error(err)
	}
}
