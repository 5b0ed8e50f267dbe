package runner

import (
	"encoding/json"
	"fmt"
)

// Kind is the OpenAI API a request goes to.
type Kind string

const (
	// Chat is POST /v1/chat/completions.
	Chat Kind = "chat"
	// Completion is POST /v1/completions.
	Completion Kind = "completion"
)

// Path is the request path of the kind, as OpenAI Batch JSONL names it.
func (k Kind) Path() string {
	if k == Completion {
		return "/v1/completions"
	}
	return "/v1/chat/completions"
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one generation request. Engines send it as the OpenAI API
// says; fields they do not know go in Extra, which is merged into the
// request body as is (safety settings, vendor options).
type Request struct {
	// ID names the request in the report and in Batch JSONL (custom_id).
	// Retries keep it, so a server that deduplicates can.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Model is the served model name; empty lets the engine choose.
	Model    string    `json:"model,omitempty"`
	Messages []Message `json:"messages,omitempty"` // Chat
	Prompt   string    `json:"prompt,omitempty"`   // Completion
	// MaxTokens caps the output: max_completion_tokens for chat (and
	// max_tokens, for servers that know only that), max_tokens for
	// completions. Zero leaves the server's default.
	MaxTokens   int      `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	Seed        *int64   `json:"seed,omitempty"`
	// IgnoreEOS asks the server (vLLM, llama.cpp) to generate exactly
	// MaxTokens, so that throughput is comparable between releases.
	IgnoreEOS bool `json:"ignore_eos,omitempty"`
	// NoStream asks for one JSON response instead of a stream: TTFT is
	// then unknown. Batching needs it.
	NoStream bool                       `json:"no_stream,omitempty"`
	Extra    map[string]json.RawMessage `json:"extra,omitempty"`
}

// Validate reports a request an engine cannot send.
func (r *Request) Validate() error {
	switch r.Kind {
	case Chat:
		if len(r.Messages) == 0 {
			return fmt.Errorf("request %q: a chat request needs messages", r.ID)
		}
	case Completion:
	default:
		return fmt.Errorf("request %q: unknown kind %q (want chat or completion)", r.ID, r.Kind)
	}
	if r.MaxTokens < 0 {
		return fmt.Errorf("request %q: max_tokens %d is negative", r.ID, r.MaxTokens)
	}
	for _, k := range []string{"model", "messages", "prompt", "stream", "stream_options"} {
		if _, ok := r.Extra[k]; ok {
			return fmt.Errorf("request %q: extra body field %q is the runner's to set", r.ID, k)
		}
	}
	return nil
}
