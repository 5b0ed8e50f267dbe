// Package runner owns what every eval and benchmark job goes through
// (DESIGN.md §4): the Engine interface that sends one request and records
// its timeline, the load models that decide when requests are sent, the
// driver that keeps them in flight (caps, batching, timeouts, retries for
// evals, none for benchmarks), the metrics computed from the timelines with
// one pinned definition each (Definitions), the Prometheus metrics, OpenAI
// Batch JSONL, and the job queue that places jobs on GPUs (runner/gpu).
//
// Engines live in their own packages: runner/openai (any OpenAI-compatible
// endpoint) and runner/process (a serving command started on the pulled
// release). runner/enginetest is the conformance suite every engine passes;
// runner/sim is the reference model server, a simulator.
package runner
