//go:build linux && cgo

package gpu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Open loads NVML and initialises it once; see OpenNVML.
func Open(opts Options) (Inventory, Status) {
	var lo []nvml.LibraryOption
	if opts.LibraryPath != "" {
		lo = append(lo, nvml.WithLibraryPath(opts.LibraryPath))
	}
	return OpenNVML(nvml.New(lo...), opts)
}

// OpenNVML is Open over a given library, such as a go-nvml mock. It calls
// lib.Init once. When Init fails it returns Unavailable and never calls lib
// again, not even Shutdown: without the driver, any further NVML call
// kills the process with exit 127 (a symbol lookup error, not a panic).
// When Init succeeds, Close calls Shutdown.
func OpenNVML(lib nvml.Interface, opts Options) (Inventory, Status) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		st := Status{Reason: initFailure(ret)}
		return Unavailable(st.Reason), st
	}
	st := Status{Available: true}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		st.DriverVersion = v
	}
	return &nvmlInventory{
		lib:    lib,
		now:    opts.now(),
		status: st,
		has:    lookupSymbols(lib.Extensions()),
		uuids:  map[int]string{},
	}, st
}

// initFailure words a failed Init without asking NVML: even ErrorString
// goes through the library.
func initFailure(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "no GPU: NVML library not found"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "no GPU: NVIDIA driver not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no GPU: no permission to use NVML"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "no GPU: NVML library and NVIDIA kernel driver versions differ"
	}
	return fmt.Sprintf("no GPU: NVML init failed with return code %d", int32(ret))
}

// symbols records which newer NVML entry points the loaded library has.
// Calling one it lacks kills the process like a call without Init does
// (go-nvml #17), so each is looked up once before use.
type symbols struct {
	memoryV2 bool // nvmlDeviceGetMemoryInfo_v2 (separates reserved memory)
	mig      bool
	energy   bool
	// nvmlDeviceGetTemperature is deprecated since NVML 13 (in favour of
	// nvmlDeviceGetTemperatureV); a driver that drops it must not kill us.
	temperature bool
}

func lookupSymbols(ext nvml.ExtendedInterface) symbols {
	has := func(names ...string) bool {
		for _, n := range names {
			if ext.LookupSymbol(n) != nil {
				return false
			}
		}
		return true
	}
	return symbols{
		memoryV2: has("nvmlDeviceGetMemoryInfo_v2"),
		mig: has("nvmlDeviceGetMigMode", "nvmlDeviceGetMaxMigDeviceCount", "nvmlDeviceGetMigDeviceHandleByIndex",
			"nvmlDeviceGetGpuInstanceId", "nvmlDeviceGetComputeInstanceId"),
		energy:      has("nvmlDeviceGetTotalEnergyConsumption"),
		temperature: has("nvmlDeviceGetTemperature"),
	}
}

func (o Options) now() func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// nvmlInventory exists only after a successful Init.
type nvmlInventory struct {
	lib    nvml.Interface
	now    func() time.Time
	status Status
	has    symbols

	mu     sync.RWMutex // read-held around NVML calls, write-held by Close
	closed bool

	uuidMu sync.Mutex
	uuids  map[int]string // last UUID read per index, to name a lost GPU
}

var _ Inventory = (*nvmlInventory)(nil)

func (n *nvmlInventory) Status() Status { return n.status }

func (n *nvmlInventory) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if ret := n.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("shutting down NVML: %w", ret)
	}
	return nil
}

func (n *nvmlInventory) Devices(ctx context.Context) ([]Device, error) {
	var devs []Device
	err := n.each(ctx, func(r *reader, h nvml.Device, d Device) {
		if !r.lost {
			if m, ok := n.memory(r, h); ok {
				d.MemoryTotal, d.MemoryFree, d.MemoryUsed = m.Total, m.Free, m.Used
			}
			d.MIG = n.migEnabled(r, h)
			if !d.MIG {
				if u, ok := read(r, "utilization", h.GetUtilizationRates); ok {
					d.Utilization = ptr(float64(u.Gpu) / 100)
				}
			}
		}
		if d.MIG {
			for _, m := range n.migInstances(r, h, d) {
				d.MIGInstances = append(d.MIGInstances, m.MIGInstance)
			}
		}
		d.Lost = r.lost
		devs = append(devs, d)
	})
	if devs == nil {
		devs = []Device{}
	}
	return devs, err
}

func (n *nvmlInventory) Sample(ctx context.Context) ([]Sample, error) {
	now := n.now()
	var out []Sample
	err := n.each(ctx, func(r *reader, h nvml.Device, d Device) {
		s := Sample{Time: now, Index: d.Index, UUID: d.UUID, Name: d.Name}
		var migs []migInstance
		if !r.lost {
			n.readTelemetry(r, h, &s)
			if n.migEnabled(r, h) {
				migs = n.migInstances(r, h, d)
			}
		}
		s.Lost = r.lost
		out = append(out, s)
		for _, m := range migs {
			ms := Sample{Time: now, Index: d.Index, UUID: m.UUID, Name: m.Name, ParentUUID: m.ParentUUID,
				GPUInstanceID: m.GPUInstanceID, ComputeInstanceID: m.ComputeInstanceID}
			if m.memoryKnown {
				ms.MemoryTotal, ms.MemoryFree, ms.MemoryUsed = ptr(m.MemoryTotal), ptr(m.MemoryFree), ptr(m.MemoryUsed)
			}
			out = append(out, ms)
		}
	})
	if out == nil {
		out = []Sample{}
	}
	return out, err
}

// each calls fn for every GPU whose handle and UUID could be read, and for
// every lost GPU (with a nil handle when the loss showed on opening it).
func (n *nvmlInventory) each(ctx context.Context, fn func(r *reader, h nvml.Device, d Device)) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return ErrClosed
	}
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("counting GPUs: %w", ret)
	}
	var errs []error
	for i := range count {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := &reader{index: i}
		h, _ := read(r, "handle", func() (nvml.Device, nvml.Return) { return n.lib.DeviceGetHandleByIndex(i) })
		d := Device{Index: i}
		if h != nil {
			d.UUID, _ = read(r, "UUID", h.GetUUID)
			d.Name, _ = read(r, "name", h.GetName)
		}
		d.UUID = n.rememberUUID(i, d.UUID)
		if r.lost || h != nil && d.UUID != "" {
			d.Lost = r.lost
			fn(r, h, d)
		}
		errs = append(errs, r.errs...)
	}
	return errors.Join(errs...)
}
