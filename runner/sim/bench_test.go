package sim

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkHandler measures the simulator's own cost per request at zero
// latency (the runner's benchmark drives it at >10k requests/s), without
// a network: the recorder and request allocations are included.
func BenchmarkHandler(b *testing.B) {
	s := New(Config{Model: "m", Default: "one two three four five six seven eight"})
	for _, bc := range []struct{ name, path, body string }{
		{"chat-stream", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hello there"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":8}`},
		{"chat-whole", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_completion_tokens":8}`},
		{"completions-stream", "/v1/completions", `{"model":"m","prompt":"hello there","stream":true,"max_tokens":8}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, httptest.NewRequest("POST", bc.path, strings.NewReader(bc.body)))
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
