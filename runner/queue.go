package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/runner/gpu"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors a Queue returns, from Submit or from Ticket.Wait. Compare with
// errors.Is; the messages around them say which job and why.
var (
	// ErrQueueClosed is returned by Submit after Close, and joins
	// ErrJobCancelled for the jobs Close cancelled.
	ErrQueueClosed = errors.New("job queue closed")
	// ErrInvalidJob is returned by Submit for a job it cannot run.
	ErrInvalidJob = errors.New("invalid job")
	// ErrJobCancelled ends a job stopped by Ticket.Cancel or by Close.
	ErrJobCancelled = errors.New("job cancelled")
	// ErrGPURequired fails a job with RequireGPU on a machine whose GPU
	// inventory is unavailable (no driver, no cgo).
	ErrGPURequired = errors.New("job requires a GPU and none is usable")
	// ErrUnplaceable fails a job that needs more GPUs, or more memory per
	// GPU, than the machine has even when idle: it would wait forever.
	ErrUnplaceable = errors.New("job can never fit on this machine's GPUs")
)

// JobKind labels a job in logs and metrics. It has a fixed set of values
// so that the kind label of the airlock_runner_job* metrics stays bounded.
type JobKind string

const (
	JobEval  JobKind = "eval"  // an eval suite run against a release
	JobBench JobKind = "bench" // a load profile run against a release
)

// JobState is where a job is in the queue.
type JobState string

const (
	JobQueued    JobState = "queued"    // waiting for a job slot or GPUs
	JobRunning   JobState = "running"   // Run was called and has not returned
	JobDone      JobState = "done"      // Run returned nil
	JobFailed    JobState = "failed"    // Run returned an error, or the job could not be placed
	JobCancelled JobState = "cancelled" // Ticket.Cancel or Close stopped it
)

// Job is one unit of work for the queue: an eval suite or a load profile
// against one release on one engine. The queue does not look inside Run;
// it decides when Run is called and on which GPUs.
type Job struct {
	// ID names the job in logs, errors and Ticket; it must be unique
	// among the jobs queued or running.
	ID   string
	Kind JobKind
	// Priority orders the queue: higher first, first come first served
	// within a priority.
	Priority int
	// Need is the GPUs the job's server must have. Memory is per GPU and
	// GPUs are shared by memory: a job that must have a GPU to itself
	// asks for all of its memory.
	Need gpu.Need
	// RequireGPU fails the job when the machine has no usable GPU
	// inventory, rather than running it CPU-only.
	RequireGPU bool
	// Run does the work. It starts its server with Assignment.Env and
	// returns when ctx ends (Ticket.Cancel, or Close running out of time).
	Run func(ctx context.Context, a Assignment) error
}

func (j Job) validate() error {
	var problems []string
	if j.ID == "" {
		problems = append(problems, "empty ID")
	}
	if j.Kind != JobEval && j.Kind != JobBench {
		problems = append(problems, fmt.Sprintf("kind %q is neither %q nor %q", j.Kind, JobEval, JobBench))
	}
	if j.Run == nil {
		problems = append(problems, "no Run function")
	}
	switch {
	case j.Need.GPUs < 0:
		problems = append(problems, fmt.Sprintf("negative GPU count %d", j.Need.GPUs))
	case j.Need.GPUs == 0 && j.Need.MemoryBytes > 0:
		problems = append(problems, "GPU memory asked for but no GPUs")
	case j.Need.GPUs == 0 && j.RequireGPU:
		problems = append(problems, "RequireGPU set but no GPUs asked for")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w %q: %s", ErrInvalidJob, j.ID, strings.Join(problems, "; "))
	}
	return nil
}

// Assignment is where a job runs.
type Assignment struct {
	// GPUs are the UUIDs ("GPU-…" or "MIG-…") the job may use, in the
	// form CUDA_VISIBLE_DEVICES takes; empty when CPUOnly.
	GPUs []string
	// CPUOnly is set for a job that needs no GPU, and for one that needs
	// GPUs on a machine without a usable GPU inventory.
	CPUOnly bool
	// Reason says why these GPUs, or why none, for the job's log.
	Reason string
}

