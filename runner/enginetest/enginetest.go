package enginetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/sim"
)

// Harness starts an engine whose server plays cfg. Start registers the
// cleanup of what it started (a server, a process) on t; when the engine
// is a runner.Lifecycle the suite calls Start before the cases and Stop
// after them. The engine should keep output (KeepOutput), so that the
// suite can compare answers text for text; without it the suite compares
// their lengths.
type Harness struct {
	Name  string
	Start func(t *testing.T, cfg sim.Config) runner.Engine
}

// The simulator's tokens are words, each after the first with the space
// before it, one token per stream chunk unless TokensPerChunk says more.
const (
	capital       = "The capital of France is Paris."
	capitalTokens = 6
	filler        = "a b c d e f g h i j" // the default answer: 10 tokens
)

// scripted is the simulator version most cases use: exact answers and
// faults on demand, no latency.
func scripted() sim.Config {
	return sim.Config{Model: "conformance", Default: filler, Answers: []sim.Answer{
		{Match: "capital", Text: capital},
		{Match: "silence", Text: ""},
		{Match: "busy", Fault: "http_429", RetryAfter: 2 * time.Second},
		{Match: "broken", Fault: "http_500"},
		{Match: "rejected", Fault: "http_400"},
		{Match: "cutme", Text: "one two three four five six seven eight", Fault: "cut"},
		{Match: "garble", Fault: "garbage"},
		{Match: "slam", Fault: "close"},
		{Match: "hangs", Fault: "hang"},
	}}
}

// caseTimeout bounds every request of the suite: a case that hangs fails
// instead of hanging the test binary.
const caseTimeout = 30 * time.Second

// Run runs the suite against the engines h starts. Each case is a
// subtest; the last one checks that the engines left no goroutines
// behind, so Run must not share its test with parallel tests.
func Run(t *testing.T, h Harness) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Run("scripted", func(t *testing.T) { scriptedCases(t, start(t, h, scripted())) })
	t.Run("tokens per chunk", func(t *testing.T) { chunked(t, h) })
	t.Run("timing", func(t *testing.T) { timing(t, h) })
	t.Run("startup", func(t *testing.T) { startup(t, h) })
	t.Run("no goroutines left", func(t *testing.T) { NoGoroutinesLeft(t, before, 2) })
}

// start starts an engine through the harness, with its lifecycle.
func start(t *testing.T, h Harness, cfg sim.Config) runner.Engine {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the suite's simulator config: %v", err)
	}
	eng := h.Start(t, cfg)
	if eng == nil {
		t.Fatalf("harness %s started no engine", h.Name)
	}
	setUp(t, h.Name, eng)
	return eng
}

// setUp starts a runner.Lifecycle engine and stops it when the test
// ends, and closes the idle connections of an engine that keeps some.
func setUp(t *testing.T, name string, eng runner.Engine) {
	t.Helper()
	if lc, ok := eng.(runner.Lifecycle); ok {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
			defer cancel()
			if err := lc.Stop(ctx); err != nil {
				t.Errorf("stopping %s: %v", name, err)
			}
		})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := lc.Start(ctx); err != nil {
			t.Fatalf("starting %s: %v", name, err)
		}
	}
	t.Cleanup(func() {
		if c, ok := eng.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	})
}

func chat(id, prompt string, maxTokens int) *runner.Request {
	return &runner.Request{ID: id, Kind: runner.Chat, MaxTokens: maxTokens, Messages: []runner.Message{{Role: "user", Content: prompt}}}
}

func completion(id, prompt string, maxTokens int) *runner.Request {
	return &runner.Request{ID: id, Kind: runner.Completion, MaxTokens: maxTokens, Prompt: prompt}
}

// do sends req with the suite's timeout.
func do(t *testing.T, eng runner.Engine, req *runner.Request) (*runner.Timeline, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	tl := runner.NewTimeline(req.ID, time.Now())
	return tl, eng.Do(ctx, req, tl)
}

// classOf is err's class, or a marker when err is not a *runner.Error.
func classOf(err error) runner.Class {
	var e *runner.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Class
	}
	return runner.Class(fmt.Sprintf("not a *runner.Error (%T)", err))
}

// content counts the content events of tl and their characters.
func content(tl *runner.Timeline) (events, chars int) {
	for _, e := range tl.Events {
		if e.Kind == runner.EventContent {
			events++
			chars += e.Chars
		}
	}
	return events, chars
}

