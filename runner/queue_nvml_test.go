//go:build linux && cgo

package runner

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/airlock-dev/airlock/runner/gpu"
	"github.com/prometheus/client_golang/prometheus"
)

// These tests place jobs on go-nvml's mock DGX A100 through the real
// runner/gpu inventory; only the memory the mock reports is set by hand.

const gib = 1 << 30

// fakeGPUs is what the mock's GPUs report: their total memory, and the
// memory used and utilization (percent) of processes outside the queue,
// which a test may change.
type fakeGPUs struct {
	mu    sync.Mutex
	total []uint64
	used  []uint64
	util  []uint32
}

func (f *fakeGPUs) setUtil(i int, pct uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.util[i] = pct
}

func (f *fakeGPUs) setUsed(i int, b uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.used[i] = b
}

// uuid is the UUID of the mock's GPU i.
func uuid(i int) string { return fmt.Sprintf("GPU-%08d-0000-0000-0000-000000000000", i) }

// mockInventory opens the runner/gpu inventory over a mock DGX A100 with
// one GPU per entry of totals, each idle; NVML's free memory does not see
// the queue's jobs, as it does not see a server still loading.
func mockInventory(t *testing.T, totals ...uint64) (gpu.Inventory, *fakeGPUs) {
	t.Helper()
	f := &fakeGPUs{total: totals, used: make([]uint64, len(totals)), util: make([]uint32, len(totals))}
	s := dgxa100.New()
	s.DeviceGetCountFunc = func() (int, nvml.Return) { return len(totals), nvml.SUCCESS }
	for i := range totals {
		d := s.Devices[i].(*dgxa100.Device)
		d.UUID = uuid(i)
		d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return nvml.Memory_v2{Total: f.total[i], Used: f.used[i], Free: f.total[i] - f.used[i]}, nvml.SUCCESS
		}
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return nvml.Utilization{Gpu: f.util[i]}, nvml.SUCCESS
		}
	}
	inv, st := gpu.OpenNVML(s, gpu.Options{})
	if !st.Available {
		t.Fatalf("mock NVML: %v", st)
	}
	t.Cleanup(func() { inv.Close() })
	return inv, f
}

func gpuJob(id string, priority int, mem uint64, run *ctlJob) Job {
	return Job{ID: id, Kind: JobBench, Priority: priority, Need: gpu.Need{GPUs: 1, MemoryBytes: mem}, Run: run.run}
}

func TestQueueReservesMemory(t *testing.T) {
	inv, _ := mockInventory(t, 40*gib, 40*gib)
	reg := prometheus.NewPedanticRegistry()
	q, tick := newTestQueue(t, QueueConfig{Inventory: inv, MaxJobs: 4, Registerer: reg})

	a, b, c := newCtlJob(t), newCtlJob(t), newCtlJob(t)
	at := submit(t, q, gpuJob("a", 0, 30*gib, a))
	aa := a.await(t, at)
	bt := submit(t, q, gpuJob("b", 0, 30*gib, b))
	ba := b.await(t, bt)
	// NVML still reports both GPUs idle; a's 30 GiB are reserved on its GPU.
	if !slices.Equal(aa.GPUs, []string{uuid(0)}) || !slices.Equal(ba.GPUs, []string{uuid(1)}) {
		t.Fatalf("a on %v, b on %v; want GPU 0 and GPU 1", aa.GPUs, ba.GPUs)
	}
	if env := aa.Env(); !slices.Equal(env, []string{"CUDA_VISIBLE_DEVICES=" + uuid(0)}) {
		t.Errorf("a's Env() = %q", env)
	}
	if aa.CPUOnly || !strings.Contains(aa.Reason, "GPU 0") {
		t.Errorf("a's assignment %+v", aa)
	}
	compare(t, reg, `
# HELP airlock_runner_gpus_reserved GPUs and MIG instances the queue has given to running jobs.
# TYPE airlock_runner_gpus_reserved gauge
airlock_runner_gpus_reserved 2
`, "airlock_runner_gpus_reserved")

	ct := submit(t, q, gpuJob("c", 0, 30*gib, c))
	tick.settle()
	if s := ct.State(); s != JobQueued {
		t.Fatalf("c %s while both GPUs have 30 GiB reserved of 40", s)
	}
	if w := ct.Waiting(); !strings.Contains(w, "30.0 GiB free") {
		t.Errorf("c waiting: %q", w)
	}

	a.finish() // a's reservation ends with it
	if ca := c.await(t, ct); !slices.Equal(ca.GPUs, []string{uuid(0)}) {
		t.Errorf("c on %v, want a's GPU 0", ca.GPUs)
	}
	b.finish()
	c.finish()
	for _, tk := range []*Ticket{at, bt, ct} {
		if err := wait(t, tk); err != nil {
			t.Errorf("%s: %v", tk.ID(), err)
		}
	}
	compare(t, reg, `
# HELP airlock_runner_gpus_reserved GPUs and MIG instances the queue has given to running jobs.
# TYPE airlock_runner_gpus_reserved gauge
airlock_runner_gpus_reserved 0
`, "airlock_runner_gpus_reserved")
}