// Env is the environment the job's server is started with. A CPU-only
// job gets an empty CUDA_VISIBLE_DEVICES, which hides every GPU, so that
// its server cannot take one that the queue gave to another job.
func (a Assignment) Env() []string {
	if a.CPUOnly {
		return []string{"CUDA_VISIBLE_DEVICES="}
	}
	return []string{"CUDA_VISIBLE_DEVICES=" + strings.Join(a.GPUs, ",")}
}

// QueueConfig configures NewQueue. The zero value runs one job at a time,
// CPU-only, without metrics or logs.
type QueueConfig struct {
	// Inventory is where GPUs are placed from; nil means none
	// (gpu.Unavailable). The queue does not close it.
	Inventory gpu.Inventory
	// MaxJobs is how many jobs run at once; zero means one.
	MaxJobs int
	// PollInterval is how often waiting jobs are tried again, because
	// NVML's free memory changes outside the queue; zero means 5 s.
	PollInterval time.Duration
	// Registerer receives the airlock_runner_job* metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger logs job starts and ends, with the job ID; nil is silent.
	Logger *slog.Logger
	// Now times queue waits and runs; nil means time.Now.
	Now func() time.Time
}

// QueueOption changes how a Queue is driven, for tests.
type QueueOption func(*queueOptions)

type queueOptions struct {
	ticks <-chan time.Time
}

// WithQueueTicks replaces the PollInterval ticker: each value received
// from c makes the queue try its waiting jobs again.
func WithQueueTicks(c <-chan time.Time) QueueOption {
	return func(o *queueOptions) { o.ticks = c }
}

// Queue runs jobs in priority order, at most MaxJobs at a time, each on
// GPUs that have room for it.
//
// A job starts when it is first in line, one of MaxJobs slots is free and
// its GPUs fit. The line is by Priority, highest first, then by Submit
// order. GPUs fit when gpu.Place finds enough with the job's memory free,
// where free is what NVML reports minus what the queue has reserved for
// the jobs it started: NVML's free memory lags a server that is still
// loading its weights, so each started job's memory stays reserved on its
// GPUs until its Run returns. This counts a loaded server twice, which
// errs on the side of not overcommitting a GPU.
//
// Backfill is conservative: a job that waits for GPUs keeps one slot and
// every GPU it could ever use (its memory fits the GPU's total) to itself,
// and a job behind it may start only on what is left. So a job behind
// never delays one ahead, while CPU-only jobs, and jobs that fit on GPUs
// too small for the one ahead, go on running. With MaxJobs 1 this is
// strict priority order.
//
// A job that needs more GPUs than the machine has, or more memory than
// any of its GPUs has in total, fails at once with ErrUnplaceable. When
// the inventory is unavailable (no driver), jobs that need GPUs run
// CPU-only, with a warning logged once per queue, unless they set
// RequireGPU; those fail with ErrGPURequired.
//
// Waiting jobs are tried again whenever a job ends and every PollInterval.
// A Queue is safe for concurrent use.
type Queue struct {
	inv      gpu.Inventory
	status   gpu.Status
	maxJobs  int
	log      *slog.Logger
	now      func() time.Time
	metrics  *queueMetrics
	ticks    <-chan time.Time
	ticker   *time.Ticker // nil when the ticks come from WithQueueTicks
	wake     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}

	// ctx is the parent of every job's context: the queue outlives the
	// calls that submit to it, and Close cancels ctx when it runs out of
	// time to drain.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	queue    []*Ticket          // queued, in line order
	live     map[string]*Ticket // queued and running, by ID
	running  int
	reserved map[string]reservation // by GPU or MIG UUID
	closed   bool
	idle     chan struct{} // closed once the queue is closed and no job runs
	warned   bool          // the no-GPU warning was logged
	devErr   string        // the last Devices error logged
}

// reservation is what the started jobs hold on one GPU.
type reservation struct {
	bytes uint64
	jobs  int
}

