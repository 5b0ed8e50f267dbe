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

// script is a test server that writes a fixed response, byte for byte.
func script(t *testing.T, h http.HandlerFunc) *Engine {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e, err := New(Options{BaseURL: srv.URL + "/v1/", Model: "m", KeepOutput: true, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

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

func class(err error) runner.Class {
	var e *runner.Error
	if errors.As(err, &e) {
		return e.Class
	}
	return "not a runner.Error"
}

const goodStream = `data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}

: ping

data:{"choices":[{"index":0,"delta":{"content":"Hel"}}]}

data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}

data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}

data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}

data: [DONE]

`

func TestStreamShapes(t *testing.T) {
	for _, tc := range []struct {
		name, body, kinds, out string
		tokens                 int
		class                  runner.Class
	}{
		{"chat with role chunk, ping, usage", goodStream, "role,content,content,finish,usage", "Hello", 2, ""},
		{"CRLF", strings.ReplaceAll(goodStream, "\n", "\r\n"), "role,content,content,finish,usage", "Hello", 2, ""},
		{"completions text", "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\" b\",\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n", "content,content", "a b", 0, ""},
		{"reasoning and tool calls", "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n", "reasoning,tool_call,finish", "", 0, ""},
		{"continuous usage", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n", "content,content", "ab", 2, ""},
		{"finish without [DONE] is accepted", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n", "content", "a", 0, ""},
		{"cut: no finish, no [DONE]", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", "content", "a", 0, runner.ClassStreamCut},
		{"cut mid-event", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choi", "content", "", 0, runner.ClassStreamCut},
		{"garbage", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\n", "content", "", 0, runner.ClassStreamParse},
		{"empty", "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", "role,finish", "", 0, runner.ClassEmptyStream},
		{"error event", "data: {\"error\":{\"message\":\"overloaded\"}}\n\n", "", "", 0, runner.ClassHTTP5xx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := script(t, sse(tc.body))
			tl, err := do(t, e, chat("a"))
			if tc.class != "" {
				if class(err) != tc.class {
					t.Fatalf("error %v, want class %s", err, tc.class)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := kinds(tl); got != tc.kinds {
				t.Errorf("events %s, want %s", got, tc.kinds)
			}
			if tc.class == "" && tl.Output != tc.out {
				t.Errorf("output %q, want %q", tl.Output, tc.out)
			}
			if tc.tokens > 0 && (tl.Usage == nil || tl.Usage.CompletionTokens != tc.tokens) {
				t.Errorf("usage %+v, want %d completion tokens", tl.Usage, tc.tokens)
			}
			if n := len(tl.Events); n > 0 && tl.Done < tl.Events[n-1].At {
				t.Errorf("done %v before the last event", tl.Done)
			}
		})
	}
}

func TestTTFTIsFirstContentNotRole(t *testing.T) {
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(30 * time.Millisecond) // the server's "prefill"
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	})
	tl, err := do(t, e, chat("a"))
	if err != nil {
		t.Fatal(err)
	}
	m := runner.Measure(tl)
	if !m.HasTTFT || m.TTFT < 30*time.Millisecond {
		t.Fatalf("ttft %v, want at least the 30ms before the first content (the role chunk does not count)", m.TTFT)
	}
	if tl.Events[0].Kind != runner.EventRole {
		t.Errorf("first event %s, want role", tl.Events[0].Kind)
	}
}

func TestRequestBody(t *testing.T) {
	var got map[string]any
	var hdr http.Header
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header
		json.NewDecoder(r.Body).Decode(&got)
		sse(goodStream)(w, r)
	})
	temp := 0.0
	req := chat("req-7")
	req.Temperature = &temp
	req.IgnoreEOS = true
	req.Extra = map[string]json.RawMessage{"top_p": json.RawMessage(`0.5`)}
	if _, err := do(t, e, req); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"model": "m", "max_completion_tokens": 8.0, "max_tokens": 8.0, "temperature": 0.0, "ignore_eos": true,
		"stream": true, "top_p": 0.5}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("body %s = %v, want %v", k, got[k], v)
		}
	}
	if so, _ := got["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("stream_options %v, want include_usage", got["stream_options"])
	}
	if hdr.Get("Authorization") != "Bearer k" || hdr.Get("X-Request-Id") != "req-7" {
		t.Errorf("headers %v", hdr)
	}
	bad := chat("x")
	bad.Extra = map[string]json.RawMessage{"stream": json.RawMessage(`false`)}
	if err := bad.Validate(); err == nil {
		t.Error("an extra field overriding stream was accepted")
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
		{"429 ms", 429, map[string]string{"Retry-After-Ms": "150"}, ``, runner.ClassHTTP429, "", 150 * time.Millisecond},
		{"503", 503, nil, `{"message":"loading"}`, runner.ClassHTTP5xx, "loading", 0},
		{"400", 400, nil, `{"error":{"message":"messages: field required"}}`, runner.ClassHTTP4xx, "field required", 0},
		{"404 text", 404, nil, `no such route`, runner.ClassHTTP4xx, "no such route", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := script(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.hdr {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			_, err := do(t, e, chat("a"))
			var re *runner.Error
			if !errors.As(err, &re) || re.Class != tc.class || re.Status != tc.status || !strings.Contains(re.Message, tc.msg) {
				t.Fatalf("error %#v, want %s %d with %q", err, tc.class, tc.status, tc.msg)
			}
			if got := time.Duration(re.RetryAfter); got > tc.after || (tc.after > 0 && got < tc.after-time.Second) {
				t.Errorf("retry after %v, want about %v", got, tc.after)
			}
		})
	}
}

func TestConnectTimeoutCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e, _ := New(Options{BaseURL: "http://" + addr})
	if _, err := do(t, e, chat("a")); class(err) != runner.ClassConnect {
		t.Errorf("refused connection: %v, want connect", err)
	}

	release := make(chan struct{})
	hung := script(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	tl := runner.NewTimeline("a", time.Now())
	if err := hung.Do(ctx, chat("a"), tl); class(err) != runner.ClassTimeout {
		t.Errorf("hung stream: %v, want timeout", err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if err := hung.Do(ctx, chat("b"), tl); class(err) != runner.ClassCancelled {
		t.Errorf("cancelled: %v, want cancelled", err)
	}
}

func TestNoStreamAndBatch(t *testing.T) {
	var calls atomic.Int32
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var b struct {
			Prompt any  `json:"prompt"`
			Stream bool `json:"stream"`
		}
		json.NewDecoder(r.Body).Decode(&b)
		w.Header().Set("Content-Type", "application/json")
		if b.Stream {
			w.WriteHeader(400)
			return
		}
		ps, ok := b.Prompt.([]any)
		if !ok {
			io.WriteString(w, `{"choices":[{"index":0,"message":{"content":"whole"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}`)
			return
		}
		// choices out of order, as servers may return them
		var ch []string
		for i := len(ps) - 1; i >= 0; i-- {
			ch = append(ch, fmt.Sprintf(`{"index":%d,"text":"%s!!","finish_reason":"stop"}`, i, ps[i]))
		}
		fmt.Fprintf(w, `{"choices":[%s],"usage":{"prompt_tokens":%d,"completion_tokens":9}}`, strings.Join(ch, ","), 2*len(ps))
	})
	req := chat("w")
	req.NoStream = true
	tl, err := do(t, e, req)
	if err != nil || tl.Output != "whole" || kinds(tl) != "response" || tl.Usage.CompletionTokens != 1 {
		t.Fatalf("whole response: %v %+v", err, tl)
	}
	var reqs []*runner.Request
	var tls []*runner.Timeline
	for i, p := range []string{"a", "bb", "cccccc"} {
		reqs = append(reqs, &runner.Request{ID: fmt.Sprint(i), Kind: runner.Completion, Prompt: p, NoStream: true})
		tls = append(tls, runner.NewTimeline(fmt.Sprint(i), time.Now()))
	}
	calls.Store(0)
	if err := e.DoBatch(t.Context(), reqs, tls); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls for one batch", calls.Load())
	}
	sumC, sumP := 0, 0
	for i, tl := range tls {
		if want := reqs[i].Prompt + "!!"; tl.Output != want {
			t.Errorf("prompt %d got %q, want %q (choices are matched by index)", i, tl.Output, want)
		}
		sumC += tl.Usage.CompletionTokens
		sumP += tl.Usage.PromptTokens
	}
	if sumC != 9 || sumP != 6 {
		t.Errorf("split usage sums to %d/%d, want the server's 9/6", sumC, sumP)
	}
	mixed := append(reqs[:1:1], chat("c"))
	if err := e.DoBatch(t.Context(), mixed, tls[:2]); err == nil {
		t.Error("a chat request in a batch was accepted")
	}
}

func TestModelsAndReady(t *testing.T) {
	var ready atomic.Bool
	e := script(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/models" && ready.Load():
			io.WriteString(w, `{"object":"list","data":[{"id":"tiny"},{"id":"other"}]}`)
		case r.URL.Path == "/v1/models":
			w.WriteHeader(503)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"choices":[{"index":0,"message":{"content":"h"},"finish_reason":"length"}]}`)
		}
	})
	e.opts.Model = ""
	if err := e.Ready(t.Context()); class(err) != runner.ClassHTTP5xx {
		t.Errorf("not ready: %v", err)
	}
	ready.Store(true)
	if err := e.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.ResolveModel(t.Context()); m != "tiny" {
		t.Errorf("model %q, want the first listed", m)
	}
	for _, bad := range []string{"", "ftp://x", "localhost:8000", "http://"} {
		if _, err := New(Options{BaseURL: bad}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

func FuzzSSE(f *testing.F) {
	f.Add([]byte(goodStream))
	f.Add([]byte("data: {\"choices\":[{\"text\":\"a\"}]}\r\n\r\ndata: [DONE]"))
	f.Add([]byte(": c\nevent: x\ndata: 1\ndata: 2\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := &Engine{opts: Options{KeepOutput: true}}
		tl := runner.NewTimeline("f", time.Now())
		tl.MarkSent()
		err := e.stream(context.Background(), strings.NewReader(string(b)), tl)
		generated := false
		for _, ev := range tl.Events {
			generated = generated || ev.Kind.Generated()
			if ev.Chars < 0 {
				t.Fatal("negative chars")
			}
		}
		if err == nil && !generated {
			t.Fatal("success without generated output")
		}
		if err != nil && class(err) == "not a runner.Error" {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func BenchmarkDoStream(b *testing.B) {
	srv := httptest.NewServer(sse(goodStream))
	defer srv.Close()
	e, _ := New(Options{BaseURL: srv.URL})
	req := chat("b")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tl := runner.NewTimeline("b", time.Now())
			if err := e.Do(context.Background(), req, tl); err != nil {
				b.Fatal(err)
			}
		}
	})
}