func TestQueuePollsFreeMemory(t *testing.T) {
	inv, gpus := mockInventory(t, 40*gib)
	gpus.setUsed(0, 35*gib) // another process, outside the queue
	q, tick := newTestQueue(t, QueueConfig{Inventory: inv})
	j := newCtlJob(t)
	j.finish()
	tk := submit(t, q, gpuJob("j", 0, 10*gib, j))
	tick.settle()
	if s := tk.State(); s != JobQueued {
		t.Fatalf("job %s with 5 GiB free of the 10 it needs", s)
	}
	gpus.setUsed(0, 20*gib)
	tick.settle() // nothing else wakes the queue: only the poll sees this
	if s := tk.State(); s == JobQueued {
		t.Fatalf("job still queued after a poll with 20 GiB free")
	}
	if err := wait(t, tk); err != nil {
		t.Fatal(err)
	}
}

func TestQueueUnplaceable(t *testing.T) {
	for _, tc := range []struct {
		name string
		need gpu.Need
		want string
	}{
		{"more GPUs than the machine has", gpu.Need{GPUs: 9, MemoryBytes: 10 * gib},
			"needs 9 GPU(s) with 10.0 GiB each; 8 of the machine's 8 GPU(s) could hold it"},
		{"more memory than any GPU", gpu.Need{GPUs: 1, MemoryBytes: 50 * gib},
			"needs 1 GPU(s) with 50.0 GiB each; 0 of the machine's 8 GPU(s) could hold it (the largest has 40.0 GiB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			totals := slices.Repeat([]uint64{40 * gib}, 8)
			inv, _ := mockInventory(t, totals...)
			q, tick := newTestQueue(t, QueueConfig{Inventory: inv, MaxJobs: 1})
			// The only slot is busy: the job fails without waiting for it.
			busy := newCtlJob(t)
			busy.await(t, submit(t, q, Job{ID: "busy", Run: busy.run}))
			defer busy.finish()
			tk := submit(t, q, Job{ID: "big", Need: tc.need, Run: mustNotRun(t, "big")})
			tick.settle()
			if s := tk.State(); s != JobFailed {
				t.Fatalf("state %s, want failed at once", s)
			}
			err := wait(t, tk)
			if !errors.Is(err, ErrUnplaceable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Wait = %v\nwant ErrUnplaceable saying %q", err, tc.want)
			}
		})
	}
}

