package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
)

// script starts a server that answers with h and returns an engine on
// it, given as .../v1/ to check that the base URL is normalised.
func script(t *testing.T, h http.HandlerFunc) *Engine {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e, err := New(Options{BaseURL: srv.URL + "/v1/", Model: "m", KeepOutput: true, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.CloseIdleConnections)
	return e
}

// sse answers with body, byte for byte, as an event stream.
func sse(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
	}
}

func chat(id string) *runner.Request {
	return &runner.Request{ID: id, Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: "hi"}}, MaxTokens: 8}
}

func do(t *testing.T, e *Engine, req *runner.Request) (*runner.Timeline, error) {
	t.Helper()
	tl := runner.NewTimeline(req.ID, time.Now())
	err := e.Do(t.Context(), req, tl)
	return tl, err
}

func kinds(tl *runner.Timeline) string {
	var k []string
	for _, e := range tl.Events {
		k = append(k, string(e.Kind))
	}
	return strings.Join(k, ",")
}

// classOf is err's class, or a marker when err is not a *runner.Error.
func classOf(err error) runner.Class {
	var e *runner.Error
	if errors.As(err, &e) {
		return e.Class
	}
	if err == nil {
		return ""
	}
	return "not a runner.Error"
}

const goodStream = `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

: ping

data:{"choices":[{"index":0,"delta":{"content":"Hel"}}]}

data: {"choices":[{"index":0,"delta":{"content":"lo \u00e9\n"}}]}

data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}

data: [DONE]

`

