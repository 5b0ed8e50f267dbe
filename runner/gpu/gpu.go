package gpu

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by an Inventory used after Close: NVML has been
// shut down and must not be called again.
var ErrClosed = errors.New("GPU inventory closed")

// Inventory is the runner's view of the GPUs. Implementations are safe for
// concurrent use; the Prometheus collector and a Sampler may share one.
//
// Devices and Sample return whatever they could read: a field NVML does not
// support is left unknown, a GPU that fell off the bus is reported with
// Lost set, and the error joins the NVML calls that failed otherwise.
type Inventory interface {
	// Status reports the outcome of NVML Init.
	Status() Status
	// Devices lists the physical GPUs with their MIG instances, by NVML
	// index. It is empty, with a nil error, when Status is not Available.
	Devices(ctx context.Context) ([]Device, error)
	// Sample reads the telemetry of every GPU and MIG instance once.
	Sample(ctx context.Context) ([]Sample, error)
	// Close releases NVML; it calls Shutdown only after a successful Init.
	Close() error
}

// Status is the outcome of Open. A machine without a GPU is not an error:
// callers print Reason once and carry on without GPU telemetry.
type Status struct {
	// Available reports a successful NVML Init. It may be true on a
	// machine whose driver sees no GPU; Devices is then empty.
	Available bool
	// Reason says why GPU telemetry is unavailable, such as "no GPU: NVML
	// library not found"; it is empty when Available.
	Reason string
	// DriverVersion is the NVIDIA driver version, when NVML reports it.
	DriverVersion string
}

func (s Status) String() string {
	switch {
	case !s.Available:
		return s.Reason
	case s.DriverVersion != "":
		return "GPU telemetry from NVML, driver " + s.DriverVersion
	}
	return "GPU telemetry from NVML"
}

// Options configure Open. The zero value loads libnvidia-ml.so.1 from the
// dynamic linker's search path and stamps samples with time.Now.
type Options struct {
	// LibraryPath is the NVML library to load, for drivers mounted
	// outside the search path (such as /run/nvidia/driver in Kubernetes).
	LibraryPath string
	// Now stamps samples; tests pin it.
	Now func() time.Time
}

// Device is a physical GPU. Memory is in bytes; it is zero when NVML could
// not read it, which Place treats as full.
type Device struct {
	Index       int // NVML index; prefer UUID, which CUDA_VISIBLE_DEVICES does not renumber
	UUID        string
	Name        string
	MemoryTotal uint64
	MemoryFree  uint64
	MemoryUsed  uint64
	// MIG reports MIG mode enabled: CUDA work then runs on MIGInstances,
	// not on the GPU as a whole.
	MIG          bool
	MIGInstances []MIGInstance
	// Utilization is the ratio 0–1 of time a kernel ran over the
	// driver's last sample period; nil when unknown, and always for a GPU
	// in MIG mode, where NVML does not report it.
	Utilization *float64
	// Lost reports NVML's ERROR_GPU_IS_LOST: the GPU fell off the bus or
	// needs a reset. UUID is then the last one read, if any.
	Lost bool
}

// MIGInstance is a MIG device: a GPU instance and compute instance of a
// parent GPU, addressed by its own UUID ("MIG-…").
type MIGInstance struct {
	UUID              string
	ParentUUID        string
	Name              string
	GPUInstanceID     int
	ComputeInstanceID int
	MemoryTotal       uint64
	MemoryFree        uint64
	MemoryUsed        uint64
}

// Sample is one reading of a GPU or MIG instance, in base units. A nil
// field is unknown: NVML does not support it on this device (utilization,
// power, energy, temperature and clock are never read for MIG instances) or
// the call failed.
type Sample struct {
	Time  time.Time
	Index int // NVML index of the GPU, or of the parent of a MIG instance
	UUID  string
	Name  string
	// ParentUUID, GPUInstanceID and ComputeInstanceID are set for MIG
	// instances only.
	ParentUUID        string
	GPUInstanceID     int
	ComputeInstanceID int
	Lost              bool

	UtilizationGPU *float64 // ratio 0–1 of time a kernel ran over the driver's last sample period
	MemoryUsed     *uint64
	MemoryFree     *uint64
	MemoryTotal    *uint64
	PowerWatts     *float64
	// EnergyJoules is the driver's energy counter: monotonic, but it starts
	// again from zero when the driver reloads or the GPU is reset, so take
	// differences only between readings that do not go down.
	EnergyJoules *float64
	TemperatureC *float64
	SMClockHz    *float64
}

// MIG reports whether s is a MIG instance.
func (s Sample) MIG() bool { return s.ParentUUID != "" }

// Unavailable returns an Inventory without GPUs: it lists nothing, samples
// nothing, never touches NVML, and reports reason in its Status.
func Unavailable(reason string) Inventory { return unavailable{Status{Reason: reason}} }

type unavailable struct{ status Status }

var _ Inventory = unavailable{}

func (u unavailable) Status() Status                          { return u.status }
func (unavailable) Devices(context.Context) ([]Device, error) { return []Device{}, nil }
func (unavailable) Sample(context.Context) ([]Sample, error)  { return []Sample{}, nil }
func (unavailable) Close() error                              { return nil }

func ptr[T any](v T) *T { return &v }
