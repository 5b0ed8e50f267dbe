package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// transport sends requests upstream. The common request, a chat
// completion of a few KiB to an http:// upstream, goes over HTTP/1.1 on
// the caller's goroutine: the request is written and the answer read by
// the goroutine that serves the client, with no hand-off to the
// connection's reader and writer goroutines that http.Transport keeps.
// Those hand-offs wake threads, and on small virtual machines thread
// wake-ups are most of what a proxy costs (docs/router.md, Speed).
// Everything else (https, bodies that are streamed or large, protocol
// upgrades) goes through http.Transport.
type transport struct {
	std  *http.Transport
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	maxIdle int
	// maxIdleTime bounds how long a connection waits in the pool: an
	// upstream closes idle connections after its own keep-alive timeout
	// (uvicorn's, under vLLM, is 5s), and a request written to one it
	// has closed is lost.
	maxIdleTime time.Duration
	now         func() time.Time

	mu    sync.Mutex
	idle  map[string][]*conn1 // oldest first
	prune *time.Timer         // armed while the pool holds connections
}

var _ http.RoundTripper = (*transport)(nil)

// conn1 is an HTTP/1.1 connection to an upstream, used by one request at a
// time.
type conn1 struct {
	net.Conn
	addr   string
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

func newTransport(std *http.Transport, maxIdle int) *transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &transport{std: std, dial: d.DialContext, maxIdle: maxIdle, maxIdleTime: 2 * time.Second, now: time.Now, idle: map[string][]*conn1{}}
}

// CloseIdleConnections closes the pooled connections of both paths.
func (t *transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*conn1{}
	if t.prune != nil {
		t.prune.Stop()
		t.prune = nil
	}
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			_ = c.Close()
		}
	}
	t.std.CloseIdleConnections()
}

// direct reports whether a request takes the caller's-goroutine path: plain
// HTTP, no upgrade, and a body that is absent or already in memory (the
// router's GetBody), so that writing it cannot wait on an upstream that
// answers before reading it.
func direct(req *http.Request) bool {
	return req.URL.Scheme == "http" && req.Header.Get("Upgrade") == "" &&
		(req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !direct(req) {
		return t.std.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	// 100-continue would only delay a body that is already here.
	req.Header.Del("Expect")
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(req.Context(), addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		res, err := t.exchange(req, c)
		if err == nil {
			return res, nil
		}
		_ = c.Close()
		// A kept connection the upstream closed as the request was
		// being written did not take it: send it once more, on a new
		// connection. One that took the request and closed without a
		// word may have acted on it (a chat completion is not
		// idempotent: it costs, and may call tools), so it is sent
		// again only when the client said it may be (an idempotent
		// method or an Idempotency-Key), as net/http does.
		if reused && attempt == 0 && req.Context().Err() == nil &&
			(errors.Is(err, errNotSent) || (errors.Is(err, errNoAnswer) && replayable(req))) && rewind(req) {
			continue
		}
		return nil, err
	}
}

var (
	// errNotSent says a connection closed before the request was all
	// written: the upstream cannot have acted on it.
	errNotSent = errors.New("the upstream closed the connection before the request was sent")
	// errNoAnswer says a connection closed after the request was
	// written, before any byte of an answer.
	errNoAnswer = errors.New("the upstream closed the connection without answering")
)

// replayable reports a request that may be sent twice: an idempotent
// method, or one that carries an idempotency key.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func (t *transport) exchange(req *http.Request, c *conn1) (*http.Response, error) {
	ctx := req.Context()
	// The request's context ends a blocked read or write through the
	// connection's deadline.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	err := req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		if closedByPeer(err) {
			err = errNotSent
		}
		return fail(err)
	}
	for {
		if _, err := c.br.Peek(1); err != nil {
			if closedByPeer(err) {
				err = errNoAnswer
			}
			return fail(err)
		}
		res, err := http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		// Informational answers (103 Early Hints) come before the
		// answer; a proxy of the OpenAI API has no use for them.
		if res.StatusCode >= 100 && res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		res.Body = &body1{ReadCloser: res.Body, t: t, c: c, stop: stop, keep: !res.Close && !req.Close}
		return res, nil
	}
}

// closedByPeer reports a connection the upstream closed or reset.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// rewind gives the request its body again for a second attempt.
func rewind(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.GetBody == nil {
		return false
	}
	b, err := req.GetBody()
	if err != nil {
		return false
	}
	req.Body = b
	return true
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// get returns an idle connection to addr (true), or a new one.
func (t *transport) get(ctx context.Context, addr string) (*conn1, bool, error) {
	now := t.now()
	for {
		t.mu.Lock()
		var stale []*conn1
		var c *conn1
		// The newest first: it is the likeliest to be open still. When
		// it has been idle too long, so have all the older ones.
		if cs := t.idle[addr]; len(cs) > 0 {
			last := cs[len(cs)-1]
			if now.Sub(last.idleAt) < t.maxIdleTime {
				c = last
				t.idle[addr] = cs[:len(cs)-1]
			} else {
				stale = cs
				delete(t.idle, addr)
			}
		}
		t.mu.Unlock()
		for _, s := range stale {
			_ = s.Close()
		}
		if c == nil {
			break
		}
		// One the upstream has closed meanwhile is dropped here,
		// before a request is written to it.
		if usable(c.Conn) {
			return c, true, nil
		}
		_ = c.Close()
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &conn1{Conn: nc, addr: addr, br: bufio.NewReaderSize(nc, 8<<10), bw: bufio.NewWriterSize(nc, 8<<10)}, false, nil
}

// put returns a connection to the pool, or closes it when the pool is
// full.
func (t *transport) put(c *conn1) {
	c.idleAt = t.now()
	t.mu.Lock()
	if cs := t.idle[c.addr]; len(cs) < t.maxIdle {
		t.idle[c.addr] = append(cs, c)
		c = nil
		if t.prune == nil {
			t.prune = time.AfterFunc(t.maxIdleTime, t.closeStale)
		}
	}
	t.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// closeStale closes the connections idle for maxIdleTime, so that a
// router without traffic holds no connections its upstreams have closed.
func (t *transport) closeStale() {
	now := t.now()
	var stale []*conn1
	t.mu.Lock()
	left := 0
	for addr, cs := range t.idle {
		n := 0
		for n < len(cs) && now.Sub(cs[n].idleAt) >= t.maxIdleTime {
			n++
		}
		stale = append(stale, cs[:n]...)
		if n == len(cs) {
			delete(t.idle, addr)
			continue
		}
		t.idle[addr] = slices.Delete(cs, 0, n)
		left += len(cs) - n
	}
	if left > 0 {
		t.prune.Reset(t.maxIdleTime)
	} else {
		t.prune = nil
	}
	t.mu.Unlock()
	for _, c := range stale {
		_ = c.Close()
	}
}

// body1 is an answer's body: read to its end, it gives its connection
// back to the pool; closed early or broken, it closes the connection.
type body1 struct {
	io.ReadCloser
	t    *transport
	c    *conn1
	stop func() bool
	keep bool
	done bool
}

func (b *body1) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.finish(errors.Is(err, io.EOF))
	}
	return n, err
}

func (b *body1) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish ends the exchange: the connection goes back to the pool when the
// answer was read to its end, the upstream keeps it open and the context
// did not set its deadline.
func (b *body1) finish(complete bool) {
	b.done = true
	if b.stop() && complete && b.keep && b.c.br.Buffered() == 0 {
		b.t.put(b.c)
		return
	}
	_ = b.c.Close()
}