func TestStreamShapes(t *testing.T) {
	const (
		roleChunk = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
		done      = "data: [DONE]\n\n"
	)
	for _, tc := range []struct {
		name, body, kinds, out string
		chars                  []int // Chars of the events, when checked
		tokens                 []int // Tokens of the events, when checked
		usage                  int   // completion tokens in tl.Usage; -1 for none
		finish                 string
		class                  runner.Class
	}{
		{name: "chat: role chunk, ping, content, finish, usage", body: goodStream, kinds: "role,content,content,finish,usage",
			out: "Hello é\n", chars: []int{0, 3, 6, 0, 0}, usage: 2, finish: "stop"},
		{name: "CRLF", body: strings.ReplaceAll(goodStream, "\n", "\r\n"), kinds: "role,content,content,finish,usage",
			out: "Hello é\n", usage: 2, finish: "stop"},
		{name: "other fields and comments are skipped", body: "event: message\nid: 1\nretry: 10\n: keep-alive\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n:\n\n" + done,
			kinds: "content", out: "a", usage: -1, finish: "stop"},
		{name: "an empty data event is a keep-alive", body: "data:\n\n" + roleChunk + "data: \n\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n" + done,
			kinds: "role,content", out: "a", usage: -1, finish: "stop"},
		{name: "completions text", body: "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\" b\",\"finish_reason\":\"length\"}]}\n\n" + done,
			kinds: "content,content", out: "a b", usage: -1, finish: "length"},
		{name: "reasoning and tool calls", body: roleChunk + "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"reasoning\":\"ok\",\"content\":null}}]}\n\ndata: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\"}}]}}]}\n\ndata: {\"choices\":[{\"delta\":{\"tool_calls\":[]}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n" + done,
			kinds: "role,reasoning,reasoning,tool_call,role,finish", chars: []int{0, 3, 2, 0, 0, 0}, usage: -1, finish: "tool_calls"},
		{name: "continuous usage", body: roleChunk + "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b c\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3}}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3}}\n\n" + done,
			kinds: "role,content,content,usage", tokens: []int{0, 1, 3, 3}, out: "ab c", usage: 3, finish: "stop"},
		{name: "finish without [DONE] is accepted", body: "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n",
			kinds: "content", out: "a", usage: -1, finish: "stop"},
		{name: "a trailing event without its blank line is accepted when whole", body: "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}",
			kinds: "content", out: "a", usage: -1, finish: "stop"},
		{name: "cut: no finish, no [DONE]", body: roleChunk + "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
			kinds: "role,content", usage: -1, class: runner.ClassStreamCut},
		{name: "cut inside an event", body: "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choi",
			kinds: "content", usage: -1, class: runner.ClassStreamCut},
		{name: "garbage", body: "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\n" + done,
			kinds: "content", usage: -1, class: runner.ClassStreamParse},
		{name: "not the OpenAI shape", body: "data: {\"choices\":[{\"delta\":{\"content\":42}}]}\n\n" + done,
			usage: -1, class: runner.ClassStreamParse},
		{name: "empty: finished without output", body: roleChunk + "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" + done,
			kinds: "role,finish", usage: -1, finish: "stop", class: runner.ClassEmptyStream},
		{name: "empty: only [DONE]", body: done, usage: -1, class: runner.ClassEmptyStream},
		{name: "empty body", body: "", usage: -1, class: runner.ClassStreamCut},
		{name: "error event", body: roleChunk + "data: {\"error\":{\"object\":\"error\",\"message\":\"overloaded\",\"code\":503}}\n\n" + done,
			kinds: "role", usage: -1, class: runner.ClassHTTP5xx},
		{name: "error event with a 4xx code", body: "data: {\"object\":\"error\",\"message\":\"too long\",\"code\":400}\n\n",
			usage: -1, class: runner.ClassHTTP4xx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := script(t, sse(tc.body))
			tl, err := do(t, e, chat("a"))
			if classOf(err) != tc.class {
				t.Fatalf("error %v, want class %q", err, tc.class)
			}
			if err != nil && tl.Error == nil {
				t.Error("the error is not in the timeline")
			}
			if got := kinds(tl); got != tc.kinds {
				t.Errorf("events %s, want %s", got, tc.kinds)
			}
			for i, want := range tc.chars {
				if i < len(tl.Events) && tl.Events[i].Chars != want {
					t.Errorf("event %d has %d chars, want %d", i, tl.Events[i].Chars, want)
				}
			}
			for i, want := range tc.tokens {
				if i < len(tl.Events) && tl.Events[i].Tokens != want {
					t.Errorf("event %d has %d tokens, want %d", i, tl.Events[i].Tokens, want)
				}
			}
			if tc.class == "" && tl.Output != tc.out {
				t.Errorf("output %q, want %q", tl.Output, tc.out)
			}
			switch {
			case tc.usage < 0 && tl.Usage != nil:
				t.Errorf("usage %+v, want none", tl.Usage)
			case tc.usage >= 0 && (tl.Usage == nil || tl.Usage.CompletionTokens != tc.usage):
				t.Errorf("usage %+v, want %d completion tokens", tl.Usage, tc.usage)
			}
			if tl.FinishReason != tc.finish {
				t.Errorf("finish reason %q, want %q", tl.FinishReason, tc.finish)
			}
			if tl.Attempts != 1 || tl.Status != 200 {
				t.Errorf("attempts %d, status %d; want 1 and 200", tl.Attempts, tl.Status)
			}
			for i, ev := range tl.Events {
				if ev.At < 0 || ev.At > tl.Done || (i > 0 && ev.At < tl.Events[i-1].At) {
					t.Errorf("event %d at %v: out of order (done %v)", i, ev.At, tl.Done)
				}
			}
		})
	}
}

// TestTTFTIsFirstContent: the role chunk comes at once, the first token
// after the "prefill"; the runner's TTFT is the latter (runner.md (e),
// complaint 1).
func TestTTFTIsFirstContent(t *testing.T) {
	const prefill = 30 * time.Millisecond
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(prefill)
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
	})
	tl, err := do(t, e, chat("a"))
	if err != nil {
		t.Fatal(err)
	}
	if kinds(tl) != "role,content,usage" {
		t.Fatalf("events %s", kinds(tl))
	}
	if tl.Events[0].At >= runner.Duration(prefill) {
		t.Errorf("the role chunk came at %v, after the prefill", time.Duration(tl.Events[0].At))
	}
	m := runner.Measure(tl)
	if !m.HasTTFT || m.TTFT < prefill {
		t.Fatalf("TTFT %v, want at least the %v before the first content", m.TTFT, prefill)
	}
	if m.OutputTokens != 1 || !m.FromServer {
		t.Errorf("output tokens %d (server %t), want the server's 1: the usage chunk is not a token", m.OutputTokens, m.FromServer)
	}
}

