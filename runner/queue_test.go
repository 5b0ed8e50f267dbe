package runner

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner/gpu"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newTestQueue starts a queue that polls only when the test ticks, and
// closes it at the end of the test.
func newTestQueue(t *testing.T, cfg QueueConfig) (*Queue, *ticker) {
	t.Helper()
	tk := &ticker{c: make(chan time.Time)}
	q, err := NewQueue(cfg, WithQueueTicks(tk.c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Every test ends its jobs, so Close only waits for their
		// goroutines; the timeout keeps a broken test from hanging.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := q.Close(ctx); err != nil {
			t.Errorf("Close at the end of the test: %v", err)
		}
	})
	return q, tk
}

// ticker drives a queue's polls by hand.
type ticker struct{ c chan time.Time }

// settle returns once the queue has made a full scheduling pass that
// began after settle was called: the channel is unbuffered, so the second
// send is received only after the pass the first one started.
func (tk *ticker) settle() {
	tk.c <- time.Time{}
	tk.c <- time.Time{}
}

// ctlJob is a job the test lets finish: Run reports its Assignment on
// started, then returns err after finish, or ctx's error.
type ctlJob struct {
	started chan Assignment
	release chan struct{}
	once    sync.Once
	err     error
}

// newCtlJob returns a job that finishes at the end of the test at the
// latest, so that a test that stops early does not hang in Close.
func newCtlJob(t *testing.T) *ctlJob {
	c := &ctlJob{started: make(chan Assignment, 1), release: make(chan struct{})}
	t.Cleanup(c.finish)
	return c
}

// await returns the job's Assignment once it started, and stops the test
// if the job ended without starting.
func (c *ctlJob) await(t *testing.T, tk *Ticket) Assignment {
	t.Helper()
	select {
	case a := <-c.started:
		return a
	case <-tk.Done():
		select {
		case a := <-c.started:
			return a
		default:
		}
		t.Fatalf("job %s %s without starting: %v", tk.ID(), tk.State(), tk.Wait(t.Context()))
		return Assignment{}
	}
}

// finish lets Run return.
func (c *ctlJob) finish() { c.once.Do(func() { close(c.release) }) }