// TestQueueBackfill runs jobs behind one that waits for GPUs only where
// they cannot delay it: on no GPU, or on a GPU too small for it.
func TestQueueBackfill(t *testing.T) {
	inv, _ := mockInventory(t, 40*gib, 16*gib)
	q, tick := newTestQueue(t, QueueConfig{Inventory: inv, MaxJobs: 5})

	a := newCtlJob(t)
	at := submit(t, q, gpuJob("a", 0, 30*gib, a))
	if got := a.await(t, at).GPUs; !slices.Equal(got, []string{uuid(0)}) {
		t.Fatalf("a on %v", got)
	}
	b, c, d := newCtlJob(t), newCtlJob(t), newCtlJob(t)
	bt := submit(t, q, gpuJob("b", 10, 30*gib, b))                           // waits for GPU 0, the only one that can hold it
	ct := submit(t, q, Job{ID: "c", Kind: JobEval, Priority: 1, Run: c.run}) // no GPU
	dt := submit(t, q, gpuJob("d", 1, 8*gib, d))                             // fits GPU 1, which b can never use
	et := submit(t, q, Job{ID: "e", Kind: JobBench, Priority: 1,             // fits GPU 0 only, which b waits for
		Need: gpu.Need{GPUs: 1, MemoryBytes: 10 * gib}, Run: mustNotRun(t, "e")})
	tick.settle()

	if got := c.await(t, ct); !got.CPUOnly {
		t.Errorf("c assigned %+v", got)
	}
	if got := d.await(t, dt).GPUs; !slices.Equal(got, []string{uuid(1)}) {
		t.Errorf("d on %v, want GPU 1", got)
	}
	for _, tk := range []*Ticket{bt, et} {
		if s := tk.State(); s != JobQueued {
			t.Errorf("%s %s, want queued", tk.ID(), s)
		}
	}
	if w := et.Waiting(); !strings.Contains(w, "1 GPU(s) kept for jobs ahead") {
		t.Errorf("e waiting: %q", w)
	}
	et.Cancel()

	a.finish()
	if got := b.await(t, bt).GPUs; !slices.Equal(got, []string{uuid(0)}) {
		t.Errorf("b on %v, want GPU 0", got)
	}
	for _, j := range []*ctlJob{b, c, d} {
		j.finish()
	}
	for _, tk := range []*Ticket{at, bt, ct, dt} {
		if err := wait(t, tk); err != nil {
			t.Errorf("%s: %v", tk.ID(), err)
		}
	}
}

// TestQueueStrictWithOneSlot checks that with MaxJobs 1 nothing passes a
// job that waits for GPUs, not even a job that needs none.
func TestQueueStrictWithOneSlot(t *testing.T) {
	inv, gpus := mockInventory(t, 40*gib)
	gpus.setUsed(0, 35*gib)
	q, tick := newTestQueue(t, QueueConfig{Inventory: inv, MaxJobs: 1})
	g := newCtlJob(t)
	g.finish()
	gt := submit(t, q, gpuJob("gpu", 5, 10*gib, g))
	ct := submit(t, q, Job{ID: "cpu", Kind: JobEval, Run: mustNotRun(t, "cpu")})
	tick.settle()
	if gs, cs := gt.State(), ct.State(); gs != JobQueued || cs != JobQueued {
		t.Errorf("gpu %s, cpu %s; want both queued", gs, cs)
	}
	if w := ct.Waiting(); !strings.Contains(w, "job slot") {
		t.Errorf("cpu waiting: %q", w)
	}
	ct.Cancel()
	gpus.setUsed(0, 0)
	tick.settle()
	if err := wait(t, gt); err != nil {
		t.Error(err)
	}
}

// TestQueuePrefersIdleGPU: of two GPUs with the same free memory, a job
// goes to the one whose compute is idle, as NVML reports it.
func TestQueuePrefersIdleGPU(t *testing.T) {
	inv, f := mockInventory(t, 40*gib, 40*gib)
	f.setUtil(0, 90)
	q, _ := newTestQueue(t, QueueConfig{Inventory: inv})
	j := newCtlJob(t)
	tk, err := q.Submit(gpuJob("j", 0, 10*gib, j))
	if err != nil {
		t.Fatal(err)
	}
	a := j.await(t, tk)
	if len(a.GPUs) != 1 || a.GPUs[0] != uuid(1) {
		t.Errorf("placed on %v (%s), want the idle %s", a.GPUs, a.Reason, uuid(1))
	}
	j.finish()
}
