package enginetest_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/enginetest"
	"github.com/airlock-dev/airlock/runner/openai"
	"github.com/airlock-dev/airlock/runner/sim"
)

// A mutant is the openai engine with one defect the suite must catch.
type mutant struct {
	runner.Engine
	after func(ctx context.Context, tl *runner.Timeline, err error) error
}

func (m mutant) Do(ctx context.Context, req *runner.Request, tl *runner.Timeline) error {
	err := m.Engine.Do(ctx, req, tl)
	return m.after(ctx, tl, err)
}

var mutants = map[string]struct {
	after func(ctx context.Context, tl *runner.Timeline, err error) error
	fails string // a subtest that must fail
}{
	// vLLM PR #3768: the role chunk counted as the first token.
	"role chunk is a token": {func(_ context.Context, tl *runner.Timeline, err error) error {
		for i := range tl.Events {
			if tl.Events[i].Kind == runner.EventRole {
				tl.Events[i].Kind = runner.EventContent
			}
		}
		return err
	}, "scripted/chat_stream"},
	// The usage chunk's tokens ignored: tokens counted by chunks.
	"no server usage": {func(_ context.Context, tl *runner.Timeline, err error) error {
		tl.Usage = nil
		return err
	}, "tokens_per_chunk"},
	"cancellation reported as a timeout": {func(ctx context.Context, tl *runner.Timeline, err error) error {
		if err != nil && runner.AsError(err).Class == runner.ClassCancelled {
			return runner.Errorf(runner.ClassTimeout, "%s", err)
		}
		return err
	}, "scripted/cancel_returns_promptly"},
	"a cut stream reported as success": {func(_ context.Context, tl *runner.Timeline, err error) error {
		if err != nil && runner.AsError(err).Class == runner.ClassStreamCut {
			return nil
		}
		return err
	}, "scripted/faults/cutme"},
	"Finish not called": {func(_ context.Context, tl *runner.Timeline, err error) error {
		tl.Done = 0
		return err
	}, "scripted/chat_stream"},
	"a retry inside the engine": {func(_ context.Context, tl *runner.Timeline, err error) error {
		tl.Attempts++
		return err
	}, "scripted/completion_stream"},
	"a goroutine left per request": {func(ctx context.Context, tl *runner.Timeline, err error) error {
		go func() { select {} }()
		return err
	}, "no_goroutines_left"},
	"Retry-After dropped": {func(_ context.Context, tl *runner.Timeline, err error) error {
		if err != nil && runner.AsError(err).Class == runner.ClassHTTP429 {
			runner.AsError(err).RetryAfter = 0
		}
		return err
	}, "scripted/faults/busy"},
}

const envMutant = "ENGINETEST_MUTANT"

// TestMutant runs the suite against one mutant, in a child process of
// TestSuiteCatchesMutants.
func TestMutant(t *testing.T) {
	name := os.Getenv(envMutant)
	if name == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	m := mutants[name]
	enginetest.Run(t, enginetest.Harness{Name: "mutant", Start: func(t *testing.T, cfg sim.Config) runner.Engine {
		srv := httptest.NewServer(sim.New(cfg))
		t.Cleanup(srv.Close)
		e, err := openai.New(openai.Options{BaseURL: srv.URL, KeepOutput: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.CloseIdleConnections)
		return mutant{Engine: e, after: m.after}
	}})
}

// TestSuiteCatchesMutants: the suite is a test that can fail. Each
// mutant must fail the subtest that guards against its defect.
func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(envMutant) != "" {
		t.Skip("in a child")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range mutants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestMutant$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), envMutant+"="+name, "GORACE=atexit_sleep_ms=0")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed an engine whose %s:\n%s", name, out)
			}
			want := "--- FAIL: TestMutant/" + strings.ReplaceAll(m.fails, " ", "_")
			if !strings.Contains(string(out), want+" ") || strings.Contains(string(out), "panic:") {
				t.Errorf("want %q in the suite's output:\n%s", want, out)
			}
		})
	}
}
