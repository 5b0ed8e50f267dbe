// Package enginetest is the conformance suite every runner.Engine passes
// (as distribution's storage drivers pass one suite): the same cases
// against the reference simulator (runner/sim), whatever the engine puts
// between the runner and the server — an HTTP client (runner/openai), a
// serving process it starts (runner/process), later a Kubernetes Job.
//
// An engine's package wires it from a _test.go file:
//
//	func TestConformance(t *testing.T) {
//		enginetest.Run(t, enginetest.Harness{Name: "openai", Start: func(t *testing.T, cfg sim.Config) runner.Engine {
//			srv := httptest.NewServer(sim.New(cfg))
//			t.Cleanup(srv.Close)
//			e, err := openai.New(openai.Options{BaseURL: srv.URL, KeepOutput: true})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return e
//		}})
//	}
//
// What the suite checks is what the runner's metrics rest on: the role
// chunk and the usage chunk are not tokens, TTFT is the first generated
// output, token counts are the server's, every failure has its class
// (runner.md (e), complaints 1 and 2), and Do returns when its context
// ends without leaving goroutines behind.
package enginetest