func TestRequestBodyAndHeaders(t *testing.T) {
	type seen struct {
		path string
		body map[string]json.RawMessage
		hdr  http.Header
	}
	var last atomic.Pointer[seen]
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		s := &seen{path: r.URL.Path, hdr: r.Header}
		if err := json.NewDecoder(r.Body).Decode(&s.body); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		last.Store(s)
		sse(goodStream)(w, r)
	})
	temp, seed := 0.5, int64(7)
	for _, tc := range []struct {
		name   string
		req    *runner.Request
		opts   func(*Engine)
		path   string
		want   map[string]string // field: JSON value; "" for absent
		header map[string]string
	}{
		{name: "chat", req: &runner.Request{ID: "req-7", Kind: runner.Chat, MaxTokens: 8, Temperature: &temp, Seed: &seed, IgnoreEOS: true,
			Messages: []runner.Message{{Role: "system", Content: "be \"brief\"\n"}, {Role: "user", Content: "héllo\u2028"}}},
			path: "/v1/chat/completions",
			want: map[string]string{"model": `"m"`, "messages": `[{"role":"system","content":"be \"brief\"\n"},{"role":"user","content":"héllo\u2028"}]`,
				"max_completion_tokens": "8", "max_tokens": "8", "temperature": "0.5", "seed": "7", "ignore_eos": "true",
				"stream": "true", "stream_options": `{"include_usage":true}`, "prompt": ""},
			header: map[string]string{"Authorization": "Bearer k", "X-Request-Id": "req-7", "Content-Type": "application/json", "Accept": "text/event-stream"}},
		{name: "completion with its own model", req: &runner.Request{ID: "c", Kind: runner.Completion, Model: "other", Prompt: "once", MaxTokens: 3},
			path: "/v1/completions",
			want: map[string]string{"model": `"other"`, "prompt": `"once"`, "max_tokens": "3", "max_completion_tokens": "", "temperature": "", "seed": "", "ignore_eos": "", "messages": ""}},
		{name: "not streamed", req: &runner.Request{ID: "n", Kind: runner.Completion, Prompt: "p", NoStream: true},
			path:   "/v1/completions",
			want:   map[string]string{"stream": "false", "stream_options": "", "max_tokens": ""},
			header: map[string]string{"Accept": "application/json"}},
		{name: "continuous usage", req: chat("u"), opts: func(e *Engine) { e.opts.ContinuousUsage = true },
			want: map[string]string{"stream_options": `{"include_usage":true,"continuous_usage_stats":true}`}},
		{name: "extra fields are added, and replace the engine's", req: &runner.Request{ID: "x", Kind: runner.Chat, MaxTokens: 8, Temperature: &temp,
			Messages: []runner.Message{{Role: "user", Content: "hi"}},
			Extra:    map[string]json.RawMessage{"top_p": json.RawMessage(`0.9`), "temperature": json.RawMessage(`1`), "chat_template_kwargs": json.RawMessage(`{"enable_thinking":false}`)}},
			want: map[string]string{"top_p": "0.9", "temperature": "1", "chat_template_kwargs": `{"enable_thinking":false}`, "max_tokens": "8"}},
		{name: "no model anywhere: none sent", req: chat("nm"), opts: func(e *Engine) { e.SetModel("") },
			want: map[string]string{"model": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.SetModel("m")
			e.opts.ContinuousUsage = false
			if tc.opts != nil {
				tc.opts(e)
			}
			last.Store(nil)
			_, _ = do(t, e, tc.req)
			s := last.Load()
			if s == nil {
				t.Fatal("no request reached the server")
			}
			if tc.path != "" && s.path != tc.path {
				t.Errorf("path %s, want %s", s.path, tc.path)
			}
			for k, v := range tc.want {
				got, ok := s.body[k]
				switch {
				case v == "" && ok:
					t.Errorf("body has %s = %s, want none", k, got)
				case v != "" && string(got) != v:
					t.Errorf("body %s = %s, want %s", k, got, v)
				}
			}
			for k, v := range tc.header {
				if got := s.hdr.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestRejectedRequests(t *testing.T) {
	var calls atomic.Int32
	e := script(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1); sse(goodStream)(w, r) })
	nan := 0.0
	nan /= nan
	for _, tc := range []struct {
		name, msg string
		req       *runner.Request
	}{
		{"extra overrides the model", "model", &runner.Request{ID: "a", Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: "x"}}, Extra: map[string]json.RawMessage{"model": json.RawMessage(`"x"`)}}},
		{"extra overrides stream", "stream", &runner.Request{ID: "b", Kind: runner.Completion, Extra: map[string]json.RawMessage{"stream": json.RawMessage(`false`)}}},
		{"extra overrides messages", "messages", &runner.Request{ID: "c", Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: "x"}}, Extra: map[string]json.RawMessage{"messages": json.RawMessage(`[]`)}}},
		{"extra overrides the prompt", "prompt", &runner.Request{ID: "d", Kind: runner.Completion, Extra: map[string]json.RawMessage{"prompt": json.RawMessage(`"p"`)}}},
		{"extra is not JSON", "top_k", &runner.Request{ID: "e", Kind: runner.Completion, Extra: map[string]json.RawMessage{"top_k": json.RawMessage(`{`)}}},
		{"chat without messages", "messages", &runner.Request{ID: "f", Kind: runner.Chat}},
		{"temperature NaN", "temperature", &runner.Request{ID: "g", Kind: runner.Completion, Temperature: &nan}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl, err := do(t, e, tc.req)
			var re *runner.Error
			if !errors.As(err, &re) || re.Class != runner.ClassHTTP4xx || re.Status != 0 || !strings.Contains(re.Message, tc.msg) {
				t.Fatalf("error %v, want an http_4xx without status naming %q", err, tc.msg)
			}
			if tl.Attempts != 1 || tl.Error == nil || len(tl.Events) != 0 {
				t.Errorf("timeline %+v, want one failed attempt without events", tl)
			}
		})
	}
	if calls.Load() != 0 {
		t.Errorf("%d rejected requests reached the server", calls.Load())
	}
}

