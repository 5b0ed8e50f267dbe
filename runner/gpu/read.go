//go:build linux && cgo

package gpu

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func (n *nvmlInventory) rememberUUID(index int, uuid string) string {
	n.uuidMu.Lock()
	defer n.uuidMu.Unlock()
	if uuid == "" {
		return n.uuids[index]
	}
	n.uuids[index] = uuid
	return uuid
}

func (n *nvmlInventory) memory(r *reader, h nvml.Device) (nvml.Memory, bool) {
	if n.has.memoryV2 {
		m, ok := read(r, "memory", h.GetMemoryInfo_v2)
		return nvml.Memory{Total: m.Total, Free: m.Free, Used: m.Used}, ok
	}
	return read(r, "memory", h.GetMemoryInfo)
}

func (n *nvmlInventory) readTelemetry(r *reader, h nvml.Device, s *Sample) {
	if m, ok := n.memory(r, h); ok {
		s.MemoryTotal, s.MemoryFree, s.MemoryUsed = ptr(m.Total), ptr(m.Free), ptr(m.Used)
	}
	if u, ok := read(r, "utilization", h.GetUtilizationRates); ok {
		s.UtilizationGPU = ptr(float64(u.Gpu) / 100)
	}
	if mw, ok := read(r, "power", h.GetPowerUsage); ok {
		s.PowerWatts = ptr(float64(mw) / 1e3)
	}
	if n.has.energy {
		if mj, ok := read(r, "energy", h.GetTotalEnergyConsumption); ok {
			s.EnergyJoules = ptr(float64(mj) / 1e3)
		}
	}
	if n.has.temperature {
		temp := func() (uint32, nvml.Return) { return h.GetTemperature(nvml.TEMPERATURE_GPU) }
		if c, ok := read(r, "temperature", temp); ok {
			s.TemperatureC = ptr(float64(c))
		}
	}
	clock := func() (uint32, nvml.Return) { return h.GetClockInfo(nvml.CLOCK_SM) }
	if mhz, ok := read(r, "SM clock", clock); ok {
		s.SMClockHz = ptr(float64(mhz) * 1e6)
	}
}

func (n *nvmlInventory) migEnabled(r *reader, h nvml.Device) bool {
	if !n.has.mig {
		return false
	}
	mode := func() (int, nvml.Return) {
		current, _, ret := h.GetMigMode()
		return current, ret
	}
	current, ok := read(r, "MIG mode", mode)
	return ok && current == nvml.DEVICE_MIG_ENABLE
}

type migInstance struct {
	MIGInstance
	memoryKnown bool
}

// migInstances lists the MIG devices of parent. An instance whose UUID or
// instance IDs cannot be read is left out: it could not be addressed.
func (n *nvmlInventory) migInstances(r *reader, h nvml.Device, parent Device) []migInstance {
	slots, _ := read(r, "MIG device count", h.GetMaxMigDeviceCount)
	var out []migInstance
	for j := range slots {
		if r.lost {
			break
		}
		m, ret := h.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || !r.ok(ret, "MIG device") { // NOT_FOUND: an empty slot
			continue
		}
		uuid, okU := read(r, "MIG UUID", m.GetUUID)
		gi, okG := read(r, "GPU instance ID", m.GetGpuInstanceId)
		ci, okC := read(r, "compute instance ID", m.GetComputeInstanceId)
		if !okU || !okG || !okC {
			continue
		}
		mi := migInstance{MIGInstance: MIGInstance{UUID: uuid, ParentUUID: parent.UUID, Name: parent.Name,
			GPUInstanceID: gi, ComputeInstanceID: ci}}
		if name, ok := read(r, "MIG name", m.GetName); ok {
			mi.Name = name
		}
		if mem, ok := n.memory(r, m); ok {
			mi.MemoryTotal, mi.MemoryFree, mi.MemoryUsed, mi.memoryKnown = mem.Total, mem.Free, mem.Used, true
		}
		out = append(out, mi)
	}
	return out
}

// reader reads one GPU. NOT_SUPPORTED leaves a field unknown, GPU_IS_LOST
// marks the GPU lost and stops further calls on it, any other failure also
// leaves the field unknown and is kept in errs.
type reader struct {
	index int
	lost  bool
	errs  []error
}

func (r *reader) ok(ret nvml.Return, what string) bool {
	switch ret {
	case nvml.SUCCESS:
		return true
	case nvml.ERROR_NOT_SUPPORTED:
	case nvml.ERROR_GPU_IS_LOST:
		r.lost = true
	default:
		r.errs = append(r.errs, fmt.Errorf("reading %s of GPU %d: %w", what, r.index, ret))
	}
	return false
}

func read[T any](r *reader, what string, call func() (T, nvml.Return)) (T, bool) {
	var v T
	if r.lost {
		return v, false
	}
	v, ret := call()
	if !r.ok(ret, what) {
		var zero T
		return zero, false
	}
	return v, true
}
