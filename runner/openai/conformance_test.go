package openai_test

import (
	"net/http/httptest"
	"testing"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/enginetest"
	"github.com/airlock-dev/airlock/runner/openai"
	"github.com/airlock-dev/airlock/runner/sim"
)

// TestConformance runs the engine conformance suite against the
// simulator over real HTTP, with and without keeping output (evals keep
// it, benchmarks do not; the events must be the same).
func TestConformance(t *testing.T) {
	for _, keep := range []bool{true, false} {
		name := "openai"
		if !keep {
			name += " without output"
		}
		t.Run(name, func(t *testing.T) {
			enginetest.Run(t, enginetest.Harness{Name: name, Start: func(t *testing.T, cfg sim.Config) runner.Engine {
				srv := httptest.NewServer(sim.New(cfg))
				t.Cleanup(srv.Close)
				e, err := openai.New(openai.Options{BaseURL: srv.URL, KeepOutput: keep})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}})
		})
	}
}