func TestHTTPErrors(t *testing.T) {
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name   string
		status int
		hdr    map[string]string
		body   string
		class  runner.Class
		msg    string
		after  time.Duration
	}{
		{"429 seconds", 429, map[string]string{"Retry-After": "2"}, `{"error":{"message":"rate limited","type":"rate_limit"}}`, runner.ClassHTTP429, "rate limited", 2 * time.Second},
		{"429 date", 429, map[string]string{"Retry-After": date}, ``, runner.ClassHTTP429, "Too Many Requests", 3 * time.Second},
		{"429 ms", 429, map[string]string{"Retry-After-Ms": "150", "Retry-After": "9"}, ``, runner.ClassHTTP429, "", 150 * time.Millisecond},
		{"429 unreadable Retry-After", 429, map[string]string{"Retry-After": "soon"}, ``, runner.ClassHTTP429, "", 0},
		{"500", 500, nil, `{"object":"error","message":"engine died","type":"InternalServerError","code":500}`, runner.ClassHTTP5xx, "engine died", 0},
		{"503 with Retry-After", 503, map[string]string{"Retry-After": "1"}, `{"message":"loading"}`, runner.ClassHTTP5xx, "loading", time.Second},
		{"400 message surfaced", 400, nil, `{"error":{"message":"This model's maximum context length is 4096 tokens","type":"BadRequestError","code":400}}`, runner.ClassHTTP4xx, "maximum context length is 4096", 0},
		{"422 FastAPI detail", 422, nil, `{"detail":[{"loc":["body","messages"],"msg":"field required"}]}`, runner.ClassHTTP4xx, "field required", 0},
		{"404 text", 404, nil, "no such route\n", runner.ClassHTTP4xx, "no such route", 0},
		{"redirect not followed", 307, map[string]string{"Location": "/elsewhere"}, ``, runner.ClassHTTP4xx, "Temporary Redirect", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := script(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.hdr {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			tl, err := do(t, e, chat("a"))
			var re *runner.Error
			if !errors.As(err, &re) || re.Class != tc.class || re.Status != tc.status || !strings.Contains(re.Message, tc.msg) {
				t.Fatalf("error %#v, want %s %d with %q", err, tc.class, tc.status, tc.msg)
			}
			if got := time.Duration(re.RetryAfter); got > tc.after || (tc.after > 0 && got < tc.after-time.Second) {
				t.Errorf("retry after %v, want about %v", got, tc.after)
			}
			if tl.Status != tc.status || tl.Error != re {
				t.Errorf("timeline status %d, error %v", tl.Status, tl.Error)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"120"}}, 2 * time.Minute},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0},
		{http.Header{"Retry-After": {"-3"}}, 0},
		{http.Header{"Retry-After": {"NaN"}}, 0},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"1"}}, 250 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"x"}, "Retry-After": {"1"}}, time.Second},
		{http.Header{}, 0},
	} {
		if got := retryAfter(tc.h, now); got != tc.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestConnectTimeoutCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	refused, err := New(Options{BaseURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := do(t, refused, chat("a"))
	if classOf(err) != runner.ClassConnect || tl.Attempts != 1 {
		t.Errorf("refused connection: %v, want connect", err)
	}

	hang := func(headers bool, release chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// Read the body, so that the server watches the connection
			// and cancels r.Context() when the client goes.
			io.Copy(io.Discard, r.Body)
			if headers {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n")
				w.(http.Flusher).Flush()
			}
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}
	for _, tc := range []struct {
		name    string
		headers bool
		cancel  bool
		class   runner.Class
	}{
		{"timeout before the response", false, false, runner.ClassTimeout},
		{"timeout mid-stream", true, false, runner.ClassTimeout},
		{"cancelled before the response", false, true, runner.ClassCancelled},
		{"cancelled mid-stream", true, true, runner.ClassCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			e := script(t, hang(tc.headers, release))
			t.Cleanup(func() { close(release) }) // before the server closes
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if tc.cancel {
				ctx, cancel = context.WithCancel(t.Context())
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			tl := runner.NewTimeline("a", time.Now())
			start := time.Now()
			err := e.Do(ctx, chat("a"), tl)
			if classOf(err) != tc.class {
				t.Fatalf("error %v, want %s", err, tc.class)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Do returned %v after the context ended", took)
			}
			if tc.headers && kinds(tl) != "role" {
				t.Errorf("events %s, want the role chunk before the hang", kinds(tl))
			}
		})
	}
}

// TestDrainKeepsConnection: reading past [DONE] to the end of the
// response lets the transport reuse the connection; a server that keeps
// the stream open after [DONE] does not hold the request.
func TestDrainKeepsConnection(t *testing.T) {
	var conns atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(func() http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, goodStream)
			w.(http.Flusher).Flush()
			if r.Header.Get("X-Request-Id") == "linger" {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}
		}
	}())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer close(release) // before the server closes
	e, err := New(Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer e.CloseIdleConnections()
	for i := range 20 {
		if _, err := do(t, e, chat(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential requests used %d connections, want 1", n)
	}
	start := time.Now()
	if _, err := do(t, e, chat("linger")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a stream left open after [DONE] held the request %v", took)
	}
}

// TestStreamAnsweredWhole: a server that ignores stream: true answers
// with a whole response, which is read as one.
func TestStreamAnsweredWhole(t *testing.T) {
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}`)
	})
	tl, err := do(t, e, chat("a"))
	if err != nil || kinds(tl) != "response" || tl.Output != "whole" || tl.Usage == nil || tl.Usage.CompletionTokens != 1 {
		t.Fatalf("err %v, timeline %+v", err, tl)
	}
}

func TestNoStream(t *testing.T) {
	for _, tc := range []struct {
		name, body, out, finish string
		chars                   int
		class                   runner.Class
	}{
		{name: "chat", body: `{"choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}`,
			out: "whole", finish: "stop", chars: 5},
		{name: "completion", body: `{"choices":[{"index":0,"text":"abc","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":3}}`,
			out: "abc", finish: "length", chars: 3},
		{name: "reasoning and tool calls", body: `{"choices":[{"index":0,"message":{"content":null,"reasoning_content":"think","tool_calls":[{"id":"1"}]},"finish_reason":"tool_calls"}]}`,
			finish: "tool_calls", chars: 5},
		{name: "empty", body: `{"choices":[{"index":0,"message":{"content":""},"finish_reason":"stop"}]}`, finish: "stop", class: runner.ClassEmptyStream},
		{name: "no choices", body: `{"choices":[]}`, class: runner.ClassEmptyStream},
		{name: "garbage", body: `<html>`, class: runner.ClassStreamParse},
		{name: "error in a 200", body: `{"error":{"message":"bad things","code":503}}`, class: runner.ClassHTTP5xx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := script(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tc.body)
			})
			req := chat("w")
			req.NoStream = true
			tl, err := do(t, e, req)
			if classOf(err) != tc.class {
				t.Fatalf("error %v, want class %q", err, tc.class)
			}
			if tc.class != "" {
				if len(tl.Events) != 0 {
					t.Errorf("events %s for a failed response", kinds(tl))
				}
				return
			}
			if kinds(tl) != "response" || tl.Events[0].Chars != tc.chars || tl.Output != tc.out || tl.FinishReason != tc.finish {
				t.Errorf("events %s (%+v), output %q, finish %q", kinds(tl), tl.Events, tl.Output, tl.FinishReason)
			}
			if m := runner.Measure(tl); m.HasTTFT {
				t.Errorf("a whole response has a TTFT (%v)", m.TTFT)
			}
		})
	}
}

