//go:build !linux || !cgo

package gpu

import "runtime"

// Open reports GPU telemetry unavailable: NVML is reached through cgo on
// Linux only, and this binary is not such a build.
func Open(Options) (Inventory, Status) {
	st := Status{Reason: "GPU telemetry unavailable: built without cgo"}
	if runtime.GOOS != "linux" {
		st.Reason = "GPU telemetry unavailable: NVML is read on Linux only"
	}
	return Unavailable(st.Reason), st
}
