package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure Run. The zero value runs every request once, one at a
// time, without timeout, retry or batching.
type Options struct {
	Load Load
	// Timeout bounds each attempt of a request; zero means none.
	Timeout time.Duration
	// Retry is for evals; benchmarks leave it zero (an error is a data
	// point, not something to hide).
	Retry Retry
	// Batch groups requests for engines that take batches (Batcher).
	Batch Batch
	// SLO decides which requests count toward goodput in the Prometheus
	// metrics; Summarize takes it again for the report.
	SLO SLO
	// Metrics receives every finished request; nil records none.
	Metrics *Metrics
	// Progress is called after every finished request with the counts so
	// far; it must be quick and safe for concurrent use.
	Progress func(done, total int)
	// OnDone is called with every finished measured request (not the
	// warm-up), before Progress: evals record results as they come, so an
	// interrupted run can resume. It must be safe for concurrent use.
	OnDone func(tl *Timeline)
	// Logger gets a line per failed request at debug level; nil is silent.
	Logger *slog.Logger
}

// Batch bounds the batches the driver sends to a Batcher: a batch goes
// when it has MaxSize requests or when its first request has waited
// MaxWait, whichever comes first (Triton's dynamic batcher has the same
// two knobs). Only non-streamed completion requests are batched; others
// are sent alone. MaxSize of 0 or 1 turns batching off.
type Batch struct {
	MaxSize int           `json:"max_size,omitempty"`
	MaxWait time.Duration `json:"max_wait,omitempty"`
}

// Result is what a run produced: a timeline per request sent, warm-up
// first, then measured requests in order of their schedule.
type Result struct {
	// Start is the wall-clock start of the measured phase; timeline
	// offsets count from it.
	Start time.Time
	// Duration is from Start to the end of the last measured response.
	Duration  Duration
	Load      Load
	Timelines []*Timeline
	// Interrupted reports that ctx ended before every request was sent;
	// the timelines are those of the requests that were.
	Interrupted bool
}

// Run sends requests to eng under opts.Load and returns their timelines.
// Inputs are cycled when the load asks for more requests than there are
// inputs; a cycled request's ID gets "#n". It returns an error only for
// input it cannot run (failed requests are in the timelines); when ctx
// ends it returns what it has, with Interrupted set.
func Run(ctx context.Context, eng Engine, inputs []Request, opts Options) (*Result, error) {
	if eng == nil {
		return nil, errors.New("runner: no engine")
	}
	if len(inputs) == 0 {
		return nil, errors.New("runner: no requests to send")
	}
	for i := range inputs {
		if err := inputs[i].Validate(); err != nil {
			return nil, err
		}
	}
	load := opts.Load.Defaults(len(inputs))
	if err := load.Validate(); err != nil {
		return nil, err
	}
	if opts.Batch.MaxSize > 1 {
		if _, ok := eng.(Batcher); !ok {
			return nil, fmt.Errorf("runner: batching of %d asked for, but the engine does not take batches", opts.Batch.MaxSize)
		}
	}
	d := &driver{eng: eng, opts: opts, inputs: inputs, log: opts.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics != nil {
		d.obs = opts.Metrics.observer(eng, opts.SLO)
	}
	d.total = load.Warmup + load.Requests
	res := &Result{Load: load}

	if load.Warmup > 0 {
		warm := Load{Arrival: Closed, Concurrency: max(1, load.Concurrency), Requests: load.Warmup}
		tls, _, stopped := d.phase(ctx, warm, 0, true)
		res.Timelines = append(res.Timelines, tls...)
		if stopped {
			res.Interrupted = true
			return res, nil
		}
	}
	tls, start, stopped := d.phase(ctx, load, load.Warmup, false)
	res.Start = start
	res.Timelines = append(res.Timelines, tls...)
	res.Interrupted = stopped
	var end time.Duration
	for _, tl := range tls {
		end = max(end, time.Duration(tl.Sent)+time.Duration(tl.Done))
	}
	res.Duration = Duration(end)
	return res, nil
}

type driver struct {
	eng    Engine
	opts   Options
	inputs []Request
	log    *slog.Logger
	obs    *observer
	total  int
	done   atomic.Int64
}

// phase sends load.Requests requests, numbered from first (for cycling
// the inputs), and waits for them. stopped reports that ctx ended or the
// load's Duration passed before all were sent.
func (d *driver) phase(ctx context.Context, load Load, first int, warmup bool) (tls []*Timeline, start time.Time, stopped bool) {
	n := load.Requests
	tls = make([]*Timeline, n)
	reqs := make([]*Request, n)
	start = time.Now()
	for i := range n {
		reqs[i] = d.input(first + i)
		tls[i] = NewTimeline(reqs[i].ID, start)
		tls[i].Warmup = warmup
	}
	var b *batcher
	if d.opts.Batch.MaxSize > 1 {
		b = newBatcher(ctx, d)
		defer b.close()
	}
	var wg sync.WaitGroup
	sent := 0
	limit := time.Duration(load.Duration)
	if load.Arrival == Closed {
		var next atomic.Int64
		var over atomic.Bool
		for range load.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					now := time.Since(start)
					if limit > 0 && now >= limit {
						over.Store(true)
						return
					}
					tls[i].Scheduled = Duration(now)
					d.send(ctx, b, reqs[i], tls[i])
				}
			})
		}
		wg.Wait()
		// Requests a stream never took were not sent.
		k := 0
		for _, tl := range tls {
			if tl.Attempts > 0 || tl.Error != nil {
				tls[k] = tl
				k++
			}
		}
		return tls[:k], start, k < n || over.Load()
	}

	sched := load.Schedule(n)
	var sem chan struct{}
	if load.Concurrency > 0 {
		sem = make(chan struct{}, load.Concurrency)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
loop:
	for i := range n {
		if limit > 0 && sched[i] >= limit {
			break
		}
		if wait := sched[i] - time.Since(start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		}
		if sem != nil {
			select {
			case <-ctx.Done():
				break loop
			case sem <- struct{}{}:
			}
		}
		if ctx.Err() != nil {
			break
		}
		tls[i].Scheduled = Duration(sched[i])
		sent++
		wg.Go(func() {
			d.send(ctx, b, reqs[i], tls[i])
			if sem != nil {
				<-sem
			}
		})
	}
	wg.Wait()
	return tls[:sent], start, sent < n
}

