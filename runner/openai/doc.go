// Package openai is the runner's engine for any OpenAI-compatible server
// (vLLM, TGI, llama.cpp server, Ollama, SGLang, airlock demo-model serve):
// chat and completions, streamed with stream_options.include_usage so that
// token counts come from the server, or whole responses, and batches of
// completion prompts. It records every stream event in the request's
// runner.Timeline and classifies failures (runner.Class).
package openai
