package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a FAKE HTTP/1.1 server on a bare listener, for answers
// net/http's server will not give on demand: a connection closed after an
// answer that promised to keep it, informational answers before the real
// one. serve is called for each request read on a connection; it returns
// whether to keep the connection open.
type rawUpstream struct {
	ln       net.Listener
	conns    atomic.Int64
	requests atomic.Int64
	wg       sync.WaitGroup
	// closed receives a connection's number once the upstream has closed
	// it.
	closed chan int64
}

func newRawUpstream(t *testing.T, serve func(w *bufio.Writer, req *http.Request, n int64) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, closed: make(chan int64, 1024)}
	u.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := u.conns.Add(1)
			u.wg.Go(func() {
				defer func() {
					c.Close()
					select {
					case u.closed <- n:
					default:
					}
				}()
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					u.requests.Add(1)
					keep := serve(bw, req, n)
					if bw.Flush() != nil || !keep {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

func (u *rawUpstream) URL() string { return "http://" + u.ln.Addr().String() }

func ok(w *bufio.Writer, body string) {
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// post sends a small request through the router's transport the way the
// proxy does: its body in memory, with GetBody.
func post(t *testing.T, tp *transport, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	body := []byte(chatBody)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(chatBody))
	if err != nil {
		t.Fatal(err)
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(body))), nil }
	if !direct(req) {
		t.Fatal("a small in-memory request does not take the direct path")
	}
	return tp.RoundTrip(req)
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newTestTransport() *transport { return newTransport(&http.Transport{}, 16) }

func TestTransportKeepsConnections(t *testing.T) {
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "answer") }))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	tp := newTestTransport()
	defer tp.CloseIdleConnections()
	for i := range 50 {
		res, err := post(t, tp, context.Background(), up.URL)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, res); got != "answer" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 requests one after the other took %d connections, want 1", n)
	}
}

// TestTransportUpstreamClosedIdle: an upstream that closes a kept
// connection while it is idle (a keep-alive timeout) costs no request: the
// closed connection is found before the request is written, and a new one
// carries it.
func TestTransportUpstreamClosedIdle(t *testing.T) {
	up := newRawUpstream(t, func(w *bufio.Writer, _ *http.Request, n int64) bool {
		ok(w, fmt.Sprintf("connection %d", n))
		return false // closed after promising keep-alive
	})
	tp := newTestTransport()
	defer tp.CloseIdleConnections()
	for i := range 10 {
		res, err := post(t, tp, context.Background(), up.URL())
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got, want := readAll(t, res), fmt.Sprintf("connection %d", i+1); got != want {
			t.Errorf("request %d answered by %q, want %q", i, got, want)
		}
		<-up.closed // the upstream has closed the pooled connection
	}
	if n := up.requests.Load(); n != 10 {
		t.Errorf("the upstream received %d requests for 10 sent, want 10", n)
	}
}

// TestTransportNoReplayAfterSend: a kept connection that takes a chat
// request and closes without answering is not sent the request again (the
// upstream may have acted on it): the caller gets the error. With an
// Idempotency-Key it is sent again, on a new connection.
func TestTransportNoReplayAfterSend(t *testing.T) {
	for _, key := range []string{"", "req-7"} {
		t.Run("idempotency-key="+key, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[int64]int{} // requests per connection
			up := newRawUpstream(t, func(w *bufio.Writer, _ *http.Request, n int64) bool {
				mu.Lock()
				seen[n]++
				i := seen[n]
				mu.Unlock()
				if n == 1 && i == 2 {
					return false // took the second request, then closed without a word
				}
				ok(w, fmt.Sprintf("connection %d request %d", n, i))
				return true
			})
			tp := newTestTransport()
			defer tp.CloseIdleConnections()
			send := func() (*http.Response, error) {
				req, err := http.NewRequest(http.MethodPost, up.URL()+"/v1/chat/completions", strings.NewReader(chatBody))
				if err != nil {
					t.Fatal(err)
				}
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(chatBody)), nil }
				if key != "" {
					req.Header.Set("Idempotency-Key", key)
				}
				return tp.RoundTrip(req)
			}
			res, err := send()
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, res)
			res, err = send()
			if key == "" {
				if !errors.Is(err, errNoAnswer) {
					t.Fatalf("got %v, want errNoAnswer", err)
				}
				if n := up.requests.Load(); n != 2 {
					t.Errorf("the upstream received %d requests, want 2 (no replay)", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("with an Idempotency-Key: %v", err)
			}
			if got := readAll(t, res); got != "connection 2 request 1" {
				t.Errorf("replayed request answered by %q, want connection 2 request 1", got)
			}
			if n := up.requests.Load(); n != 3 {
				t.Errorf("the upstream received %d requests, want 3 (one replay)", n)
			}
		})
	}
}

