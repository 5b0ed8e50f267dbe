package gpu

import (
	"fmt"
	"reflect"
	"testing"
)

const gb = 1 << 30

// node is four 40 GiB GPUs (1 has the most free memory), GPU 4 lost, and
// GPU 5 in MIG mode with a 20 GiB and a 10 GiB instance.
func node() []Device {
	devs := []Device{
		{Index: 0, UUID: "GPU-0", MemoryTotal: 40 * gb, MemoryFree: 10 * gb},
		{Index: 1, UUID: "GPU-1", MemoryTotal: 40 * gb, MemoryFree: 38 * gb},
		{Index: 2, UUID: "GPU-2", MemoryTotal: 40 * gb, MemoryFree: 30 * gb},
		{Index: 3, UUID: "GPU-3", MemoryTotal: 40 * gb, MemoryFree: 30 * gb},
		{Index: 4, UUID: "GPU-4", Lost: true},
		{Index: 5, UUID: "GPU-5", MemoryTotal: 40 * gb, MemoryFree: 40 * gb, MIG: true, MIGInstances: []MIGInstance{
			{UUID: "MIG-5a", ParentUUID: "GPU-5", GPUInstanceID: 1, MemoryTotal: 20 * gb, MemoryFree: 20 * gb},
			{UUID: "MIG-5b", ParentUUID: "GPU-5", GPUInstanceID: 2, MemoryTotal: 10 * gb, MemoryFree: 10 * gb},
		}},
	}
	return devs
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		devs   []Device
		need   Need
		want   []string
		ok     bool
		reason string
	}{
		{"no GPU needed", node(), Need{}, []string{}, true, "no GPU needed"},
		{"least loaded first", node(), Need{GPUs: 1, MemoryBytes: 20 * gb}, []string{"GPU-1"}, true,
			"least loaded 1 of 3 fitting: GPU 1 (38.0 GiB free)"},
		{"ties go to the lower index", node(), Need{GPUs: 3, MemoryBytes: 20 * gb}, []string{"GPU-1", "GPU-2", "GPU-3"}, true,
			"least loaded 3 of 3 fitting: GPU 1 (38.0 GiB free), GPU 2 (30.0 GiB free), GPU 3 (30.0 GiB free)"},
		{"exactly enough memory fits", node(), Need{GPUs: 4, MemoryBytes: 10 * gb}, []string{"GPU-1", "GPU-2", "GPU-3", "GPU-0"}, true,
			"least loaded 4 of 4 fitting: GPU 1 (38.0 GiB free), GPU 2 (30.0 GiB free), GPU 3 (30.0 GiB free), GPU 0 (10.0 GiB free)"},
		{"not enough memory", node(), Need{GPUs: 2, MemoryBytes: 35 * gb}, nil, false,
			"need 2 GPU(s) with 35.0 GiB free: 1 of 4 candidate(s) fit (1 lost, 1 in MIG mode not usable)"},
		{"an idle MIG instance before a busy GPU", node(), Need{GPUs: 1, MemoryBytes: 5 * gb, AllowMIG: true}, []string{"MIG-5a"}, true,
			"least loaded 1 of 6 fitting: GPU 5 MIG 1/0 (20.0 GiB free)"},
		{"multi-GPU jobs get whole GPUs only", node(), Need{GPUs: 5, AllowMIG: true}, nil, false,
			"need 5 GPU(s) with 0.0 GiB free: 4 of 4 candidate(s) fit (1 lost, 1 in MIG mode not usable)"},
		{"unknown memory counts as full", []Device{{Index: 0, UUID: "GPU-0"}, {Index: 1, UUID: "GPU-1", MemoryTotal: 40 * gb, MemoryFree: 1}},
			Need{GPUs: 1}, []string{"GPU-1"}, true, "least loaded 1 of 2 fitting: GPU 1 (0.0 GiB free)"},
		{"no GPUs", []Device{}, Need{GPUs: 1}, nil, false, "need 1 GPU(s) with 0.0 GiB free: 0 of 0 candidate(s) fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, reason := Place(tc.devs, tc.need)
			if !reflect.DeepEqual(got, tc.want) || ok != tc.ok || reason != tc.reason {
				t.Errorf("Place = %q, %v, %q\n   want %q, %v, %q", got, ok, reason, tc.want, tc.ok, tc.reason)
			}
		})
	}
}

// TestPlaceDeterministic checks that the input order does not matter.
func TestPlaceDeterministic(t *testing.T) {
	devs := node()
	want, _, _ := Place(devs, Need{GPUs: 2, MemoryBytes: 20 * gb})
	for i := range devs {
		j := len(devs) - 1 - i
		devs[i], devs[j] = devs[j], devs[i]
		if got, _, _ := Place(devs, Need{GPUs: 2, MemoryBytes: 20 * gb}); !reflect.DeepEqual(got, want) {
			t.Fatalf("after reordering: %v, want %v", got, want)
		}
	}
}

func ExamplePlace() {
	devs := []Device{
		{Index: 0, UUID: "GPU-0", MemoryTotal: 80 << 30, MemoryFree: 20 << 30},
		{Index: 1, UUID: "GPU-1", MemoryTotal: 80 << 30, MemoryFree: 70 << 30},
	}
	uuids, ok, reason := Place(devs, Need{GPUs: 1, MemoryBytes: 16 << 30})
	fmt.Println(uuids, ok)
	fmt.Println(reason)
	// Output:
	// [GPU-1] true
	// least loaded 1 of 2 fitting: GPU 1 (70.0 GiB free)
}

func TestPlaceWeighsUtilization(t *testing.T) {
	devs := []Device{
		{Index: 0, UUID: "GPU-busy", MemoryTotal: 40 << 30, MemoryFree: 36 << 30, Utilization: ptr(0.95)},
		{Index: 1, UUID: "GPU-idle", MemoryTotal: 40 << 30, MemoryFree: 30 << 30, Utilization: ptr(0.05)},
		{Index: 2, UUID: "GPU-unknown", MemoryTotal: 40 << 30, MemoryFree: 20 << 30},
	}
	// Load is the larger of memory share in use and utilization: busy
	// 0.95, idle 0.25, unknown utilization 0.5 (memory alone).
	got, ok, reason := Place(devs, Need{GPUs: 2, MemoryBytes: 10 << 30})
	if !ok || len(got) != 2 || got[0] != "GPU-idle" || got[1] != "GPU-unknown" {
		t.Errorf("placed %v (%s), want the idle GPU, then the one whose utilization is unknown", got, reason)
	}
}
