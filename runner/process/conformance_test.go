//go:build unix

package process

import (
	"testing"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/enginetest"
	"github.com/airlock-dev/airlock/runner/sim"
)

// TestConformance runs the engine conformance suite against the process
// engine serving the simulator from a separate process: the test binary,
// started through the command template, on the port the engine picked.
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Name: "process",
		Start: func(t *testing.T, cfg sim.Config) runner.Engine {
			return testServer{cfg: cfg}.engine(t, Options{})
		},
	})
}
