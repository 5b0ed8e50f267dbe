// Package router is Airlock's built-in canary router (DESIGN.md §7): an
// OpenAI-compatible reverse proxy that splits traffic between a stable and
// a canary upstream by weight, holds a kill-switch, sheds low-priority
// traffic first when overloaded, and exports per-variant Prometheus metrics
// (requests, errors, time to first token, duration, tokens, safety blocks,
// cost) that the canary judge of package canary reads.
//
// Router is the proxy (an http.Handler for /v1/…); Router.Admin is its admin
// API (GET /admin/state, PUT /admin/weight, /admin/kill-switch and
// /admin/upstreams, GET /healthz), which `airlock promote` drives through
// Client, a canary.Actuator. The routing state (upstreams, weight,
// kill-switch) lives behind one atomic pointer: a change made through the
// admin API decides the very next request.
//
// Responses are inspected as they pass, never held back: each chunk of a
// server-sent event stream is written and flushed to the client before it
// is read for its generated text, finish_reason and usage.
//
// router.yaml, the admin API and the metrics are documented in
// docs/router.md; the command is `airlock router serve`.
package router