// NewQueue starts a queue. Close it to stop its goroutine.
func NewQueue(cfg QueueConfig, opts ...QueueOption) (*Queue, error) {
	if cfg.MaxJobs < 0 {
		return nil, fmt.Errorf("job queue: MaxJobs %d is negative", cfg.MaxJobs)
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("job queue: PollInterval %v is negative", cfg.PollInterval)
	}
	var o queueOptions
	for _, opt := range opts {
		opt(&o)
	}
	m, err := newQueueMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	q := &Queue{
		inv:      cfg.Inventory,
		maxJobs:  max(cfg.MaxJobs, 1),
		log:      cfg.Logger,
		now:      cfg.Now,
		metrics:  m,
		ticks:    o.ticks,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		live:     map[string]*Ticket{},
		reserved: map[string]reservation{},
		idle:     make(chan struct{}),
	}
	if q.inv == nil {
		q.inv = gpu.Unavailable("no GPU inventory")
	}
	q.status = q.inv.Status()
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.ticks == nil {
		interval := cfg.PollInterval
		if interval == 0 {
			interval = 5 * time.Second
		}
		q.ticker = time.NewTicker(interval)
		q.ticks = q.ticker.C
	}
	// No caller's context outlives the queue; Close cancels this one.
	q.ctx, q.cancel = context.WithCancel(context.Background())
	go q.loop()
	return q, nil
}

// Submit queues a job. It returns ErrInvalidJob for a job it cannot run
// and ErrQueueClosed after Close; otherwise the job's fate is in the
// Ticket.
func (q *Queue) Submit(job Job) (*Ticket, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, fmt.Errorf("submitting job %q: %w", job.ID, ErrQueueClosed)
	}
	if _, dup := q.live[job.ID]; dup {
		return nil, fmt.Errorf("%w %q: a job with this ID is already queued or running", ErrInvalidJob, job.ID)
	}
	t := &Ticket{q: q, job: job, submitted: q.now(), done: make(chan struct{}), state: JobQueued, waiting: "not yet considered"}
	i := slices.IndexFunc(q.queue, func(o *Ticket) bool { return o.job.Priority < job.Priority })
	if i < 0 {
		i = len(q.queue)
	}
	q.queue = slices.Insert(q.queue, i, t)
	q.live[job.ID] = t
	q.metrics.queued.WithLabelValues(string(job.Kind)).Inc()
	q.wakeUp()
	return t, nil
}

// Close stops accepting jobs, cancels the queued ones and waits for the
// running ones to return. When ctx ends first, it cancels the running
// jobs' contexts and returns without waiting for them, with ctx's error.
// The Inventory stays open.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		for _, t := range slices.Clone(q.queue) {
			q.finish(t, JobCancelled, ErrQueueClosed)
		}
		close(q.stop)
		if q.running == 0 {
			close(q.idle)
		}
	}
	q.mu.Unlock()
	<-q.loopDone
	select {
	case <-q.idle:
		q.cancel()
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	n := q.running
	for _, t := range q.live {
		t.cancelled = ErrQueueClosed
	}
	q.mu.Unlock()
	q.cancel()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("closing job queue: cancelled %d running job(s): %w", n, ctx.Err())
}

func (q *Queue) wakeUp() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) loop() {
	defer close(q.loopDone)
	if q.ticker != nil {
		defer q.ticker.Stop()
	}
	for {
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-q.ticks:
		}
		q.schedule()
	}
}

