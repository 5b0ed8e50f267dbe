package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeUpstream is a FAKE OpenAI-compatible server for the unit tests: it
// answers every generation with its tokens ("answer from NAME" unless
// set), streamed in vLLM's shape (one content chunk per token, a finish
// chunk, a usage chunk when stream_options.include_usage, data: [DONE])
// or whole, with usage of 3 prompt tokens and one completion token per
// token. The canary tests use it where they need an answer on demand that
// no real server gives (a status, a finish_reason, a refusal split across
// chunks); the passthrough test also runs the simulator.
type fakeUpstream struct {
	name   string
	srv    *httptest.Server
	hits   atomic.Int64
	tokens []string
	finish string
	status int
	// handler replaces the answer, when set.
	handler  http.HandlerFunc
	lastBody atomic.Pointer[[]byte]
}

type fakeOption func(*fakeUpstream)

func answering(tokens ...string) fakeOption { return func(f *fakeUpstream) { f.tokens = tokens } }
func finishing(reason string) fakeOption    { return func(f *fakeUpstream) { f.finish = reason } }
func failing(status int) fakeOption         { return func(f *fakeUpstream) { f.status = status } }
func handling(h http.HandlerFunc) fakeOption {
	return func(f *fakeUpstream) { f.handler = h }
}

func newFake(t *testing.T, name string, opts ...fakeOption) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{name: name, tokens: []string{"answer", " from", " " + name}, finish: "stop", status: http.StatusOK}
	for _, o := range opts {
		o(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) URL() string { return f.srv.URL }

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	f.lastBody.Store(&body)
	if f.handler != nil {
		f.handler(w, r)
		return
	}
	if r.URL.Path == "/v1/models" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model"}]}`, f.name)
		return
	}
	if f.status != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `{"error":{"message":"fake %d","type":"fake","code":"fake"}}`, f.status)
		return
	}
	var req struct {
		Stream        bool `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(body, &req)
	usage := map[string]int{"prompt_tokens": 3, "completion_tokens": len(f.tokens), "total_tokens": 3 + len(f.tokens)}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "model": f.name,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": strings.Join(f.tokens, "")}, "finish_reason": f.finish}},
			"usage":   usage})
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": f.name,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for _, tok := range f.tokens {
		send(chunk(map[string]any{"content": tok}, nil))
	}
	send(chunk(map[string]any{}, f.finish))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		send(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": f.name, "choices": []any{}, "usage": usage})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// testRouter is a router under test, its metrics and its servers.
type testRouter struct {
	*Router
	reg   *prometheus.Registry
	proxy *httptest.Server
	admin *httptest.Server
}

func newTestRouter(t *testing.T, cfg Config, opts ...Option) *testRouter {
	t.Helper()
	reg := prometheus.NewRegistry()
	rt, err := New(cfg, append([]Option{WithRegisterer(reg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRouter{Router: rt, reg: reg, proxy: httptest.NewServer(rt), admin: httptest.NewServer(rt.Admin())}
	t.Cleanup(func() {
		tr.proxy.Close()
		tr.admin.Close()
		rt.Close()
	})
	return tr
}

const chatBody = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
const streamBody = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`

// chat posts body to the proxy and returns the answer's status, body and
// variant header. hdr are header name, value pairs.
func (tr *testRouter) chat(t *testing.T, body string, hdr ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, tr.proxy.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := tr.proxy.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return res.StatusCode, string(b), res.Header.Get(VariantHeader)
}

// adminDo sends a request to the admin API and returns its status and
// body.
func (tr *testRouter) adminDo(t *testing.T, method, path, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, tr.admin.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := tr.admin.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// series finds one series of a metric family by a subset of its labels
// (name, value pairs); nil if there is none.
func series(t *testing.T, g prometheus.Gatherer, name string, labels ...string) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// value is a counter's or gauge's value, or a histogram's sample count.
func value(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	m := series(t, g, name, labels...)
	switch {
	case m == nil:
		t.Fatalf("no series %s%v", name, labels)
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s%v: not a counter, gauge or histogram", name, labels)
	return 0
}

func twoVariants(t *testing.T, weight int, opts ...fakeOption) (Config, *fakeUpstream, *fakeUpstream) {
	t.Helper()
	stable, canary := newFake(t, Stable, opts...), newFake(t, Canary, opts...)
	return Config{
		Stable: Upstream{URL: stable.URL(), Digest: digestA},
		Canary: &Upstream{URL: canary.URL(), Digest: digestB},
		Weight: weight,
	}, stable, canary
}

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	digestC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)