// batchServer answers a list of prompts with "<prompt>!!" each, choices
// in reverse order, as servers may return them.
func batchServer(t *testing.T, calls *atomic.Int32) *Engine {
	return script(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var b struct {
			Prompt    any  `json:"prompt"`
			Stream    bool `json:"stream"`
			MaxTokens int  `json:"max_tokens"`
		}
		json.NewDecoder(r.Body).Decode(&b)
		w.Header().Set("Content-Type", "application/json")
		ps, ok := b.Prompt.([]any)
		if b.Stream || !ok || r.URL.Path != "/v1/completions" {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"message":"want a list of prompts, not streamed"}}`)
			return
		}
		var ch []string
		for i := len(ps) - 1; i >= 0; i-- {
			text := fmt.Sprintf("%s!!%d", ps[i], b.MaxTokens)
			if ps[i] == "silent" {
				text = ""
			}
			ch = append(ch, fmt.Sprintf(`{"index":%d,"text":%q,"finish_reason":"length"}`, i, text))
		}
		fmt.Fprintf(w, `{"choices":[%s],"usage":{"prompt_tokens":%d,"completion_tokens":9}}`, strings.Join(ch, ","), 2*len(ps))
	})
}

func completions(maxTokens []int, prompts ...string) ([]*runner.Request, []*runner.Timeline) {
	var reqs []*runner.Request
	var tls []*runner.Timeline
	start := time.Now()
	for i, p := range prompts {
		id := fmt.Sprint(i)
		reqs = append(reqs, &runner.Request{ID: id, Kind: runner.Completion, Prompt: p, NoStream: true, MaxTokens: maxTokens[i%len(maxTokens)]})
		tls = append(tls, runner.NewTimeline(id, start))
	}
	return reqs, tls
}

func TestBatch(t *testing.T) {
	var calls atomic.Int32
	e := batchServer(t, &calls)

	t.Run("choices matched by index", func(t *testing.T) {
		calls.Store(0)
		reqs, tls := completions([]int{4}, "a", "bb", "silent", "cccccc")
		if err := e.DoBatch(t.Context(), reqs, tls); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 1 {
			t.Errorf("%d calls for one batch", calls.Load())
		}
		for i, tl := range tls {
			if reqs[i].Prompt == "silent" {
				if classOf(tl.Error) != runner.ClassEmptyStream {
					t.Errorf("an empty choice: error %v, want empty_stream", tl.Error)
				}
				continue
			}
			if want := reqs[i].Prompt + "!!4"; tl.Output != want || tl.Error != nil {
				t.Errorf("prompt %d got %q (error %v), want %q", i, tl.Output, tl.Error, want)
			}
			if kinds(tl) != "response" || tl.Events[0].At != tl.Done || tl.FinishReason != "length" || tl.Status != 200 {
				t.Errorf("prompt %d: events %+v, done %v, finish %q, status %d", i, tl.Events, tl.Done, tl.FinishReason, tl.Status)
			}
			if tl.Usage != nil {
				t.Errorf("prompt %d has usage %+v; the server's is for the whole batch", i, tl.Usage)
			}
			if d := tl.Sent - tls[0].Sent; d < 0 || time.Duration(d) > 100*time.Millisecond {
				t.Errorf("prompt %d sent %v after the first", i, time.Duration(d))
			}
		}
	})
	t.Run("a batch of one keeps the usage", func(t *testing.T) {
		reqs, tls := completions([]int{4}, "solo")
		if err := e.DoBatch(t.Context(), reqs, tls); err != nil {
			t.Fatal(err)
		}
		if u := tls[0].Usage; u == nil || u.CompletionTokens != 9 || u.PromptTokens != 2 {
			t.Errorf("usage %+v, want the server's", u)
		}
	})
	t.Run("different settings go in separate batches", func(t *testing.T) {
		calls.Store(0)
		reqs, tls := completions([]int{4, 5}, "a", "b", "c", "d")
		if err := e.DoBatch(t.Context(), reqs, tls); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 2 {
			t.Errorf("%d calls for two settings", calls.Load())
		}
		for i, tl := range tls {
			if want := fmt.Sprintf("%s!!%d", reqs[i].Prompt, reqs[i].MaxTokens); tl.Output != want {
				t.Errorf("prompt %d got %q, want %q", i, tl.Output, want)
			}
		}
	})
	t.Run("chat and streamed requests are refused", func(t *testing.T) {
		calls.Store(0)
		reqs, tls := completions([]int{4}, "a", "b")
		reqs[1] = chat("c")
		reqs[1].NoStream = true
		err := e.DoBatch(t.Context(), reqs, tls)
		if classOf(err) != runner.ClassHTTP4xx || !strings.Contains(err.Error(), "completion") {
			t.Errorf("a chat request in a batch: %v", err)
		}
		reqs, tls = completions([]int{4}, "a", "b")
		reqs[0].NoStream = false
		if err := e.DoBatch(t.Context(), reqs, tls); err == nil {
			t.Error("a streamed request in a batch was accepted")
		}
		if err := e.DoBatch(t.Context(), reqs, tls[:1]); err == nil {
			t.Error("two requests with one timeline were accepted")
		}
		if calls.Load() != 0 {
			t.Errorf("%d refused batches reached the server", calls.Load())
		}
	})
	t.Run("a failed batch fails every request", func(t *testing.T) {
		fails := script(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
		reqs, tls := completions([]int{4}, "a", "b")
		if err := fails.DoBatch(t.Context(), reqs, tls); classOf(err) != runner.ClassHTTP5xx {
			t.Fatalf("error %v, want http_5xx", err)
		}
		for i, tl := range tls {
			if classOf(tl.Error) != runner.ClassHTTP5xx || tl.Status != 503 || tl.Attempts != 1 || tl.Done < 0 {
				t.Errorf("timeline %d: %+v", i, tl)
			}
		}
	})
}

func TestModelsAndReady(t *testing.T) {
	var ready atomic.Bool
	var chatCode atomic.Int32
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/models" && ready.Load():
			io.WriteString(w, `{"object":"list","data":[{"id":"tiny"},{"id":"other"}]}`)
		case r.URL.Path == "/v1/models":
			w.WriteHeader(503)
		case r.URL.Path == "/v1/chat/completions" && chatCode.Load() != 0:
			w.WriteHeader(int(chatCode.Load()))
			io.WriteString(w, `{"error":{"message":"no chat template"}}`)
		default:
			var b struct {
				MaxTokens int  `json:"max_tokens"`
				Stream    bool `json:"stream"`
			}
			json.NewDecoder(r.Body).Decode(&b)
			if b.MaxTokens != 1 || b.Stream {
				w.WriteHeader(400)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"choices":[{"index":0,"message":{"content":"h"},"text":"","finish_reason":"length"}]}`)
		}
	})
	e.SetModel("")
	if err := e.Ready(t.Context()); classOf(err) != runner.ClassHTTP5xx {
		t.Errorf("not ready: %v, want http_5xx", err)
	}
	if _, err := e.ResolveModel(t.Context()); err == nil {
		t.Error("ResolveModel succeeded while /v1/models fails")
	}
	ready.Store(true)
	if err := e.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	chatCode.Store(400) // a base model: chat is rejected, completions work
	if err := e.Ready(t.Context()); err != nil {
		t.Errorf("ready through completions: %v", err)
	}
	chatCode.Store(500)
	if err := e.Ready(t.Context()); classOf(err) != runner.ClassHTTP5xx {
		t.Errorf("chat failing with 500: %v", err)
	}
	ids, err := e.Models(t.Context())
	if err != nil || strings.Join(ids, ",") != "tiny,other" {
		t.Errorf("Models = %v, %v", ids, err)
	}
	if m, err := e.ResolveModel(t.Context()); m != "tiny" || err != nil {
		t.Errorf("ResolveModel = %q, %v; want the first listed", m, err)
	}
	if info := e.Describe(); info.Kind != "openai" || info.Model != "tiny" || !strings.HasPrefix(info.Endpoint, "http://127.0.0.1:") || strings.HasSuffix(info.Endpoint, "/v1") {
		t.Errorf("Describe() = %+v", info)
	}
	e.SetModel("chosen")
	if m, _ := e.ResolveModel(t.Context()); m != "chosen" {
		t.Errorf("ResolveModel = %q, want the model set", m)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct{ in, endpoint string }{
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000"},
		{"http://127.0.0.1:8000/", "http://127.0.0.1:8000"},
		{"http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"},
		{" https://gw.example/openai/v1/ ", "https://gw.example/openai"},
	} {
		e, err := New(Options{BaseURL: tc.in})
		if err != nil {
			t.Errorf("New(%q): %v", tc.in, err)
			continue
		}
		if got := e.Describe().Endpoint; got != tc.endpoint || e.chat != tc.endpoint+"/v1/chat/completions" {
			t.Errorf("New(%q): endpoint %q, chat %q", tc.in, got, e.chat)
		}
	}
	for _, bad := range []string{"", "ftp://x", "localhost:8000", "http://", "http://h?x=1", "http://u:p@h"} {
		if _, err := New(Options{BaseURL: bad}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := New(Options{BaseURL: "http://h", MaxConns: -1}); err == nil {
		t.Error("negative MaxConns accepted")
	}
	e, _ := New(Options{BaseURL: "http://h", MaxConns: 300})
	tr := e.client.Transport.(*http.Transport)
	if tr.MaxIdleConnsPerHost != 300 || tr.MaxConnsPerHost != 0 || tr.MaxIdleConns != 300 || !tr.DisableCompression {
		t.Errorf("transport pool %d idle per host, %d per host, %d idle", tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost, tr.MaxIdleConns)
	}
	e, _ = New(Options{BaseURL: "http://h"})
	if tr := e.client.Transport.(*http.Transport); tr.MaxIdleConnsPerHost != DefaultMaxConns {
		t.Errorf("default pool %d, want %d", tr.MaxIdleConnsPerHost, DefaultMaxConns)
	}
	own := &http.Client{}
	if e, _ := New(Options{BaseURL: "http://h", Client: own}); e.client != own {
		t.Error("the given client is not used")
	}
}

// TestHeaders: Options.Headers come after the engine's, and the request
// ID always last.
func TestHeaders(t *testing.T) {
	var hdr atomic.Pointer[http.Header]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		hdr.Store(&h)
		sse(goodStream)(w, r)
	}))
	defer srv.Close()
	e, err := New(Options{BaseURL: srv.URL, APIKey: "secret", UserAgent: "airlock/test",
		Headers: map[string]string{"api-key": "az", "X-Request-Id": "not this", "X-Tenant": "t1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.CloseIdleConnections()
	if _, err := do(t, e, chat("r1")); err != nil {
		t.Fatal(err)
	}
	h := *hdr.Load()
	for k, v := range map[string]string{"Authorization": "Bearer secret", "User-Agent": "airlock/test", "Api-Key": "az", "X-Tenant": "t1", "X-Request-Id": "r1"} {
		if h.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	if e.header.Get("X-Request-Id") != "not this" {
		t.Error("a request changed the engine's headers")
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                true,
		"application/json; charset=utf-8": true,
		"Application/JSON ;charset=utf-8": true,
		"text/event-stream":               false,
		"application/jsonl":               false,
		"application/x-ndjson":            false,
		"":                                false,
	} {
		if got := isJSON(http.Header{"Content-Type": {ct}}); got != want {
			t.Errorf("isJSON(%q) = %t, want %t", ct, got, want)
		}
	}
}
