package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/runner"
)

// Options configure New. The zero value of every field but BaseURL is the
// documented default.
type Options struct {
	// BaseURL is the server, such as http://127.0.0.1:8000; a trailing
	// /v1 is accepted.
	BaseURL string
	// APIKey is sent as a bearer token when set. The library never reads
	// the environment; the CLI passes OPENAI_API_KEY.
	APIKey string
	// Model is sent with requests that name none.
	Model string
	// Client sends the requests; nil means one whose transport keeps
	// MaxConns idle connections to the server, so that the pool never
	// silently caps concurrency (runner.md (b)).
	Client *http.Client
	// MaxConns sizes the default client's pool; zero means 1024.
	MaxConns int
	// Headers are added to every request.
	Headers map[string]string
	// ContinuousUsage asks vLLM to send usage with every chunk
	// (stream_options.continuous_usage_stats), so events carry
	// cumulative token counts.
	ContinuousUsage bool
	// KeepOutput keeps generated text in Timeline.Output (evals need
	// it; benchmarks save memory without it).
	KeepOutput bool
	// UserAgent is sent as User-Agent.
	UserAgent string
}

// Engine is a runner.Engine for an OpenAI-compatible server.
type Engine struct {
	opts    Options
	base    string // scheme://host[:port][/prefix], without /v1
	client  *http.Client
	chat    string
	compl   string
	readers sseReaders
}

var (
	_ runner.Batcher   = (*Engine)(nil)
	_ runner.Describer = (*Engine)(nil)
)

// New checks opts and returns an engine. It does not contact the server.
func New(opts Options) (*Engine, error) {
	u, err := url.Parse(strings.TrimSpace(opts.BaseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: want an http:// or https:// URL such as http://127.0.0.1:8000", opts.BaseURL)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1")
	base := u.Scheme + "://" + u.Host + p
	c := opts.Client
	if c == nil {
		n := opts.MaxConns
		if n <= 0 {
			n = 1024
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost, t.MaxConnsPerHost = n, n, 0
		t.DisableCompression = true // streams are small events; gzip would buffer them
		c = &http.Client{Transport: t}
	}
	return &Engine{opts: opts, base: base, client: c, chat: base + "/v1/chat/completions", compl: base + "/v1/completions"}, nil
}

// Describe names the engine in reports.
func (e *Engine) Describe() runner.EngineInfo {
	return runner.EngineInfo{Kind: "openai", Endpoint: e.base, Model: e.opts.Model}
}

// SetModel sets the model sent with requests that name none.
func (e *Engine) SetModel(m string) { e.opts.Model = m }

// CloseIdleConnections closes the pool's idle connections.
func (e *Engine) CloseIdleConnections() { e.client.CloseIdleConnections() }

type streamOptions struct {
	IncludeUsage    bool `json:"include_usage"`
	ContinuousUsage bool `json:"continuous_usage_stats,omitempty"`
}

type body struct {
	Model               string           `json:"model,omitempty"`
	Messages            []runner.Message `json:"messages,omitempty"`
	Prompt              any              `json:"prompt,omitempty"`
	MaxCompletionTokens int              `json:"max_completion_tokens,omitempty"`
	MaxTokens           int              `json:"max_tokens,omitempty"`
	Temperature         *float64         `json:"temperature,omitempty"`
	Seed                *int64           `json:"seed,omitempty"`
	IgnoreEOS           bool             `json:"ignore_eos,omitempty"`
	Stream              bool             `json:"stream,omitempty"`
	StreamOptions       *streamOptions   `json:"stream_options,omitempty"`
}

func (e *Engine) body(req *runner.Request, prompt any) ([]byte, error) {
	b := body{Model: req.Model, Temperature: req.Temperature, Seed: req.Seed, IgnoreEOS: req.IgnoreEOS, MaxTokens: req.MaxTokens}
	if b.Model == "" {
		b.Model = e.opts.Model
	}
	if req.Kind == runner.Chat {
		b.Messages = req.Messages
		b.MaxCompletionTokens = req.MaxTokens // and max_tokens, for servers that know only that
	} else {
		b.Prompt = prompt
	}
	if !req.NoStream {
		b.Stream = true
		b.StreamOptions = &streamOptions{IncludeUsage: true, ContinuousUsage: e.opts.ContinuousUsage}
	}
	out, err := json.Marshal(&b)
	if err != nil || len(req.Extra) == 0 {
		return out, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, err
	}
	for k, v := range req.Extra {
		m[k] = v
	}
	return json.Marshal(m)
}

func (e *Engine) newRequest(ctx context.Context, url string, payload []byte, id string) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "text/event-stream, application/json")
	if id != "" {
		hr.Header.Set("X-Request-Id", id)
	}
	e.headers(hr)
	return hr, nil
}

func (e *Engine) headers(hr *http.Request) {
	if e.opts.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+e.opts.APIKey)
	}
	if e.opts.UserAgent != "" {
		hr.Header.Set("User-Agent", e.opts.UserAgent)
	}
	for k, v := range e.opts.Headers {
		hr.Header.Set(k, v)
	}
}