// schedule starts what can start and fails what never can. It reads the
// GPUs without holding the lock, since NVML calls take a while.
func (q *Queue) schedule() {
	q.mu.Lock()
	read := q.status.Available && slices.ContainsFunc(q.queue, func(t *Ticket) bool { return t.job.Need.GPUs > 0 })
	q.mu.Unlock()
	var devs []gpu.Device
	var devErr error
	if read {
		devs, devErr = q.inv.Devices(q.ctx)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.noteDevicesError(devErr)
	free := q.maxJobs - q.running
	view := q.unreserved(devs)
	kept := map[string]bool{} // GPUs kept for jobs waiting ahead
	held := 0                 // slots kept for jobs waiting ahead
	for _, t := range slices.Clone(q.queue) {
		need := t.job.Need
		slots := free - held
		busy := fmt.Sprintf("waiting for a job slot (%d running, %d kept for jobs ahead, MaxJobs %d)", q.running, held, q.maxJobs)
		switch {
		case need.GPUs == 0:
			if slots <= 0 {
				t.waiting = busy
				continue
			}
			q.start(t, Assignment{CPUOnly: true, Reason: "no GPU needed"})
			free--

		case !q.status.Available:
			if t.job.RequireGPU {
				q.finish(t, JobFailed, fmt.Errorf("job %q: %w: %s", t.job.ID, ErrGPURequired, q.noGPU()))
				continue
			}
			if slots <= 0 {
				t.waiting = busy
				continue
			}
			if !q.warned {
				q.warned = true
				q.log.Warn(q.noGPU() + "; running jobs CPU-only")
			}
			q.start(t, Assignment{CPUOnly: true, Reason: q.noGPU() + "; running CPU-only"})
			free--

		case !read:
			// Submitted while the GPUs were read: the next pass, already
			// woken, places it. Nothing behind it may start before then.
			t.waiting = "waiting for the GPU inventory"
			return

		default:
			if devErr == nil {
				if err := unplaceable(devs, need); err != nil {
					q.finish(t, JobFailed, fmt.Errorf("job %q: %w", t.job.ID, err))
					continue
				}
			}
			if slots <= 0 {
				t.waiting = busy
				continue
			}
			uuids, ok, reason := gpu.Place(without(view, kept), need)
			if !ok {
				t.waiting = "waiting for GPUs: " + reason
				if len(kept) > 0 {
					t.waiting += fmt.Sprintf(" (%d GPU(s) kept for jobs ahead)", len(kept))
				}
				held++
				for _, u := range couldUse(devs, need) {
					kept[u] = true
				}
				continue
			}
			q.reserve(uuids, need.MemoryBytes)
			take(view, uuids, need.MemoryBytes)
			q.start(t, Assignment{GPUs: uuids, Reason: reason})
			free--
		}
	}
}

// noGPU says why there are no GPUs, as "no GPU: <reason>".
func (q *Queue) noGPU() string {
	r := strings.TrimPrefix(q.status.Reason, "no GPU: ")
	if r == "" {
		r = "GPU inventory unavailable"
	}
	return "no GPU: " + r
}

// noteDevicesError logs a failure to read the GPUs when it changes, not
// at every poll. Jobs then wait rather than fail: the failure may pass.
func (q *Queue) noteDevicesError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != q.devErr && msg != "" {
		q.log.Warn("reading GPUs for placement", "err", err)
	}
	q.devErr = msg
}

func (q *Queue) start(t *Ticket, a Assignment) {
	q.dequeue(t)
	if a.GPUs == nil {
		a.GPUs = []string{}
	}
	now := q.now()
	ctx, cancel := context.WithCancel(q.ctx)
	t.state, t.assign, t.assigned, t.started, t.waiting, t.cancel = JobRunning, a, true, now, "", cancel
	q.running++
	kind := string(t.job.Kind)
	q.metrics.running.WithLabelValues(kind).Inc()
	q.metrics.wait.WithLabelValues(kind).Observe(now.Sub(t.submitted).Seconds())
	q.log.Info("job started", "job", t.job.ID, "kind", kind, "gpus", strings.Join(a.GPUs, ","),
		"cpu_only", a.CPUOnly, "reason", a.Reason, "waited", now.Sub(t.submitted))
	go q.run(ctx, cancel, t, a)
}

func (q *Queue) run(ctx context.Context, cancel context.CancelFunc, t *Ticket, a Assignment) {
	err := t.job.Run(ctx, a)
	cancel()
	q.mu.Lock()
	defer q.mu.Unlock()
	if !a.CPUOnly {
		q.release(a.GPUs, t.job.Need.MemoryBytes)
	}
	q.running--
	kind := string(t.job.Kind)
	q.metrics.running.WithLabelValues(kind).Dec()
	q.metrics.duration.WithLabelValues(kind).Observe(q.now().Sub(t.started).Seconds())
	switch {
	case t.cancelled != nil:
		q.finish(t, JobCancelled, t.cancelled)
	case err != nil:
		q.finish(t, JobFailed, err)
	default:
		q.finish(t, JobDone, nil)
	}
	if q.closed && q.running == 0 {
		close(q.idle)
	}
	q.wakeUp()
}