// input is the i-th request of the run, cycling the inputs.
func (d *driver) input(i int) *Request {
	r := d.inputs[i%len(d.inputs)]
	if c := i / len(d.inputs); c > 0 {
		r.ID += "#" + strconv.Itoa(c)
	}
	return &r
}

// send runs one request to its end, through the batcher when it can be
// batched, and records it.
func (d *driver) send(ctx context.Context, b *batcher, req *Request, tl *Timeline) {
	if d.obs != nil {
		d.obs.start()
	}
	if b != nil && req.Kind == Completion && req.NoStream {
		if err := b.do(ctx, req, tl); err != nil && d.retryable(ctx, tl) {
			d.exec(ctx, req, tl)
		}
	} else {
		d.exec(ctx, req, tl)
	}
	if tl.Error != nil {
		d.log.Debug("request failed", "id", tl.ID, "class", tl.Error.Class, "error", tl.Error.Message)
	}
	if d.obs != nil {
		d.obs.finish(tl)
	}
	if f := d.opts.OnDone; f != nil && !tl.Warmup {
		f(tl)
	}
	if p := d.opts.Progress; p != nil {
		p(int(d.done.Add(1)), d.total)
	}
}

// exec sends one request with the retry policy.
func (d *driver) exec(ctx context.Context, req *Request, tl *Timeline) {
	for attempt := 1; ; attempt++ {
		err := d.attempt(ctx, req, tl)
		if err == nil {
			return
		}
		if attempt >= d.opts.Retry.Attempts || !d.retryable(ctx, tl) {
			return
		}
		wait := d.opts.Retry.backoff(attempt)
		if ra := time.Duration(tl.Error.RetryAfter); ra > wait {
			if ra > d.opts.Retry.maxRetryAfter() {
				tl.Error.Message += fmt.Sprintf(" (Retry-After %s is longer than the %s the runner waits)", ra, d.opts.Retry.maxRetryAfter())
				return
			}
			wait = ra
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// attempt sends req once and records the outcome in tl.
func (d *driver) attempt(ctx context.Context, req *Request, tl *Timeline) error {
	actx, cancel := d.withTimeout(ctx)
	attempts := tl.Attempts
	err := d.eng.Do(actx, req, tl)
	cancel()
	if tl.Attempts == attempts { // the engine failed before sending
		tl.MarkSent()
		tl.Finish()
	}
	if err != nil {
		tl.Error = classify(ctx, err)
		if tl.Error.Status != 0 {
			tl.Status = tl.Error.Status
		}
		return err
	}
	tl.Error = nil
	return nil
}

// withTimeout bounds one attempt by Options.Timeout, when there is one.
func (d *driver) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.opts.Timeout > 0 {
		return context.WithTimeout(ctx, d.opts.Timeout)
	}
	return ctx, func() {}
}

// classify is AsError, except that an attempt cut short because the run
// itself ended is ClassCancelled, whatever the engine saw.
func classify(run context.Context, err error) *Error {
	e := AsError(err)
	if run.Err() != nil && e.Class != ClassCancelled {
		c := *e
		c.Class, c.Message = ClassCancelled, "run stopped: "+e.Message
		return &c
	}
	return e
}

func (d *driver) retryable(ctx context.Context, tl *Timeline) bool {
	return d.opts.Retry.Attempts > 1 && ctx.Err() == nil && tl.Error != nil && tl.Error.Retryable() && !tl.Started()
}

// backoff is the wait before attempt+1: full jitter over an exponential
// bound ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
func (r Retry) backoff(attempt int) time.Duration {
	base, ceil := r.Base, r.Max
	if base <= 0 {
		base = 250 * time.Millisecond
	}
	if ceil <= 0 {
		ceil = 10 * time.Second
	}
	bound := base << min(attempt-1, 20)
	if bound <= 0 || bound > ceil {
		bound = ceil
	}
	return time.Duration(rand.Int64N(int64(bound)) + 1)
}

func (r Retry) maxRetryAfter() time.Duration {
	if r.MaxRetryAfter > 0 {
		return r.MaxRetryAfter
	}
	return time.Minute
}

// batcher collects batchable requests and sends them as batches.
type batcher struct {
	d    *driver
	in   chan *batchItem
	wg   sync.WaitGroup
	stop chan struct{}
}

type batchItem struct {
	req  *Request
	tl   *Timeline
	err  error
	done chan struct{}
}

func newBatcher(ctx context.Context, d *driver) *batcher {
	b := &batcher{d: d, in: make(chan *batchItem), stop: make(chan struct{})}
	b.wg.Go(func() { b.loop(ctx) })
	return b
}

func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
}

// do queues one request and waits for its batch to finish.
func (b *batcher) do(ctx context.Context, req *Request, tl *Timeline) error {
	it := &batchItem{req: req, tl: tl, done: make(chan struct{})}
	select {
	case b.in <- it:
	case <-ctx.Done():
		tl.MarkSent()
		tl.Finish()
		tl.Error = classify(ctx, ctx.Err())
		return ctx.Err()
	}
	<-it.done
	return it.err
}

func (b *batcher) loop(ctx context.Context) {
	size, wait := b.d.opts.Batch.MaxSize, b.d.opts.Batch.MaxWait
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var pending []*batchItem
	var model string
	flush := func() {
		if len(pending) == 0 {
			return
		}
		batch := pending
		pending = nil
		b.wg.Go(func() { b.send(ctx, batch) })
	}
	for {
		var deadline <-chan time.Time
		if len(pending) > 0 {
			deadline = timer.C
		}
		select {
		case <-b.stop:
			flush()
			return
		case it := <-b.in:
			if len(pending) > 0 && it.req.Model != model {
				flush()
			}
			if len(pending) == 0 {
				model = it.req.Model
				timer.Reset(wait)
			}
			pending = append(pending, it)
			if len(pending) >= size {
				timer.Stop()
				flush()
			}
		case <-deadline:
			flush()
		}
	}
}

func (b *batcher) send(ctx context.Context, batch []*batchItem) {
	reqs := make([]*Request, len(batch))
	tls := make([]*Timeline, len(batch))
	for i, it := range batch {
		reqs[i], tls[i] = it.req, it.tl
		it.tl.Batch = len(batch)
	}
	actx, cancel := b.d.withTimeout(ctx)
	err := b.d.eng.(Batcher).DoBatch(actx, reqs, tls)
	cancel()
	for _, it := range batch {
		if it.tl.Attempts == 0 {
			it.tl.MarkSent()
			it.tl.Finish()
		}
		switch {
		case it.tl.Error != nil:
			it.err = it.tl.Error
		case err != nil:
			it.tl.Error = classify(ctx, err)
			it.err = err
		}
		close(it.done)
	}
}
