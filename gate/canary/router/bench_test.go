package router

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkProxy is one non-streamed chat completion through the router to
// a zero-latency upstream, as bench/router sends them, without the client
// side's HTTP: what the router itself spends (allocs/op among it).
func BenchmarkProxy(b *testing.B) {
	answer := []byte(`{"id":"chatcmpl-bench","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer up.Close()
	rt, err := New(Config{Stable: Upstream{URL: up.URL, Digest: digestA}, Canary: &Upstream{URL: up.URL, Digest: digestB}, Weight: 50,
		Safety: SafetyConfig{RefusalPatterns: []string{"I can't help with that"}}, Prices: Prices{Stable: &Price{PromptPer1K: 1}, Canary: &Price{PromptPer1K: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody)))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
