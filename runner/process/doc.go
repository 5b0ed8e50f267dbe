// Package process owns the process engine: it starts a model server (vLLM,
// llama.cpp's llama-server, TGI, anything that speaks the OpenAI API) on
// the directory a release was pulled into, so that the digest evaluated is
// the digest released, waits until the server is ready, sends requests to
// it through runner/openai, and tears it down afterwards, also when the
// run failed.
//
// The command is a text/template (Options.Command) split into words like a
// shell line but not run by a shell unless asked (Options.Shell). The
// server runs in its own process group on a loopback port the engine
// picks; readiness is GET /v1/models listing a model, then a one-token
// request (as vLLM's bench does). Stop sends SIGTERM to the group, waits
// Options.StopTimeout, then SIGKILL, and reaps: no server outlives the
// engine. A server that exits early or mid-run turns into errors of class
// engine_exit that quote its last lines of output.
//
// The engine needs a Unix system (process groups). On Linux the engine
// waits for the server with waitid(WNOWAIT), so the group id stays the
// server's until the engine has reaped it and cannot be signalled after
// reuse.
//
// A kubernetes engine (an Indexed Job per shard of a run) will implement
// the same runner.Lifecycle and runner.Engine interfaces, and share with
// this one: the command template and its Vars (the release directory is
// then a volume the pod mounts, the port the container's), readiness
// through openai.Engine.Ready against the pod's endpoint, requests
// delegated to an embedded openai.Engine, the engine_exit classification
// (a pod that failed is a process that exited, with its last log lines in
// the error), and Stop's contract: idempotent, safe after a failed Start,
// and nothing left running (the Job deleted with foreground propagation
// instead of a process group killed). It differs in waiting: a queued
// Kueue workload is "waiting for quota", not "not ready".
package process