// Do sends one request and records its timeline.
func (e *Engine) Do(ctx context.Context, req *runner.Request, tl *runner.Timeline) error {
	payload, err := e.body(req, req.Prompt)
	if err != nil {
		return runner.Errorf(runner.ClassHTTP4xx, "encoding request %s: %v", req.ID, err)
	}
	url := e.chat
	if req.Kind == runner.Completion {
		url = e.compl
	}
	hr, err := e.newRequest(ctx, url, payload, req.ID)
	if err != nil {
		return runner.Errorf(runner.ClassHTTP4xx, "building request %s: %v", req.ID, err)
	}
	tl.MarkSent()
	resp, err := e.client.Do(hr)
	if err != nil {
		tl.Finish()
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	tl.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		err := statusError(resp)
		tl.Finish()
		return err
	}
	if req.NoStream || !isEventStream(resp) {
		err = e.whole(ctx, resp.Body, tl)
	} else {
		err = e.stream(ctx, resp.Body, tl)
	}
	tl.Finish()
	return err
}

func isEventStream(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
}

// chunk is the part of a chat.completion.chunk or text_completion event,
// or of a whole response, that the runner reads.
type chunk struct {
	Choices []struct {
		Index int     `json:"index"`
		Text  *string `json:"text"`
		Delta struct {
			Content          *string         `json:"content"`
			ReasoningContent *string         `json:"reasoning_content"`
			Reasoning        *string         `json:"reasoning"`
			ToolCalls        json.RawMessage `json:"tool_calls"`
		} `json:"delta"`
		Message struct {
			Content          *string         `json:"content"`
			ReasoningContent *string         `json:"reasoning_content"`
			ToolCalls        json.RawMessage `json:"tool_calls"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *runner.Usage `json:"usage"`
	Error *apiError     `json:"error"`
}

type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

var done = []byte("[DONE]")

// stream reads an SSE response to its end.
func (e *Engine) stream(ctx context.Context, r io.Reader, tl *runner.Timeline) error {
	sr := e.readers.get(r)
	defer e.readers.put(sr)
	var c chunk
	var out strings.Builder
	generated, finished := false, false
	for {
		data, err := sr.next()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			if errors.Is(err, io.EOF) {
				break
			}
			return readError(ctx, err)
		}
		partial := err != nil
		if bytes.Equal(bytes.TrimSpace(data), done) {
			finished = true
			break
		}
		c = chunk{}
		if jerr := json.Unmarshal(data, &c); jerr != nil {
			if partial {
				return readError(ctx, io.ErrUnexpectedEOF)
			}
			return &runner.Error{Class: runner.ClassStreamParse, Message: fmt.Sprintf("event %d is not JSON: %v", len(tl.Events)+1, jerr), Err: jerr}
		}
		if c.Error != nil {
			return &runner.Error{Class: runner.ClassHTTP5xx, Message: "error event in the stream: " + c.Error.Message}
		}
		tokens := 0
		if c.Usage != nil {
			u := *c.Usage
			tl.Usage = &u
			tokens = u.CompletionTokens
		}
		if len(c.Choices) == 0 {
			if c.Usage != nil {
				tl.Add(runner.EventUsage, 0, tokens)
			}
		}
		for i := range c.Choices {
			ch := &c.Choices[i]
			text := str(ch.Delta.Content) + str(ch.Text)
			reasoning := str(ch.Delta.ReasoningContent) + str(ch.Delta.Reasoning)
			switch {
			case text != "":
				tl.Add(runner.EventContent, len(text), tokens)
				if e.opts.KeepOutput {
					out.WriteString(text)
				}
				generated = true
			case reasoning != "":
				tl.Add(runner.EventReasoning, len(reasoning), tokens)
				generated = true
			case len(ch.Delta.ToolCalls) > 0 && string(ch.Delta.ToolCalls) != "null":
				tl.Add(runner.EventToolCall, len(ch.Delta.ToolCalls), tokens)
				generated = true
			case ch.FinishReason != nil && *ch.FinishReason != "":
				tl.Add(runner.EventFinish, 0, tokens)
			default:
				tl.Add(runner.EventRole, 0, tokens)
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				tl.FinishReason = *ch.FinishReason
				finished = true
			}
		}
		if partial {
			if !finished {
				return readError(ctx, io.ErrUnexpectedEOF)
			}
			break
		}
	}
	if e.opts.KeepOutput {
		tl.Output = out.String()
	}
	if !finished {
		if ctx.Err() != nil {
			return readError(ctx, ctx.Err())
		}
		return runner.Errorf(runner.ClassStreamCut, "the stream ended without [DONE] or a finish_reason after %d events", len(tl.Events))
	}
	if !generated {
		return runner.Errorf(runner.ClassEmptyStream, "the stream finished (%q) without generating anything", tl.FinishReason)
	}
	return nil
}

// maxResponse bounds a whole (non-streamed) response.
const maxResponse = 64 << 20

// whole reads a non-streamed response.
func (e *Engine) whole(ctx context.Context, r io.Reader, tl *runner.Timeline) error {
	b, err := io.ReadAll(io.LimitReader(r, maxResponse))
	if err != nil {
		return readError(ctx, err)
	}
	var c chunk
	if err := json.Unmarshal(b, &c); err != nil {
		return &runner.Error{Class: runner.ClassStreamParse, Message: "the response is not JSON: " + err.Error(), Err: err}
	}
	if len(c.Choices) == 0 {
		return runner.Errorf(runner.ClassEmptyStream, "the response has no choices")
	}
	ch := &c.Choices[0]
	text := str(ch.Message.Content) + str(ch.Text)
	tl.Add(runner.EventResponse, len(text)+len(str(ch.Message.ReasoningContent))+len(ch.Message.ToolCalls), 0)
	tl.FinishReason = str(ch.FinishReason)
	if c.Usage != nil {
		u := *c.Usage
		tl.Usage = &u
	}
	if e.opts.KeepOutput {
		tl.Output = text
	}
	return nil
}

// DoBatch sends completion requests as one non-streamed request with a
// list of prompts. Every timeline gets the batch's send and end times.
// The server's usage is for the whole batch; it is split between the
// requests in proportion to the length of their output.
func (e *Engine) DoBatch(ctx context.Context, reqs []*runner.Request, tls []*runner.Timeline) error {
	if len(reqs) == 0 || len(reqs) != len(tls) {
		return fmt.Errorf("openai: batch of %d requests with %d timelines", len(reqs), len(tls))
	}
	prompts := make([]string, len(reqs))
	first := reqs[0]
	for i, r := range reqs {
		if r.Kind != runner.Completion || !r.NoStream {
			return fmt.Errorf("openai: request %s: only non-streamed completion requests can be batched", r.ID)
		}
		if r.Model != first.Model || r.MaxTokens != first.MaxTokens || !sameFloat(r.Temperature, first.Temperature) || r.IgnoreEOS != first.IgnoreEOS || len(r.Extra) > 0 {
			return fmt.Errorf("openai: request %s: a batch needs one model and the same sampling settings", r.ID)
		}
		prompts[i] = r.Prompt
	}
	payload, err := e.body(first, prompts)
	if err != nil {
		return runner.Errorf(runner.ClassHTTP4xx, "encoding batch: %v", err)
	}
	hr, err := e.newRequest(ctx, e.compl, payload, first.ID)
	if err != nil {
		return runner.Errorf(runner.ClassHTTP4xx, "building batch: %v", err)
	}
	for _, tl := range tls {
		tl.MarkSent()
	}
	finish := func() {
		for _, tl := range tls {
			tl.Finish()
		}
	}
	resp, err := e.client.Do(hr)
	if err != nil {
		finish()
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := statusError(resp)
		finish()
		return err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	finish()
	if err != nil {
		return readError(ctx, err)
	}
	var c chunk
	if err := json.Unmarshal(b, &c); err != nil {
		return &runner.Error{Class: runner.ClassStreamParse, Message: "the batch response is not JSON: " + err.Error(), Err: err}
	}
	seen := make([]bool, len(reqs))
	total := 0
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.Index < 0 || ch.Index >= len(reqs) || seen[ch.Index] {
			return runner.Errorf(runner.ClassStreamParse, "the batch response has choice index %d for %d prompts", ch.Index, len(reqs))
		}
		seen[ch.Index] = true
		tl := tls[ch.Index]
		text := str(ch.Text)
		tl.Events = append(tl.Events, runner.Event{At: tl.Done, Kind: runner.EventResponse, Chars: len(text)})
		tl.FinishReason = str(ch.FinishReason)
		tl.Status = resp.StatusCode
		if e.opts.KeepOutput {
			tl.Output = text
		}
		total += len(text)
	}
	for i, ok := range seen {
		if !ok {
			tls[i].Error = runner.Errorf(runner.ClassEmptyStream, "the batch response has no choice for prompt %d", i)
		}
	}
	if c.Usage != nil {
		split(c.Usage, tls, total)
	}
	return nil
}

// split shares a batch's usage between its requests: prompt tokens
// evenly, completion tokens by output length, with the rounding remainder
// on the last request so the sums match the server's.
func split(u *runner.Usage, tls []*runner.Timeline, chars int) {
	n := len(tls)
	restP, restC := u.PromptTokens, u.CompletionTokens
	for i, tl := range tls {
		p, c := u.PromptTokens/n, 0
		if chars > 0 {
			c = u.CompletionTokens * tl.Events[len(tl.Events)-1].Chars / chars
		} else {
			c = u.CompletionTokens / n
		}
		if i == n-1 {
			p, c = restP, restC
		}
		restP -= p
		restC -= c
		tl.Usage = &runner.Usage{PromptTokens: p, CompletionTokens: c}
	}
}

func sameFloat(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// transportError classifies a failure to get a response.
func transportError(ctx context.Context, err error) *runner.Error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &runner.Error{Class: runner.ClassTimeout, Message: "no response before the timeout", Err: err}
	case ctx.Err() != nil:
		return &runner.Error{Class: runner.ClassCancelled, Message: "cancelled before a response", Err: err}
	}
	return &runner.Error{Class: runner.ClassConnect, Message: err.Error(), Err: err}
}

// readError classifies a failure while reading a response.
func readError(ctx context.Context, err error) *runner.Error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &runner.Error{Class: runner.ClassTimeout, Message: "the response did not finish before the timeout", Err: err}
	case ctx.Err() != nil:
		return &runner.Error{Class: runner.ClassCancelled, Message: "cancelled while reading the response", Err: err}
	}
	return &runner.Error{Class: runner.ClassStreamCut, Message: "the connection broke mid-response: " + err.Error(), Err: err}
}

// statusError reads an error response: the OpenAI error message when the
// body has one, and Retry-After.
func statusError(resp *http.Response) *runner.Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(b))
	var env struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(b, &env) == nil {
		var ae apiError
		var s string
		switch {
		case json.Unmarshal(env.Error, &ae) == nil && ae.Message != "":
			msg = ae.Message
		case json.Unmarshal(env.Error, &s) == nil && s != "":
			msg = s
		case env.Message != "":
			msg = env.Message
		}
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e := &runner.Error{Status: resp.StatusCode, Message: msg}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Class = runner.ClassHTTP429
	case resp.StatusCode >= 500:
		e.Class = runner.ClassHTTP5xx
	default:
		e.Class = runner.ClassHTTP4xx
	}
	e.RetryAfter = runner.Duration(retryAfter(resp.Header, time.Now()))
	return e
}

// retryAfter reads retry-after-ms (OpenAI) or Retry-After in seconds or as
// an HTTP date (RFC 9110 §10.2.3).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Models lists the server's models (GET /v1/models).
func (e *Engine) Models(ctx context.Context) ([]string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	e.headers(hr)
	resp, err := e.client.Do(hr)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET /v1/models: not a model list: %w", err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// ResolveModel returns Options.Model, or the first model the server lists
// (and remembers it).
func (e *Engine) ResolveModel(ctx context.Context) (string, error) {
	if e.opts.Model != "" {
		return e.opts.Model, nil
	}
	ids, err := e.Models(ctx)
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", errors.New("the server lists no models")
	}
	e.opts.Model = ids[0]
	return ids[0], nil
}

// Ready reports whether the server can answer: GET /v1/models lists a
// model, and a one-token chat request succeeds. The process engine polls
// it while a server starts.
func (e *Engine) Ready(ctx context.Context) error {
	model, err := e.ResolveModel(ctx)
	if err != nil {
		return err
	}
	req := runner.Request{ID: "airlock-ready", Kind: runner.Chat, Model: model, MaxTokens: 1, NoStream: true,
		Messages: []runner.Message{{Role: "user", Content: "Hi"}}}
	tl := runner.NewTimeline(req.ID, time.Now())
	if err := e.Do(ctx, &req, tl); err != nil {
		return fmt.Errorf("one-token request: %w", err)
	}
	return nil
}
