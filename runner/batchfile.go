package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// OpenAI Batch JSONL (runner.md (b)): one request per input line,
//
//	{"custom_id": "…", "method": "POST", "url": "/v1/chat/completions", "body": {…}}
//
// one result per output line, as `vllm run-batch` reads and writes it. The
// runner turns a batch file into concurrent online requests: servers such
// as vLLM have no /v1/batches endpoint.

// maxBatchLine bounds one input line (a request with a long prompt).
const maxBatchLine = 64 << 20

// ReadBatch reads OpenAI Batch JSONL. Body fields the runner knows become
// Request fields; the rest go to Extra unchanged. Errors name the line.
func ReadBatch(r io.Reader) ([]Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBatchLine)
	var out []Request
	seen := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		req, err := parseBatchLine(b)
		if err != nil {
			return nil, fmt.Errorf("batch line %d: %w", line, err)
		}
		if prev, dup := seen[req.ID]; dup {
			return nil, fmt.Errorf("batch line %d: custom_id %q already used on line %d", line, req.ID, prev)
		}
		seen[req.ID] = line
		out = append(out, req)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("batch line %d: %w", line+1, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("batch file has no requests")
	}
	return out, nil
}

func parseBatchLine(b []byte) (Request, error) {
	var in struct {
		CustomID string                     `json:"custom_id"`
		Method   string                     `json:"method"`
		URL      string                     `json:"url"`
		Body     map[string]json.RawMessage `json:"body"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Request{}, fmt.Errorf("not a batch request object: %w", err)
	}
	var req Request
	if in.CustomID == "" {
		return req, fmt.Errorf("custom_id is missing")
	}
	req.ID = in.CustomID
	if in.Method != "" && !strings.EqualFold(in.Method, "POST") {
		return req, fmt.Errorf("custom_id %q: method %q, want POST", in.CustomID, in.Method)
	}
	switch in.URL {
	case "/v1/chat/completions":
		req.Kind = Chat
	case "/v1/completions":
		req.Kind = Completion
	default:
		return req, fmt.Errorf("custom_id %q: url %q, want /v1/chat/completions or /v1/completions", in.CustomID, in.URL)
	}
	if in.Body == nil {
		return req, fmt.Errorf("custom_id %q: body is missing", in.CustomID)
	}
	field := func(name string, v any) error {
		raw, ok := in.Body[name]
		if !ok {
			return nil
		}
		delete(in.Body, name)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("custom_id %q: body.%s: %w", in.CustomID, name, err)
		}
		return nil
	}
	var messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	var maxTokens, maxCompletion int
	var stream bool
	for name, v := range map[string]any{"model": &req.Model, "messages": &messages, "prompt": &req.Prompt,
		"max_tokens": &maxTokens, "max_completion_tokens": &maxCompletion, "temperature": &req.Temperature,
		"seed": &req.Seed, "ignore_eos": &req.IgnoreEOS, "stream": &stream} {
		if err := field(name, v); err != nil {
			return req, err
		}
	}
	delete(in.Body, "stream_options") // the runner decides streaming
	for i, m := range messages {
		text, err := messageText(m.Content)
		if err != nil {
			return req, fmt.Errorf("custom_id %q: body.messages[%d].content: %w", in.CustomID, i, err)
		}
		req.Messages = append(req.Messages, Message{Role: m.Role, Content: text})
	}
	req.MaxTokens = max(maxTokens, maxCompletion)
	if len(in.Body) > 0 {
		req.Extra = in.Body
	}
	return req, req.Validate()
}

// messageText accepts a string or an array of {"type":"text","text":…}
// parts; other parts (images) are not supported by the runner.
func messageText(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("want a string or an array of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part of type %q is not supported (text only)", p.Type)
		}
		sb.WriteString(p.Text)
	}
	return sb.String(), nil
}

// WriteBatch writes one OpenAI Batch output line per timeline: a response
// with the HTTP status and an OpenAI-shaped body rebuilt from the timeline
// (the generated text is there only when the engine kept it), or an error
// for failures without an HTTP status.
func WriteBatch(w io.Writer, reqs map[string]*Request, tls []*Timeline) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i, tl := range tls {
		if tl.Warmup {
			continue
		}
		req := reqs[tl.ID]
		kind, model := Chat, ""
		if req != nil {
			kind, model = req.Kind, req.Model
		}
		line := batchOut{ID: "batch_req_" + strconv.Itoa(i), CustomID: tl.ID}
		switch {
		case tl.Error == nil:
			line.Response = &batchResponse{StatusCode: 200, RequestID: tl.ID, Body: responseBody(kind, model, tl)}
		case tl.Error.Status != 0:
			line.Response = &batchResponse{StatusCode: tl.Error.Status, RequestID: tl.ID,
				Body: map[string]any{"error": map[string]any{"message": tl.Error.Message, "code": string(tl.Error.Class)}}}
		default:
			line.Error = &batchError{Code: string(tl.Error.Class), Message: tl.Error.Message}
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

type batchOut struct {
	ID       string         `json:"id"`
	CustomID string         `json:"custom_id"`
	Response *batchResponse `json:"response"`
	Error    *batchError    `json:"error"`
}

type batchResponse struct {
	StatusCode int            `json:"status_code"`
	RequestID  string         `json:"request_id"`
	Body       map[string]any `json:"body"`
}

type batchError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func responseBody(kind Kind, model string, tl *Timeline) map[string]any {
	choice := map[string]any{"index": 0, "finish_reason": tl.FinishReason}
	body := map[string]any{"id": tl.ID, "model": model}
	if kind == Completion {
		body["object"] = "text_completion"
		choice["text"] = tl.Output
	} else {
		body["object"] = "chat.completion"
		choice["message"] = map[string]any{"role": "assistant", "content": tl.Output}
	}
	body["choices"] = []any{choice}
	if tl.Usage != nil {
		body["usage"] = map[string]any{"prompt_tokens": tl.Usage.PromptTokens, "completion_tokens": tl.Usage.CompletionTokens,
			"total_tokens": tl.Usage.PromptTokens + tl.Usage.CompletionTokens}
	}
	return body
}
