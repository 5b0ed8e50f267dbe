// Package sim is Airlock's reference model server: a SIMULATOR, not a
// model. It speaks the OpenAI API (models, chat and completions, streamed
// and whole, batched completion prompts) in the shape vLLM sends, with
// per-version behaviour read from a file (Config): scripted answers per
// prompt, latency distributions for the first token and each later one,
// error and refusal rates, and faults on demand. The demo uses a good and
// a regressed version; the runner's engine conformance suite and its
// correctness tests use exact timings.
//
// Its tokenizer is a simple one: an answer's tokens are its words, each
// with the space before it; a prompt's token count is its number of
// whitespace-separated words.
package sim