// finish ends a queued or running job; cause, for a cancelled one, says
// who cancelled it.
func (q *Queue) finish(t *Ticket, state JobState, err error) {
	q.dequeue(t)
	if state == JobCancelled {
		if errors.Is(err, ErrJobCancelled) {
			err = nil // Ticket.Cancel says nothing more
		}
		if err != nil {
			err = fmt.Errorf("job %q: %w: %w", t.job.ID, ErrJobCancelled, err)
		} else {
			err = fmt.Errorf("job %q: %w", t.job.ID, ErrJobCancelled)
		}
	}
	t.state, t.err = state, err
	delete(q.live, t.job.ID)
	outcome := "succeeded"
	switch state {
	case JobFailed:
		outcome = "failed"
	case JobCancelled:
		outcome = "cancelled"
	}
	q.metrics.total.WithLabelValues(string(t.job.Kind), outcome).Inc()
	if err != nil {
		q.log.Info("job ended", "job", t.job.ID, "kind", t.job.Kind, "outcome", outcome, "err", err)
	} else {
		q.log.Info("job ended", "job", t.job.ID, "kind", t.job.Kind, "outcome", outcome)
	}
	close(t.done)
}

// dequeue takes t out of the line if it is in it.
func (q *Queue) dequeue(t *Ticket) {
	if t.state != JobQueued {
		return
	}
	if i := slices.Index(q.queue, t); i >= 0 {
		q.queue = slices.Delete(q.queue, i, i+1)
	}
	q.metrics.queued.WithLabelValues(string(t.job.Kind)).Dec()
}

func (q *Queue) reserve(uuids []string, bytes uint64) {
	for _, u := range uuids {
		r := q.reserved[u]
		q.reserved[u] = reservation{r.bytes + bytes, r.jobs + 1}
	}
	q.metrics.gpus.Set(float64(len(q.reserved)))
}

func (q *Queue) release(uuids []string, bytes uint64) {
	for _, u := range uuids {
		r := q.reserved[u]
		if r.jobs <= 1 {
			delete(q.reserved, u)
			continue
		}
		q.reserved[u] = reservation{r.bytes - bytes, r.jobs - 1}
	}
	q.metrics.gpus.Set(float64(len(q.reserved)))
}

// unreserved copies devs with the reserved memory taken off what NVML
// reports free.
func (q *Queue) unreserved(devs []gpu.Device) []gpu.Device {
	out := make([]gpu.Device, len(devs))
	for i, d := range devs {
		d.MemoryFree = minus(d.MemoryFree, q.reserved[d.UUID].bytes)
		d.MIGInstances = slices.Clone(d.MIGInstances)
		for j, m := range d.MIGInstances {
			d.MIGInstances[j].MemoryFree = minus(m.MemoryFree, q.reserved[m.UUID].bytes)
		}
		out[i] = d
	}
	return out
}

// take marks bytes used on the chosen GPUs of view, for the rest of a pass.
func take(view []gpu.Device, uuids []string, bytes uint64) {
	for i := range view {
		d := &view[i]
		if slices.Contains(uuids, d.UUID) {
			d.MemoryFree = minus(d.MemoryFree, bytes)
		}
		for j := range d.MIGInstances {
			if m := &d.MIGInstances[j]; slices.Contains(uuids, m.UUID) {
				m.MemoryFree = minus(m.MemoryFree, bytes)
			}
		}
	}
}

// without leaves the kept GPUs and MIG instances out of view.
func without(view []gpu.Device, kept map[string]bool) []gpu.Device {
	if len(kept) == 0 {
		return view
	}
	out := make([]gpu.Device, 0, len(view))
	for _, d := range view {
		if !d.MIG && kept[d.UUID] {
			continue
		}
		d.MIGInstances = slices.DeleteFunc(slices.Clone(d.MIGInstances), func(m gpu.MIGInstance) bool { return kept[m.UUID] })
		out = append(out, d)
	}
	return out
}

