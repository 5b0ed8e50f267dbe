package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func reqs(n int) []Request {
	out := make([]Request, n)
	for i := range out {
		out[i] = Request{ID: fmt.Sprintf("r%d", i), Kind: Chat, Messages: []Message{{Role: "user", Content: "hi"}}}
	}
	return out
}

func TestRunClosedLoopKeepsConcurrency(t *testing.T) {
	f := &fakeEngine{ttft: 2 * time.Millisecond, perToken: time.Millisecond, tokens: 4}
	res, err := Run(t.Context(), f, reqs(10), Options{Load: Load{Concurrency: 8, Requests: 64, Warmup: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Timelines); got != 72 {
		t.Fatalf("%d timelines, want 64 measured + 8 warm-up", got)
	}
	if p := f.peak.Load(); p != 8 {
		t.Errorf("peak in flight %d, want 8", p)
	}
	s := Summarize(res, SLO{})
	if s.Requests != 64 || s.Warmup != 8 || s.Succeeded != 64 {
		t.Errorf("summary counts %+v", s)
	}
	if s.Tokens.Output != 64*4 || s.Tokens.ServerCounted != 64 {
		t.Errorf("tokens %+v, want 256 output counted by the server", s.Tokens)
	}
	ids := map[string]bool{}
	for _, tl := range res.Timelines {
		if ids[tl.ID] {
			t.Fatalf("ID %s used twice", tl.ID)
		}
		ids[tl.ID] = true
	}
	if !ids["r3#6"] {
		t.Errorf("cycled IDs missing r3#6: inputs are cycled with #n")
	}
}

func TestRunOpenLoopCapAndSchedule(t *testing.T) {
	f := &fakeEngine{ttft: 20 * time.Millisecond, tokens: 1}
	res, err := Run(t.Context(), f, reqs(1), Options{Load: Load{Arrival: Constant, Rate: 2000, Concurrency: 3, Requests: 30}})
	if err != nil {
		t.Fatal(err)
	}
	if p := f.peak.Load(); p > 3 {
		t.Errorf("peak in flight %d, want at most the cap of 3", p)
	}
	for i, tl := range res.Timelines {
		want := Duration(time.Duration(i) * time.Second / 2000)
		if tl.Scheduled != want {
			t.Fatalf("request %d scheduled at %v, want %v", i, tl.Scheduled, want)
		}
		if tl.Sent < tl.Scheduled {
			t.Fatalf("request %d sent at %v before its schedule %v", i, tl.Sent, tl.Scheduled)
		}
	}
	// 30 requests of 20ms, 3 at a time, at 0.5ms spacing: the cap, not the
	// schedule, holds the late ones back, and the lag says so.
	if s := Summarize(res, SLO{}); s.ScheduleLag.Max < (150 * time.Millisecond).Seconds() {
		t.Errorf("max schedule lag %.3fs; with a cap of 3 the last sends wait ~180ms", s.ScheduleLag.Max)
	}
}

func TestRunRetries(t *testing.T) {
	busy := func(req *Request, n int) *Error {
		if n <= 2 {
			return &Error{Class: ClassHTTP429, Status: 429, Message: "slow down", RetryAfter: Duration(time.Millisecond)}
		}
		return nil
	}
	t.Run("eval retries until it succeeds", func(t *testing.T) {
		f := &fakeEngine{tokens: 2, fail: busy}
		res, err := Run(t.Context(), f, reqs(1), Options{Retry: Retry{Attempts: 3, Base: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		tl := res.Timelines[0]
		if tl.Error != nil || tl.Attempts != 3 {
			t.Fatalf("error %v after %d attempts, want success on the third", tl.Error, tl.Attempts)
		}
		if s := Summarize(res, SLO{}); s.Retried != 1 {
			t.Errorf("retried %d, want 1", s.Retried)
		}
	})
	t.Run("benchmark never retries", func(t *testing.T) {
		f := &fakeEngine{tokens: 2, fail: busy}
		res, _ := Run(t.Context(), f, reqs(1), Options{})
		tl := res.Timelines[0]
		if tl.Error == nil || tl.Error.Class != ClassHTTP429 || tl.Attempts != 1 || tl.Status != 429 {
			t.Fatalf("got %+v after %d attempts, want one http_429", tl.Error, tl.Attempts)
		}
	})
	t.Run("too long a Retry-After fails", func(t *testing.T) {
		f := &fakeEngine{tokens: 2, fail: func(*Request, int) *Error {
			return &Error{Class: ClassHTTP429, RetryAfter: Duration(time.Hour)}
		}}
		res, _ := Run(t.Context(), f, reqs(1), Options{Retry: Retry{Attempts: 5}})
		if tl := res.Timelines[0]; tl.Attempts != 1 || !strings.Contains(tl.Error.Message, "Retry-After") {
			t.Fatalf("attempts %d, error %v: want one attempt and the reason", tl.Attempts, tl.Error)
		}
	})
	t.Run("a started stream is not retried", func(t *testing.T) {
		f := &fakeEngine{tokens: 5, startThenFail: Errorf(ClassStreamCut, "cut")}
		res, _ := Run(t.Context(), f, reqs(1), Options{Retry: Retry{Attempts: 3, Base: time.Millisecond}})
		if tl := res.Timelines[0]; tl.Attempts != 1 || tl.Error.Class != ClassStreamCut {
			t.Fatalf("attempts %d, error %v: output had started, so no retry", tl.Attempts, tl.Error)
		}
	})
	t.Run("a 400 is not retried", func(t *testing.T) {
		f := &fakeEngine{fail: func(*Request, int) *Error { return &Error{Class: ClassHTTP4xx, Status: 400} }}
		res, _ := Run(t.Context(), f, reqs(1), Options{Retry: Retry{Attempts: 3}})
		if tl := res.Timelines[0]; tl.Attempts != 1 {
			t.Fatalf("attempts %d, want 1", tl.Attempts)
		}
	})
}

func TestRunTimeoutAndCancel(t *testing.T) {
	f := &fakeEngine{block: true}
	res, err := Run(t.Context(), f, reqs(2), Options{Timeout: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(res, SLO{})
	if s.Errors[ClassTimeout] != 2 {
		t.Fatalf("errors %v, want 2 timeouts", s.Errors)
	}

	ctx, cancel := context.WithCancel(t.Context())
	f = &fakeEngine{block: true, started: make(chan struct{}, 1)}
	done := make(chan *Result)
	go func() {
		res, _ := Run(ctx, f, reqs(1), Options{Load: Load{Arrival: Constant, Rate: 1, Requests: 100}})
		done <- res
	}()
	<-f.started
	cancel()
	res = <-done
	if !res.Interrupted || len(res.Timelines) != 1 || res.Timelines[0].Error.Class != ClassCancelled {
		t.Fatalf("interrupted %v, %d timelines, want 1 cancelled", res.Interrupted, len(res.Timelines))
	}
}

func TestRunDurationLimit(t *testing.T) {
	f := &fakeEngine{tokens: 1}
	res, err := Run(t.Context(), f, reqs(1), Options{Load: Load{Arrival: Constant, Rate: 100, Requests: 1000, Duration: Duration(50 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Timelines); n != 5 {
		t.Errorf("%d requests in 50ms at 100/s, want 5", n)
	}
}

func TestRunBatches(t *testing.T) {
	in := make([]Request, 10)
	for i := range in {
		in[i] = Request{ID: fmt.Sprint(i), Kind: Completion, Prompt: "p", NoStream: true}
	}
	f := &fakeEngine{ttft: time.Millisecond}
	res, err := Run(t.Context(), f, in, Options{Load: Load{Concurrency: 10}, Batch: Batch{MaxSize: 4, MaxWait: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range f.batches {
		if b > 4 {
			t.Errorf("batch of %d, max 4", b)
		}
		total += b
	}
	if total != 10 {
		t.Errorf("batched %d requests, want 10 (batches %v)", total, f.batches)
	}
	s := Summarize(res, SLO{})
	if s.Batched != 10 || s.Succeeded != 10 || s.MeanBatchSize <= 1 || s.Tokens.Unknown != 10 || s.Tokens.Output != 0 {
		t.Errorf("summary %+v", s)
	}
	if _, err := Run(t.Context(), &onlyDo{}, in, Options{Batch: Batch{MaxSize: 4}}); err == nil || !strings.Contains(err.Error(), "does not take batches") {
		t.Errorf("batching with an engine that can't: %v", err)
	}
}

type onlyDo struct{}

func (onlyDo) Do(context.Context, *Request, *Timeline) error { return nil }

func TestRunRejectsBadInput(t *testing.T) {
	f := &fakeEngine{}
	for _, tc := range []struct {
		in   []Request
		opts Options
		want string
	}{
		{nil, Options{}, "no requests"},
		{[]Request{{ID: "x", Kind: Chat}}, Options{}, "needs messages"},
		{[]Request{{ID: "x", Kind: "embed"}}, Options{}, "unknown kind"},
		{reqs(1), Options{Load: Load{Arrival: Poisson}}, "rate"},
	} {
		if _, err := Run(t.Context(), f, tc.in, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