func TestTransportConnectionClose(t *testing.T) {
	up := newRawUpstream(t, func(w *bufio.Writer, _ *http.Request, _ int64) bool {
		io.WriteString(w, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
		return true // it says close; the client must not reuse it
	})
	tp := newTestTransport()
	defer tp.CloseIdleConnections()
	for range 3 {
		res, err := post(t, tp, context.Background(), up.URL())
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, res)
	}
	if n := up.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3: Connection: close was not honoured", n)
	}
}

// TestTransportInformationalAndChunked: a 103 before the answer is
// skipped; a chunked answer is read whole, and its connection kept.
func TestTransportInformationalAndChunked(t *testing.T) {
	up := newRawUpstream(t, func(w *bufio.Writer, _ *http.Request, _ int64) bool {
		io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
		io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"+
			"6\r\ndata: \r\n3\r\nhi\n\r\n0\r\n\r\n")
		return true
	})
	tp := newTestTransport()
	defer tp.CloseIdleConnections()
	for range 2 {
		res, err := post(t, tp, context.Background(), up.URL())
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if got := readAll(t, res); got != "data: hi\n" {
			t.Errorf("body %q", got)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestTransportCancel: a request's context ends a wait for an answer and a
// body being read; the connection is not reused.
func TestTransportCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	got := make(chan struct{}, 2)
	up := newRawUpstream(t, func(w *bufio.Writer, req *http.Request, _ int64) bool {
		if req.URL.Query().Get("body") != "" {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
			w.Flush()
		}
		got <- struct{}{}
		<-release
		return false
	})
	tp := newTestTransport()
	defer tp.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	if _, err := post(t, tp, ctx, up.URL()); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting for an answer: %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	res, err := post(t, tp, ctx, up.URL()+"/?body=1")
	if err == nil {
		buf := make([]byte, 5)
		_, err = io.ReadFull(res.Body, buf)
		if err == nil {
			cancel()
			_, err = io.ReadAll(res.Body)
		}
		res.Body.Close()
	}
	if err == nil {
		t.Error("reading a body after the context ended: no error")
	}
	cancel()
	tp.mu.Lock()
	pooled := len(tp.idle)
	tp.mu.Unlock()
	if pooled != 0 {
		t.Errorf("%d connections pooled after cancelled requests", pooled)
	}
}

// TestTransportClosesStale: connections idle for maxIdleTime are closed,
// when they are asked for and by the pool's timer.
func TestTransportClosesStale(t *testing.T) {
	up := newRawUpstream(t, func(w *bufio.Writer, _ *http.Request, _ int64) bool { ok(w, "ok"); return true })
	tp := newTestTransport()
	defer tp.CloseIdleConnections()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	tp.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	res, err := post(t, tp, context.Background(), up.URL())
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	advance(tp.maxIdleTime)
	res, err = post(t, tp, context.Background(), up.URL())
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	if n := up.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: a stale one was reused", n)
	}
	advance(tp.maxIdleTime)
	tp.closeStale()
	tp.mu.Lock()
	pooled := len(tp.idle)
	tp.mu.Unlock()
	if pooled != 0 {
		t.Errorf("%d addresses still pooled after closeStale", pooled)
	}
}