// couldUse lists the GPUs, or MIG instances, that gpu.Place could choose
// for need on an idle machine: those whose total memory is enough, or not
// known.
func couldUse(devs []gpu.Device, need gpu.Need) []string {
	enough := func(total uint64) bool { return total == 0 || total >= need.MemoryBytes }
	var out []string
	for _, d := range devs {
		switch {
		case d.Lost:
		case !d.MIG:
			if enough(d.MemoryTotal) {
				out = append(out, d.UUID)
			}
		case need.AllowMIG && need.GPUs == 1:
			for _, m := range d.MIGInstances {
				if enough(m.MemoryTotal) {
					out = append(out, m.UUID)
				}
			}
		}
	}
	return out
}

// unplaceable says why need can never be met on devs, or returns nil.
func unplaceable(devs []gpu.Device, need gpu.Need) error {
	n := len(couldUse(devs, need))
	if n >= need.GPUs {
		return nil
	}
	var largest uint64
	lost, mig := 0, 0
	for _, d := range devs {
		largest = max(largest, d.MemoryTotal)
		switch {
		case d.Lost:
			lost++
		case d.MIG && (!need.AllowMIG || need.GPUs != 1):
			mig++
		}
	}
	msg := fmt.Sprintf("needs %d GPU(s) with %s each; %d of the machine's %d GPU(s) could hold it",
		need.GPUs, queueGiB(need.MemoryBytes), n, len(devs))
	var why []string
	if largest > 0 && largest < need.MemoryBytes {
		why = append(why, "the largest has "+queueGiB(largest))
	}
	if lost > 0 {
		why = append(why, fmt.Sprintf("%d lost", lost))
	}
	if mig > 0 {
		why = append(why, fmt.Sprintf("%d in MIG mode", mig))
	}
	if len(why) > 0 {
		msg += " (" + strings.Join(why, ", ") + ")"
	}
	return fmt.Errorf("%w: %s", ErrUnplaceable, msg)
}

func minus(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func queueGiB(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// Ticket follows one submitted job.
type Ticket struct {
	q         *Queue
	job       Job
	submitted time.Time
	done      chan struct{} // closed when the job ended; err is set by then

	// Guarded by q.mu.
	state     JobState
	assign    Assignment
	assigned  bool
	started   time.Time
	waiting   string
	cancel    context.CancelFunc // the running job's context
	cancelled error              // why a running job was cancelled
	err       error
}

// ID is the job's ID.
func (t *Ticket) ID() string { return t.job.ID }

// State says where the job is now.
func (t *Ticket) State() JobState {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	return t.state
}

// Waiting says why a queued job has not started yet, such as the GPU
// memory it waits for; it is empty once the job started. A waiting job is
// healthy: report this, not a failure.
func (t *Ticket) Waiting() string {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	return t.waiting
}

// Assignment is where the job runs; ok is false until it started.
func (t *Ticket) Assignment() (a Assignment, ok bool) {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	if !t.assigned {
		return Assignment{}, false
	}
	a = t.assign
	a.GPUs = slices.Clone(a.GPUs)
	return a, true
}

// Done is closed when the job has ended.
func (t *Ticket) Done() <-chan struct{} { return t.done }

// Wait returns when the job has ended, with nil when Run returned nil,
// Run's error when it failed, or an error that wraps ErrJobCancelled,
// ErrGPURequired or ErrUnplaceable. It returns ctx's error when ctx ends
// first; the job goes on.
func (t *Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cancel takes a queued job out of the queue, or cancels a running job's
// context; a running job ends, cancelled, when its Run returns. Cancelling
// an ended job does nothing.
func (t *Ticket) Cancel() {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	switch t.state {
	case JobQueued:
		q.finish(t, JobCancelled, nil)
		q.wakeUp()
	case JobRunning:
		if t.cancelled == nil {
			t.cancelled = ErrJobCancelled
		}
		t.cancel()
	}
}