func (c *ctlJob) run(ctx context.Context, a Assignment) error {
	c.started <- a
	select {
	case <-c.release:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mustNotRun is the Run of a job the test expects never to start.
func mustNotRun(t *testing.T, id string) func(context.Context, Assignment) error {
	return func(context.Context, Assignment) error {
		t.Errorf("job %s ran", id)
		return nil
	}
}

func submit(t *testing.T, q *Queue, j Job) *Ticket {
	t.Helper()
	if j.Kind == "" {
		j.Kind = JobEval
	}
	tk, err := q.Submit(j)
	if err != nil {
		t.Fatalf("Submit(%s): %v", j.ID, err)
	}
	return tk
}

func wait(t *testing.T, tk *Ticket) error {
	t.Helper()
	return tk.Wait(t.Context())
}

func TestQueueOrder(t *testing.T) {
	type job struct {
		id       string
		priority int
	}
	for _, tc := range []struct {
		name string
		jobs []job
		want []string
	}{
		{"highest priority first", []job{{"low", 0}, {"high", 9}, {"mid", 5}, {"negative", -1}},
			[]string{"high", "mid", "low", "negative"}},
		{"first in first out within a priority", []job{{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}},
			[]string{"a", "b", "c", "d"}},
		{"both", []job{{"low1", 0}, {"high1", 5}, {"low2", 0}, {"high2", 5}, {"mid", 3}, {"high3", 5}},
			[]string{"high1", "high2", "high3", "mid", "low1", "low2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := newTestQueue(t, QueueConfig{MaxJobs: 1})
			// A first job holds the only slot while the others queue up.
			first := newCtlJob(t)
			ft := submit(t, q, Job{ID: "first", Priority: -100, Run: first.run})
			first.await(t, ft)
			order := make(chan string, len(tc.jobs))
			var tickets []*Ticket
			for _, j := range tc.jobs {
				tickets = append(tickets, submit(t, q, Job{ID: j.id, Priority: j.priority, Run: func(context.Context, Assignment) error {
					order <- j.id
					return nil
				}}))
			}
			first.finish()
			for _, tk := range append(tickets, ft) {
				if err := wait(t, tk); err != nil {
					t.Fatalf("%s: %v", tk.ID(), err)
				}
			}
			close(order)
			var got []string
			for id := range order {
				got = append(got, id)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ran %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQueueSubmitRejects(t *testing.T) {
	q, _ := newTestQueue(t, QueueConfig{MaxJobs: 1})
	held := newCtlJob(t)
	held.await(t, submit(t, q, Job{ID: "held", Run: held.run}))
	defer held.finish()
	run := func(context.Context, Assignment) error { return nil }
	for _, tc := range []struct {
		name string
		job  Job
		want string
	}{
		{"empty ID", Job{Kind: JobEval, Run: run}, "empty ID"},
		{"ID of a running job", Job{ID: "held", Kind: JobEval, Run: run}, "already queued or running"},
		{"no Run", Job{ID: "j", Kind: JobBench}, "no Run function"},
		{"negative GPUs", Job{ID: "j", Kind: JobEval, Run: run, Need: gpu.Need{GPUs: -1}}, "negative GPU count -1"},
		{"unknown kind", Job{ID: "j", Kind: "train", Run: run}, `kind "train"`},
		{"no kind", Job{ID: "j", Run: run}, `kind ""`},
		{"memory without GPUs", Job{ID: "j", Kind: JobEval, Run: run, Need: gpu.Need{MemoryBytes: 1 << 30}}, "no GPUs"},
		{"RequireGPU without GPUs", Job{ID: "j", Kind: JobEval, Run: run, RequireGPU: true}, "RequireGPU"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := q.Submit(tc.job)
			if !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Submit = %v, %v; want ErrInvalidJob saying %q", tk, err, tc.want)
			}
		})
	}

	queued := submit(t, q, Job{ID: "queued", Run: mustNotRun(t, "queued")})
	if _, err := q.Submit(Job{ID: "queued", Kind: JobEval, Run: run}); !errors.Is(err, ErrInvalidJob) {
		t.Errorf("second job with a queued job's ID: %v", err)
	}
	queued.Cancel()
	again := submit(t, q, Job{ID: "queued", Run: mustNotRun(t, "queued")})
	again.Cancel()
}

// syncBuffer is a log destination the test reads after the jobs ended.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestQueueWithoutGPUs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inv     gpu.Inventory
		warning string
	}{
		{"no driver", gpu.Unavailable("no GPU: NVML library not found"), "no GPU: NVML library not found; running jobs CPU-only"},
		{"no inventory", nil, "no GPU: no GPU inventory; running jobs CPU-only"},
		{"no cgo", gpu.Unavailable("GPU telemetry unavailable: built without cgo"),
			"no GPU: GPU telemetry unavailable: built without cgo; running jobs CPU-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			q, _ := newTestQueue(t, QueueConfig{Inventory: tc.inv, MaxJobs: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			needs := []gpu.Need{{GPUs: 1, MemoryBytes: 8 << 30}, {GPUs: 2}, {GPUs: 1, AllowMIG: true}}
			for i, need := range needs {
				j := newCtlJob(t)
				j.finish()
				tk := submit(t, q, Job{ID: string(rune('a' + i)), Need: need, Run: j.run})
				if err := wait(t, tk); err != nil {
					t.Fatal(err)
				}
				a := <-j.started
				if !a.CPUOnly || len(a.GPUs) != 0 || !strings.HasPrefix(a.Reason, strings.TrimSuffix(tc.warning, "jobs CPU-only")) {
					t.Errorf("job %d assigned %+v, want CPU-only saying why", i, a)
				}
				if env := a.Env(); !slices.Equal(env, []string{"CUDA_VISIBLE_DEVICES="}) {
					t.Errorf("Env() = %q", env)
				}
			}
			if n := strings.Count(logs.String(), tc.warning); n != 1 {
				t.Errorf("warning %q logged %d times, want once; log:\n%s", tc.warning, n, logs.String())
			}

			req := submit(t, q, Job{ID: "needs-gpu", Need: gpu.Need{GPUs: 1}, RequireGPU: true, Run: mustNotRun(t, "needs-gpu")})
			err := wait(t, req)
			if !errors.Is(err, ErrGPURequired) || !strings.Contains(err.Error(), strings.TrimSuffix(tc.warning, "; running jobs CPU-only")) {
				t.Errorf("RequireGPU job: %v; want ErrGPURequired saying why", err)
			}
			if s := req.State(); s != JobFailed {
				t.Errorf("RequireGPU job %s, want failed", s)
			}
		})
	}
}

func TestQueueCPUJobEnv(t *testing.T) {
	q, _ := newTestQueue(t, QueueConfig{Inventory: gpu.Unavailable("no GPU: NVML library not found")})
	j := newCtlJob(t)
	j.finish()
	tk := submit(t, q, Job{ID: "api-eval", Run: j.run})
	if err := wait(t, tk); err != nil {
		t.Fatal(err)
	}
	a, ok := tk.Assignment()
	if !ok || !a.CPUOnly || a.Reason != "no GPU needed" {
		t.Errorf("Assignment() = %+v, %v", a, ok)
	}
	if env := a.Env(); !slices.Equal(env, []string{"CUDA_VISIBLE_DEVICES="}) {
		t.Errorf("Env() = %q", env)
	}
	gpus := Assignment{GPUs: []string{"GPU-a", "MIG-b"}}
	if env := gpus.Env(); !slices.Equal(env, []string{"CUDA_VISIBLE_DEVICES=GPU-a,MIG-b"}) {
		t.Errorf("Env() = %q", env)
	}
}

func TestQueueCancel(t *testing.T) {
	q, tick := newTestQueue(t, QueueConfig{MaxJobs: 1})
	running := newCtlJob(t)
	rt := submit(t, q, Job{ID: "running", Run: running.run})
	running.await(t, rt)
	queued := submit(t, q, Job{ID: "queued", Priority: 1, Run: mustNotRun(t, "queued")})
	tick.settle()
	if s := queued.State(); s != JobQueued {
		t.Fatalf("queued job %s", s)
	}
	if w := queued.Waiting(); !strings.Contains(w, "job slot") {
		t.Errorf("Waiting() = %q, want it to name the busy slot", w)
	}
	if _, ok := queued.Assignment(); ok {
		t.Error("a queued job has an assignment")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := queued.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with an ended context = %v", err)
	}

	queued.Cancel()
	if s := queued.State(); s != JobCancelled {
		t.Errorf("cancelled queued job %s", s)
	}
	if err := wait(t, queued); !errors.Is(err, ErrJobCancelled) {
		t.Errorf("cancelled queued job: %v", err)
	}

	rt.Cancel() // its Run returns ctx's error
	if err := wait(t, rt); !errors.Is(err, ErrJobCancelled) {
		t.Errorf("cancelled running job: %v", err)
	}
	if s := rt.State(); s != JobCancelled {
		t.Errorf("cancelled running job %s", s)
	}
	rt.Cancel() // no effect once ended

	// The slot is free again.
	next := newCtlJob(t)
	next.finish()
	if err := wait(t, submit(t, q, Job{ID: "next", Run: next.run})); err != nil {
		t.Error(err)
	}
}

func TestQueueJobOutcome(t *testing.T) {
	q, _ := newTestQueue(t, QueueConfig{MaxJobs: 2})
	boom := errors.New("eval server crashed")
	failing := newCtlJob(t)
	failing.err = boom
	failing.finish()
	ft := submit(t, q, Job{ID: "failing", Run: failing.run})
	if err := wait(t, ft); !errors.Is(err, boom) {
		t.Errorf("Wait = %v, want Run's error", err)
	}
	if s := ft.State(); s != JobFailed {
		t.Errorf("state %s", s)
	}
	ok := newCtlJob(t)
	ok.finish()
	ot := submit(t, q, Job{ID: "ok", Run: ok.run})
	if err := wait(t, ot); err != nil {
		t.Error(err)
	}
	if s := ot.State(); s != JobDone {
		t.Errorf("state %s", s)
	}
}

func TestQueueCloseDrains(t *testing.T) {
	q, _ := newTestQueue(t, QueueConfig{MaxJobs: 1})
	running := newCtlJob(t)
	rt := submit(t, q, Job{ID: "running", Run: running.run})
	running.await(t, rt)
	queued := submit(t, q, Job{ID: "queued", Run: mustNotRun(t, "queued")})

	closed := make(chan error, 1)
	go func() { closed <- q.Close(t.Context()) }()
	// Close cancels the queued job at once, while the running one goes on.
	err := wait(t, queued)
	if !errors.Is(err, ErrJobCancelled) || !errors.Is(err, ErrQueueClosed) {
		t.Errorf("queued job at Close: %v", err)
	}
	if _, err := q.Submit(Job{ID: "late", Kind: JobEval, Run: mustNotRun(t, "late")}); !errors.Is(err, ErrQueueClosed) {
		t.Errorf("Submit after Close: %v", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a job ran", err)
	default:
	}
	if s := rt.State(); s != JobRunning {
		t.Errorf("running job %s during Close", s)
	}
	running.finish()
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if s := rt.State(); s != JobDone {
		t.Errorf("drained job %s", s)
	}
	if err := q.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestQueueCloseOutOfTime(t *testing.T) {
	q, _ := newTestQueue(t, QueueConfig{MaxJobs: 1})
	running := newCtlJob(t) // returns when its context ends
	rt := submit(t, q, Job{ID: "running", Run: running.run})
	running.await(t, rt)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := q.Close(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 running job") {
		t.Errorf("Close = %v, want the running job cancelled", err)
	}
	err := wait(t, rt)
	if !errors.Is(err, ErrJobCancelled) || !errors.Is(err, ErrQueueClosed) {
		t.Errorf("job stopped by Close: %v", err)
	}
}

func TestQueueConfigRejects(t *testing.T) {
	for _, cfg := range []QueueConfig{{MaxJobs: -1}, {PollInterval: -time.Second}} {
		if q, err := NewQueue(cfg); err == nil {
			t.Errorf("NewQueue(%+v) accepted", cfg)
			q.Close(t.Context())
		}
	}
}

// clock is a time the test sets.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(sec int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second)
}

func TestQueueMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	var clk clock
	clk.set(0)
	q, _ := newTestQueue(t, QueueConfig{MaxJobs: 1, Registerer: reg, Now: clk.now})

	a := newCtlJob(t)
	at := submit(t, q, Job{ID: "a", Kind: JobEval, Run: a.run})
	a.await(t, at)
	clk.set(10)
	b := newCtlJob(t)
	b.err = errors.New("suite failed")
	bt := submit(t, q, Job{ID: "b", Kind: JobEval, Run: b.run})
	ct := submit(t, q, Job{ID: "c", Kind: JobBench, Run: mustNotRun(t, "c")})
	compare(t, reg, `
# HELP airlock_runner_jobs_queued Jobs waiting in the runner's queue for a slot or GPUs.
# TYPE airlock_runner_jobs_queued gauge
airlock_runner_jobs_queued{kind="bench"} 1
airlock_runner_jobs_queued{kind="eval"} 1
# HELP airlock_runner_jobs_running Jobs the runner's queue has started and that have not ended.
# TYPE airlock_runner_jobs_running gauge
airlock_runner_jobs_running{kind="bench"} 0
airlock_runner_jobs_running{kind="eval"} 1
`, "airlock_runner_jobs_queued", "airlock_runner_jobs_running")

	ct.Cancel()
	clk.set(15)
	a.finish() // a ran 15 s; b waited 5 s
	b.await(t, bt)
	clk.set(18)
	b.finish() // b ran 3 s
	for _, tk := range []*Ticket{at, bt, ct} {
		tk.Wait(t.Context())
	}
	compare(t, reg, `
# HELP airlock_runner_jobs_queued Jobs waiting in the runner's queue for a slot or GPUs.
# TYPE airlock_runner_jobs_queued gauge
airlock_runner_jobs_queued{kind="bench"} 0
airlock_runner_jobs_queued{kind="eval"} 0
# HELP airlock_runner_jobs_running Jobs the runner's queue has started and that have not ended.
# TYPE airlock_runner_jobs_running gauge
airlock_runner_jobs_running{kind="bench"} 0
airlock_runner_jobs_running{kind="eval"} 0
# HELP airlock_runner_jobs_total Jobs that ended, by outcome (succeeded, failed, cancelled).
# TYPE airlock_runner_jobs_total counter
airlock_runner_jobs_total{kind="bench",outcome="cancelled"} 1
airlock_runner_jobs_total{kind="bench",outcome="failed"} 0
airlock_runner_jobs_total{kind="bench",outcome="succeeded"} 0
airlock_runner_jobs_total{kind="eval",outcome="cancelled"} 0
airlock_runner_jobs_total{kind="eval",outcome="failed"} 1
airlock_runner_jobs_total{kind="eval",outcome="succeeded"} 1
# HELP airlock_runner_gpus_reserved GPUs and MIG instances the queue has given to running jobs.
# TYPE airlock_runner_gpus_reserved gauge
airlock_runner_gpus_reserved 0
`, "airlock_runner_jobs_queued", "airlock_runner_jobs_running", "airlock_runner_jobs_total", "airlock_runner_gpus_reserved")
	for _, tc := range []struct {
		name  string
		count uint64
		sum   float64
	}{
		{"airlock_runner_job_queue_wait_seconds", 2, 0 + 5},
		{"airlock_runner_job_duration_seconds", 2, 15 + 3},
	} {
		count, sum := histogram(t, reg, tc.name, "eval")
		if count != tc.count || sum != tc.sum {
			t.Errorf("%s{kind=eval}: count %d sum %g, want %d and %g", tc.name, count, sum, tc.count, tc.sum)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	if _, err := NewQueue(QueueConfig{Registerer: reg}); err == nil {
		t.Error("a second queue registered on the same registry")
	}
}

func compare(t *testing.T, reg prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// histogram returns the sample count and sum of one kind's histogram.
func histogram(t *testing.T, reg prometheus.Gatherer, name, kind string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	t.Fatalf("no %s{kind=%q}", name, kind)
	return 0, 0
}

func TestQueueNoGoroutineLeak(t *testing.T) {
	// A real poll ticker, several jobs, a cancelled one, then Close.
	q, err := NewQueue(QueueConfig{MaxJobs: 2, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var tickets []*Ticket
	for _, id := range []string{"a", "b", "c"} {
		j := newCtlJob(t)
		j.finish()
		tickets = append(tickets, submit(t, q, Job{ID: id, Run: j.run}))
	}
	cancelled := newCtlJob(t)
	ct := submit(t, q, Job{ID: "cancelled", Run: cancelled.run})
	cancelled.await(t, ct)
	ct.Cancel()
	for _, tk := range append(tickets, ct) {
		tk.Wait(t.Context())
	}
	if err := q.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A goroutine that has signalled its end may not have returned yet, so
	// look again after yielding, as goleak does, though without sleeping.
	var left string
	for range 1000 {
		if left = queueGoroutines(); left == "" {
			return
		}
		runtime.Gosched()
	}
	t.Errorf("queue goroutines left after Close:\n%s", left)
}

// queueGoroutines returns the stacks of goroutines running Queue code.
func queueGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "runner.(*Queue).") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