// checkAnswer checks a streamed answer: want in tokens content events (a
// token per chunk), the server's usage, the finish reason, and the
// timeline's shape.
func checkAnswer(t *testing.T, tl *runner.Timeline, want string, tokens int, finish string) {
	t.Helper()
	events, chars := content(tl)
	if events != tokens || chars != len(want) {
		t.Errorf("%d content events with %d chars, want %d with %d (%q)", events, chars, tokens, len(want), want)
	}
	if tl.Output != "" && tl.Output != want {
		t.Errorf("output %q, want %q", tl.Output, want)
	}
	if tl.Usage == nil || tl.Usage.CompletionTokens != tokens {
		t.Errorf("usage %+v, want the server's %d completion tokens", tl.Usage, tokens)
	}
	if tl.FinishReason != finish {
		t.Errorf("finish reason %q, want %q", tl.FinishReason, finish)
	}
	checkShape(t, tl)
}

// checkShape checks what every finished timeline satisfies: one attempt,
// events in order and before the end, no error recorded for a success.
func checkShape(t *testing.T, tl *runner.Timeline) {
	t.Helper()
	if tl.Attempts != 1 {
		t.Errorf("%d attempts, want 1 (engines never retry)", tl.Attempts)
	}
	for i, e := range tl.Events {
		if e.At < 0 || e.At > tl.Done || (i > 0 && e.At < tl.Events[i-1].At) {
			t.Errorf("event %d (%s) at %v is out of order (done at %v)", i, e.Kind, time.Duration(e.At), time.Duration(tl.Done))
		}
	}
	if tl.Done <= 0 {
		t.Errorf("done at %v: tl.Finish was not called", time.Duration(tl.Done))
	}
}

