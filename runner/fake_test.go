package runner

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// fakeEngine is a fake: an in-process engine with scripted timing and
// failures, for the driver's own logic. Real engines are tested against
// real HTTP servers in their packages and in e2e_test.go.
type fakeEngine struct {
	ttft, perToken time.Duration
	tokens         int
	// fail decides the outcome of an attempt; nil always succeeds.
	fail func(req *Request, attempt int) *Error
	// block makes Do wait for ctx to end; started, when set, gets a
	// value as each blocked request starts.
	block   bool
	started chan struct{}
	// startThenFail sends one token, then fails with the error.
	startThenFail *Error

	mu       sync.Mutex
	attempts map[string]int
	batches  []int
	inFlight atomic.Int64
	peak     atomic.Int64
}

func (f *fakeEngine) Describe() EngineInfo {
	return EngineInfo{Kind: "fake", Model: "fake-model", Endpoint: "inproc"}
}

func (f *fakeEngine) enter() func() {
	n := f.inFlight.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return func() { f.inFlight.Add(-1) }
}

func (f *fakeEngine) attempt(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.attempts == nil {
		f.attempts = map[string]int{}
	}
	f.attempts[id]++
	return f.attempts[id]
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (f *fakeEngine) Do(ctx context.Context, req *Request, tl *Timeline) error {
	defer f.enter()()
	n := f.attempt(req.ID)
	tl.MarkSent()
	defer tl.Finish()
	if f.fail != nil {
		if e := f.fail(req, n); e != nil {
			return e
		}
	}
	if f.block {
		if f.started != nil {
			f.started <- struct{}{}
		}
		<-ctx.Done()
		return AsError(ctx.Err())
	}
	tl.Add(EventRole, 0, 0)
	if err := sleepCtx(ctx, f.ttft); err != nil {
		return AsError(err)
	}
	tl.Add(EventContent, 3, 0)
	if f.startThenFail != nil {
		return f.startThenFail
	}
	for i := 1; i < f.tokens; i++ {
		if err := sleepCtx(ctx, f.perToken); err != nil {
			return AsError(err)
		}
		tl.Add(EventContent, 3, 0)
	}
	tl.Add(EventFinish, 0, 0)
	tl.Usage = &Usage{PromptTokens: 5, CompletionTokens: f.tokens}
	tl.Add(EventUsage, 0, 0)
	return nil
}

func (f *fakeEngine) DoBatch(ctx context.Context, reqs []*Request, tls []*Timeline) error {
	defer f.enter()()
	f.mu.Lock()
	f.batches = append(f.batches, len(reqs))
	f.mu.Unlock()
	for _, tl := range tls {
		tl.MarkSent()
	}
	err := sleepCtx(ctx, f.ttft)
	for _, tl := range tls {
		tl.Add(EventResponse, 10, 0)
		tl.Finish()
	}
	if err != nil {
		return AsError(err)
	}
	return nil
}

var _ Batcher = (*fakeEngine)(nil)
