package openai

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
)

// benchStream is a vLLM-shaped stream of n tokens: the role chunk, a
// chunk per token, the finish chunk, the usage chunk and [DONE].
func benchStream(n int) string {
	var b strings.Builder
	head := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":`
	b.WriteString(head + `[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	for range n {
		b.WriteString(head + `[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	}
	b.WriteString(head + `[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}` + "\n\n")
	fmt.Fprintf(&b, "%s[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\ndata: [DONE]\n\n", head, n, n+4)
	return b.String()
}

// BenchmarkDo drives Do against an in-process server that answers at
// once, as the runner benchmark does: what is measured is the client's
// cost per request (and the server's, on the same cores). conns/op shows
// that connections are reused.
func BenchmarkDo(b *testing.B) {
	for _, tokens := range []int{4, 64} {
		b.Run(fmt.Sprintf("tokens=%d", tokens), func(b *testing.B) {
			body := benchStream(tokens)
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Write([]byte(body))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			e, err := New(Options{BaseURL: srv.URL, Model: "m"})
			if err != nil {
				b.Fatal(err)
			}
			defer e.CloseIdleConnections()
			req := &runner.Request{ID: "b", Kind: runner.Chat, Messages: []runner.Message{{Role: "user", Content: "hi"}}, MaxTokens: tokens}
			start := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tl := runner.NewTimeline("b", start)
					if err := e.Do(context.Background(), req, tl); err != nil {
						b.Error(err)
						return
					}
					if tl.Usage == nil || tl.Usage.CompletionTokens != tokens {
						b.Errorf("usage %+v", tl.Usage)
						return
					}
				}
			})
			b.ReportMetric(float64(conns.Load())/float64(b.N), "conns/op")
		})
	}
}