func scriptedCases(t *testing.T, eng runner.Engine) {
	t.Run("chat stream", func(t *testing.T) {
		tl, err := do(t, eng, chat("chat", "What is the capital of France?", 64))
		if err != nil {
			t.Fatal(err)
		}
		checkAnswer(t, tl, capital, capitalTokens, "stop")
		// The role chunk comes first and is not a token; the usage
		// chunk comes last and is not one either (runner.md (e) 1).
		if len(tl.Events) < 2 || tl.Events[0].Kind != runner.EventRole || tl.Events[1].Kind != runner.EventContent {
			t.Fatalf("events %+v: want the role chunk, then content", tl.Events)
		}
		if last := tl.Events[len(tl.Events)-1]; last.Kind != runner.EventUsage {
			t.Errorf("last event %s, want the usage chunk", last.Kind)
		}
		m := runner.Measure(tl)
		if !m.OK || !m.HasTTFT || m.TTFT != time.Duration(tl.Events[1].At) || !m.FromServer || m.OutputTokens != capitalTokens {
			t.Errorf("measures %+v: TTFT is the first content event, tokens the server's", m)
		}
	})
	t.Run("completion stream", func(t *testing.T) {
		tl, err := do(t, eng, completion("compl", "anything", 64))
		if err != nil {
			t.Fatal(err)
		}
		checkAnswer(t, tl, filler, 10, "stop")
		if m := runner.Measure(tl); !m.HasTTFT || !m.FromServer || m.OutputTokens != 10 {
			t.Errorf("measures %+v", m)
		}
	})
	t.Run("max tokens caps the answer", func(t *testing.T) {
		for _, req := range []*runner.Request{completion("cap-c", "anything", 4), chat("cap-chat", "What is the capital?", 4)} {
			tl, err := do(t, eng, req)
			if err != nil {
				t.Fatalf("%s: %v", req.Kind, err)
			}
			want := "a b c d"
			if req.Kind == runner.Chat {
				want = "The capital of France"
			}
			checkAnswer(t, tl, want, 4, "length")
		}
	})
	t.Run("ignore_eos generates exactly max tokens", func(t *testing.T) {
		req := chat("eos", "capital", 20)
		req.IgnoreEOS = true
		tl, err := do(t, eng, req)
		if err != nil {
			t.Fatal(err)
		}
		if events, _ := content(tl); events != 20 || tl.Usage == nil || tl.Usage.CompletionTokens != 20 || tl.FinishReason != "length" {
			t.Errorf("%d content events, usage %+v, finish %q; want exactly 20 tokens", events, tl.Usage, tl.FinishReason)
		}
	})
	t.Run("whole response", func(t *testing.T) {
		for _, req := range []*runner.Request{chat("whole-chat", "capital?", 64), completion("whole-c", "anything", 3)} {
			req.NoStream = true
			tl, err := do(t, eng, req)
			if err != nil {
				t.Fatalf("%s: %v", req.Kind, err)
			}
			want, tokens := capital, capitalTokens
			if req.Kind == runner.Completion {
				want, tokens = "a b c", 3
			}
			if len(tl.Events) != 1 || tl.Events[0].Kind != runner.EventResponse || tl.Events[0].Chars != len(want) {
				t.Errorf("%s: events %+v, want one response event of %d chars", req.Kind, tl.Events, len(want))
			}
			if tl.Output != "" && tl.Output != want {
				t.Errorf("%s: output %q, want %q", req.Kind, tl.Output, want)
			}
			if tl.Usage == nil || tl.Usage.CompletionTokens != tokens {
				t.Errorf("%s: usage %+v, want %d completion tokens", req.Kind, tl.Usage, tokens)
			}
			if m := runner.Measure(tl); !m.OK || m.HasTTFT {
				t.Errorf("%s: measures %+v: a whole response has no TTFT", req.Kind, m)
			}
			checkShape(t, tl)
		}
	})
	t.Run("empty answer", func(t *testing.T) {
		tl, err := do(t, eng, chat("empty", "silence please", 16))
		if classOf(err) != runner.ClassEmptyStream {
			t.Fatalf("error %v, want %s", err, runner.ClassEmptyStream)
		}
		if tl.Started() {
			t.Errorf("events %+v: nothing was generated", tl.Events)
		}
	})
	t.Run("faults", func(t *testing.T) { faults(t, eng) })
	t.Run("hang and timeout", func(t *testing.T) {
		for _, whole := range []bool{false, true} {
			req := chat("hang", "hangs", 8)
			req.NoStream = whole
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			tl := runner.NewTimeline(req.ID, time.Now())
			began := time.Now()
			err := eng.Do(ctx, req, tl)
			took := time.Since(began)
			cancel()
			if classOf(err) != runner.ClassTimeout {
				t.Errorf("whole %t: error %v, want %s", whole, err, runner.ClassTimeout)
			}
			if took < 100*time.Millisecond || took > 10*time.Second {
				t.Errorf("whole %t: Do returned after %v with a 100ms timeout", whole, took)
			}
		}
	})
	t.Run("cancel returns promptly", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- eng.Do(ctx, chat("cancel", "hangs", 8), runner.NewTimeline("cancel", time.Now())) }()
		// Cancel whenever the request is: before it is sent, waiting for
		// the server or reading its stream, the class is the same.
		time.AfterFunc(20*time.Millisecond, cancel)
		select {
		case err := <-errc:
			if classOf(err) != runner.ClassCancelled {
				t.Errorf("error %v, want %s", err, runner.ClassCancelled)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Do did not return within 10s of its context's cancellation")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprint("c", i)
				tl := runner.NewTimeline(id, time.Now())
				ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
				defer cancel()
				err := eng.Do(ctx, chat(id, "capital", 64), tl)
				if events, chars := content(tl); err == nil && (events != capitalTokens || chars != len(capital) || tl.Usage == nil || tl.Usage.CompletionTokens != capitalTokens) {
					err = fmt.Errorf("%d content events, %d chars, usage %+v", events, chars, tl.Usage)
				}
				if err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("batch", func(t *testing.T) { batch(t, eng) })
	t.Run("describe", func(t *testing.T) {
		d, ok := eng.(runner.Describer)
		if !ok {
			t.Skip("the engine does not describe itself")
		}
		if info := d.Describe(); info.Kind == "" {
			t.Errorf("Describe() = %+v: no kind", info)
		}
	})
}

// faults: each fault the simulator plays has its class, before a stream
// and in one.
func faults(t *testing.T, eng runner.Engine) {
	for _, tc := range []struct {
		prompt string
		class  runner.Class
		status int
		whole  bool // also when not streamed
	}{
		{"busy", runner.ClassHTTP429, 429, true},
		{"broken", runner.ClassHTTP5xx, 500, true},
		{"rejected", runner.ClassHTTP4xx, 400, true},
		{"slam", runner.ClassConnect, 0, true},
		{"cutme", runner.ClassStreamCut, 0, true},
		{"garble", runner.ClassStreamParse, 0, true},
	} {
		for _, whole := range []bool{false, true} {
			if whole && !tc.whole {
				continue
			}
			name := tc.prompt
			if whole {
				name += " whole"
			}
			t.Run(name, func(t *testing.T) {
				req := chat("fault-"+name, tc.prompt, 64)
				req.NoStream = whole
				tl, err := do(t, eng, req)
				var e *runner.Error
				if !errors.As(err, &e) || e.Class != tc.class {
					t.Fatalf("error %v, want class %s", err, tc.class)
				}
				if tc.status != 0 && e.Status != tc.status {
					t.Errorf("status %d, want %d", e.Status, tc.status)
				}
				if tc.class == runner.ClassHTTP429 && time.Duration(e.RetryAfter) != 2*time.Second {
					t.Errorf("retry after %v, want the server's 2s", time.Duration(e.RetryAfter))
				}
				if tc.class == runner.ClassStreamCut && !whole && !tl.Started() {
					t.Errorf("events %+v: the stream was cut after some tokens", tl.Events)
				}
				checkShape(t, tl)
			})
		}
	}
}

// batch: an engine that takes batches answers each prompt with its own
// choice.
func batch(t *testing.T, eng runner.Engine) {
	b, ok := eng.(runner.Batcher)
	if !ok {
		t.Skip("the engine does not take batches")
	}
	prompts := []string{"capital", "anything", "the capital again"}
	want := []string{capital, filler, capital}
	reqs := make([]*runner.Request, len(prompts))
	tls := make([]*runner.Timeline, len(prompts))
	start := time.Now()
	for i, p := range prompts {
		reqs[i] = completion(fmt.Sprint("b", i), p, 64)
		reqs[i].NoStream = true
		tls[i] = runner.NewTimeline(reqs[i].ID, start)
	}
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	if err := b.DoBatch(ctx, reqs, tls); err != nil {
		t.Fatal(err)
	}
	for i, tl := range tls {
		if tl.Error != nil {
			t.Errorf("prompt %d: %v", i, tl.Error)
			continue
		}
		if len(tl.Events) != 1 || tl.Events[0].Kind != runner.EventResponse || tl.Events[0].Chars != len(want[i]) {
			t.Errorf("prompt %d: events %+v, want one response of %d chars", i, tl.Events, len(want[i]))
		}
		if tl.Output != "" && tl.Output != want[i] {
			t.Errorf("prompt %d: output %q, want %q", i, tl.Output, want[i])
		}
		checkShape(t, tl)
	}
}

// chunked: a server that puts several tokens in a chunk (tool and
// reasoning parsers do) is counted by its usage, not by its chunks
// (runner.md (e), complaint 1).
func chunked(t *testing.T, h Harness) {
	cfg := scripted()
	cfg.Model, cfg.TokensPerChunk = "chunked", 4
	eng := start(t, h, cfg)
	tl, err := do(t, eng, completion("chunks", "anything", 64))
	if err != nil {
		t.Fatal(err)
	}
	events, chars := content(tl)
	if events != 3 || chars != len(filler) {
		t.Errorf("%d content events of %d chars, want 3 chunks (4+4+2 tokens) of %d", events, chars, len(filler))
	}
	if m := runner.Measure(tl); m.OutputTokens != 10 || !m.FromServer {
		t.Errorf("output tokens %d (from the server %t), want the server's 10", m.OutputTokens, m.FromServer)
	}
}

// timing: a server with a fixed 20ms to the first token and 5ms per
// token after it. TTFT cannot be shorter than the server's; the upper
// bounds are generous, for loaded CI machines.
func timing(t *testing.T, h Harness) {
	const ttft, perToken = 20 * time.Millisecond, 5 * time.Millisecond
	eng := start(t, h, sim.Config{Model: "timed", Default: filler,
		TTFT: sim.Dist{Kind: "fixed", Mean: ttft}, PerToken: sim.Dist{Kind: "fixed", Mean: perToken}})
	tl, err := do(t, eng, chat("timed", "x", 64))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, tl, filler, 10, "stop")
	first := -1
	for i, e := range tl.Events {
		if e.Kind == runner.EventContent {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatal("no content event")
	}
	if at := time.Duration(tl.Events[first].At); at < ttft-time.Millisecond || at > ttft+2*time.Second {
		t.Errorf("first content event at %v, want %v (the role chunk before it comes at once)", at, ttft)
	}
	if at := time.Duration(tl.Events[0].At); tl.Events[0].Kind == runner.EventRole && at >= ttft {
		t.Errorf("role chunk at %v: it is sent before the first token, at %v", at, ttft)
	}
	m := runner.Measure(tl)
	if want := ttft + 9*perToken; m.E2E < want-time.Millisecond || m.E2E > want+3*time.Second {
		t.Errorf("end-to-end %v, want at least %v", m.E2E, want)
	}
	// The simulator keeps token deadlines from the request's arrival, so
	// a late first token shortens the gaps after it: only an upper bound.
	if !m.HasTPOT || m.TPOT > perToken+time.Second {
		t.Errorf("TPOT %v, want about %v", m.TPOT, perToken)
	}
}

// startup: an engine with a lifecycle is ready for requests when Start
// returns, however long its server takes to load.
func startup(t *testing.T, h Harness) {
	cfg := sim.Config{Model: "slow-start", Default: filler, StartupDelay: 300 * time.Millisecond}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	eng := h.Start(t, cfg)
	if _, ok := eng.(runner.Lifecycle); !ok {
		t.Skip("the engine has no lifecycle: its server's readiness is the caller's")
	}
	setUp(t, h.Name, eng)
	tl, err := do(t, eng, chat("first", "x", 3))
	if err != nil {
		t.Fatalf("the first request after Start: %v", err)
	}
	checkAnswer(t, tl, "a b c", 3, "length")
}

// NoGoroutinesLeft waits up to ten seconds for the goroutines to return to
// before (plus slack) — idle connections and exited processes are reaped
// asynchronously — and fails the test with a dump of every goroutine when
// they do not. Engines' own tests use it too.
func NoGoroutinesLeft(t *testing.T, before, slack int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
