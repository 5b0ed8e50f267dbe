// Package openai owns the engine that talks to any OpenAI-compatible
// inference server (vLLM, TGI, llama.cpp server, Ollama, SGLang, the
// OpenAI API itself): it builds the request body, reads the SSE stream
// and records every chunk in a runner.Timeline with the kind of delta it
// carried, so that TTFT and inter-chunk latency are computed from
// generated output only (a role-only first chunk and the final usage-only
// chunk are not tokens; runner.md (e), complaint 1), and prefers the
// server's token counts (stream_options.include_usage) to counting chunks
// (complaint 2).
//
// The stream is read as `vllm bench serve` reads it: events split on
// blank lines, only data: fields kept (with or without a space), comments
// (pings) skipped, [DONE] ends the stream, and a trailing event the body
// ended in is accepted when it is whole JSON
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
//
// Failures are classified once, here: HTTP 429 (with the server's
// Retry-After), other 4xx, 5xx, no connection, timeout, cancellation, a
// stream cut before [DONE] or a finish_reason, a chunk that is not the
// OpenAI shape, and a stream that generated nothing. The engine never
// retries; the runner's driver decides.
package openai
