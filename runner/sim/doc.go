// Package sim is Airlock's reference model server: a SIMULATOR, not a
// model. It speaks the OpenAI API (GET /v1/models; POST
// /v1/chat/completions and /v1/completions, streamed as server-sent
// events in the shape vLLM sends or whole, and a list of completion
// prompts as a batch) and plays one version of a model read from a file
// (Config, Load): scripted answers per prompt, latency distributions for
// the first token and each later one, error and refusal rates, and faults
// on demand (HTTP 429/500/400, a stream cut short, a hang, a body that is
// not JSON, a closed connection). The demo plays a good and a regressed
// version (Version); the runner's engine conformance suite and its tests
// use exact timings.
//
// Its tokenizer is a simple one, so that tests can predict counts: an
// answer's tokens are its whitespace-separated words, each after the first
// with the space before it; a prompt's token count (usage.prompt_tokens)
// is the number of whitespace-separated words in all its messages, or in
// the prompt(s). completion_tokens is the number of tokens actually sent.
//
// The format and the faults are documented in docs/demo-model.md; the
// command is airlock demo-model serve.
package sim
