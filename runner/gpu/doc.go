// Package gpu owns what Airlock knows about the machine's NVIDIA GPUs: the
// inventory the runner places jobs on (free memory, MIG instances), the
// telemetry a benchmark records (utilization, memory, power, energy,
// temperature, SM clock) and the airlock_gpu_* Prometheus metrics
// (DESIGN.md §4). It is the only package that imports go-nvml (DESIGN.md
// §2) outside tests; the runner's queue tests import go-nvml's mock DGX A100
// to drive it.
//
// A machine without a GPU is a normal place to run Airlock: Open then
// returns an inventory with no devices and a Status whose Reason the caller
// prints once. After a failed NVML Init the package never calls NVML
// again, not even Shutdown, because on a machine without the driver any
// further call terminates the process (docs/gpu.md).
//
// The NVML-backed code needs cgo and Linux; other builds get the same API
// over an inventory that reports "GPU telemetry unavailable".
package gpu
