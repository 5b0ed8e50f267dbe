package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors of the routing state's changes; the admin API maps them to 409 and
// 400.
var (
	// ErrNoCanary says a weight above 0 was asked for while there is no
	// canary upstream to send it to.
	ErrNoCanary = errors.New("there is no canary upstream")
	// ErrInvalid says a change was malformed (a weight out of range, an
	// upstream without a URL).
	ErrInvalid = errors.New("invalid")
)

// invalidError is a malformed change; it is ErrInvalid.
type invalidError struct{ err error }

func (e invalidError) Error() string        { return e.err.Error() }
func (e invalidError) Unwrap() error        { return e.err }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, a ...any) error { return invalidError{fmt.Errorf(format, a...)} }

// VariantHeader is the response header that names the variant (stable,
// canary or fallback) that answered.
const VariantHeader = "X-Airlock-Variant"

// smallBody is the largest request body the router reads whole even when
// it has no need to look into it (see ServeHTTP).
const smallBody = 64 << 10

// inspectLimit bounds how much of a whole (not streamed) answer, or of one
// event of a stream, is kept to be read; a longer one passes through
// unread and its tokens are not counted.
const inspectLimit = 4 << 20

// Router is the canary router's proxy, an http.Handler for the OpenAI API
// under /v1/. Admin returns its admin API. It is safe for concurrent use;
// changes of its state (SetWeight, SetKillSwitch, SetUpstreams) decide the
// next request that starts after they return.
type Router struct {
	cfg      Config
	log      *slog.Logger
	errorLog *log.Logger
	now      func() time.Time
	reg      prometheus.Registerer
	metrics  *metrics

	transport *transport
	bufs      bufferPool
	exchanges sync.Pool

	state atomic.Pointer[state]
	mu    sync.Mutex // serialises changes of state

	warned limiter // upstream failures are logged once a second at most

	inFlight              atomic.Int64
	maxInFlight, lowLimit int64
	priorityKey           string // canonical header keys
	stickyKey             string
	lowValues             []string
	patterns              [][]byte
	maxPattern            int
	finishReasons         []string
}

var _ http.Handler = (*Router)(nil)

// state is what decides a request's route. It is never changed once
// published: a change builds a new one.
type state struct {
	weight                   int
	kill                     bool
	reason                   string
	stable, canary, fallback *upstream
	changed                  time.Time
}

// upstream is one configured server with its proxy and metric series.
type upstream struct {
	variant string
	conf    Upstream
	proxy   *httputil.ReverseProxy
	m       *variantMetrics
	price   Price
	header  []string // VariantHeader's value
	salt    string   // sticky hashing: a new canary moves a new set of users
}

// Option configures New.
type Option func(*Router)

// WithLogger logs state changes and upstream failures to l; by default the
// router logs nothing.
func WithLogger(l *slog.Logger) Option { return func(r *Router) { r.log = l } }

// WithRegisterer registers the router's metrics (airlock_router_*) on reg;
// by default they are kept but not exported.
func WithRegisterer(reg prometheus.Registerer) Option { return func(r *Router) { r.reg = reg } }

// WithClock sets the clock that stamps state changes (the default is
// time.Now). Latencies are measured with the monotonic clock regardless.
func WithClock(now func() time.Time) Option { return func(r *Router) { r.now = now } }

// New returns a router in the state cfg describes. Zero values of cfg are
// the documented defaults, as in router.yaml.
func New(cfg Config, opts ...Option) (*Router, error) {
	cfg.defaults()
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	rt := &Router{cfg: cfg, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(rt)
	}
	rt.errorLog = slog.NewLogLogger(rt.log.Handler(), slog.LevelDebug)
	rt.maxInFlight = int64(cfg.Shed.MaxInFlight)
	rt.lowLimit = int64(math.Ceil(cfg.Shed.LowShare * float64(cfg.Shed.MaxInFlight)))
	rt.priorityKey = http.CanonicalHeaderKey(cfg.Shed.PriorityHeader)
	rt.lowValues = cfg.Shed.LowValues
	if cfg.Sticky.Header != "" {
		rt.stickyKey = http.CanonicalHeaderKey(cfg.Sticky.Header)
	}
	for _, p := range cfg.Safety.RefusalPatterns {
		rt.patterns = append(rt.patterns, []byte(p))
		rt.maxPattern = max(rt.maxPattern, len(p))
	}
	rt.finishReasons = cfg.Safety.FinishReasons
	p := cfg.Prices
	rt.metrics = newMetrics(rt.reg, func() float64 { return float64(rt.inFlight.Load()) }, p.Stable != nil || p.Canary != nil || p.Fallback != nil)
	std := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   max(cfg.Shed.MaxInFlight, 64),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The router reads answers as they pass; upstreams are asked
		// for them uncompressed.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	rt.transport = newTransport(std, max(cfg.Shed.MaxInFlight, 64))
	rt.exchanges.New = func() any { return new(exchange) }

	s := &state{weight: cfg.Weight, kill: cfg.KillSwitch.On, reason: cfg.KillSwitch.Reason, changed: rt.now().UTC()}
	var err error
	if s.stable, err = rt.upstream(Stable, cfg.Stable); err != nil {
		return nil, err
	}
	if cfg.Canary != nil {
		if s.canary, err = rt.upstream(Canary, *cfg.Canary); err != nil {
			return nil, err
		}
	}
	if cfg.KillSwitch.Fallback != nil {
		if s.fallback, err = rt.upstream(Fallback, *cfg.KillSwitch.Fallback); err != nil {
			return nil, err
		}
	}
	rt.publish(s)
	return rt, nil
}

// Close closes the idle connections to upstreams.
func (rt *Router) Close() { rt.transport.CloseIdleConnections() }

// upstream prepares a variant's upstream: its proxy and its metric series
// (made now, so they read 0 before the first request).
func (rt *Router) upstream(variant string, u Upstream) (*upstream, error) {
	if errs := checkUpstream(&u); len(errs) > 0 {
		return nil, invalidf("%s: %w", variant, errors.Join(errs...))
	}
	target, err := parseUpstreamURL(u.URL)
	if err != nil {
		return nil, invalidf("%s: url: %w", variant, err)
	}
	var price *Price
	switch variant {
	case Stable:
		price = rt.cfg.Prices.Stable
	case Canary:
		price = rt.cfg.Prices.Canary
	case Fallback:
		price = rt.cfg.Prices.Fallback
	}
	up := &upstream{variant: variant, conf: u, m: rt.metrics.variant(variant, u.Digest, price), header: []string{variant}, salt: u.Digest}
	if price != nil {
		up.price = *price
	}
	if up.salt == "" {
		up.salt = u.URL
	}
	up.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Del("Accept-Encoding")
			if pr.In.GetBody != nil {
				// A body read into memory (still unread): ReverseProxy's
				// wrapper would hide that from the transport, which
				// would then write the headers and the body apart.
				// GetBody lets it send the request again on a new
				// connection when a kept one turns out closed.
				pr.Out.Body = pr.In.Body
				pr.Out.GetBody = pr.In.GetBody
			}
		},
		Transport:    rt.transport,
		BufferPool:   &rt.bufs,
		ErrorHandler: rt.proxyError,
		ErrorLog:     rt.errorLog,
	}
	return up, nil
}

func (rt *Router) publish(s *state) {
	rt.state.Store(s)
	rt.metrics.setState(s.weight, s.kill)
}

// ServeHTTP proxies one request of the OpenAI API to the variant chosen
// for it: the kill-switch's target while it is on, else by the sticky key
// when there is one, else at random by the canary's weight.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		writeError(w, http.StatusNotFound, "not_found", "the router proxies the OpenAI API under /v1/ only")
		return
	}
	low := rt.low(r)
	if n := rt.inFlight.Add(1); n > rt.maxInFlight || low && n > rt.lowLimit {
		rt.inFlight.Add(-1)
		rt.shed(w, low)
		return
	}
	defer rt.inFlight.Add(-1)
	start := time.Now()
	s := rt.state.Load()

	var body []byte
	var key string
	if rt.stickyKey != "" {
		if v := r.Header[rt.stickyKey]; len(v) > 0 {
			key = v[0]
		}
	}
	if key == "" && rt.cfg.Sticky.UserField && r.Method == http.MethodPost && s.split() {
		var ok bool
		if body, ok = readBody(w, r); !ok {
			return
		}
		key = userField(body)
	}
	up := s.choose(key)
	if up.conf.Model != "" && r.Method == http.MethodPost {
		if body == nil {
			var ok bool
			if body, ok = readBody(w, r); !ok {
				return
			}
		}
		var err error
		if body, err = rewriteModel(body, up.conf.Model); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
			return
		}
	}
	if body == nil && r.ContentLength > 0 && r.ContentLength <= smallBody {
		// A small body (a chat request) has usually arrived with the
		// headers: reading it copies it from the server's buffer, and
		// lets the transport send it with the headers in one write
		// instead of two.
		var ok bool
		if body, ok = readBody(w, r); !ok {
			return
		}
	}
	switch {
	case len(body) > 0:
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		r.TransferEncoding = nil
	case body != nil:
		r.Body, r.ContentLength, r.TransferEncoding = http.NoBody, 0, nil
	case r.ContentLength > 0:
		r.Body = &sizedBody{ReadCloser: r.Body, left: r.ContentLength}
	}

	x := rt.exchanges.Get().(*exchange)
	x.begin(rt, w, r, up, start)
	ctx, cancel := context.WithTimeout(r.Context(), rt.cfg.Timeout.Duration)
	defer cancel()
	defer func() {
		// The proxy aborts a response it cannot finish (the upstream
		// cut it or timed out, or the client left) by panicking with
		// http.ErrAbortHandler; count it, then let net/http drop the
		// connection.
		if p := recover(); p != nil {
			x.aborted = true
			rt.record(x, r.Context(), ctx)
			rt.release(x)
			panic(p)
		}
	}()
	up.proxy.ServeHTTP(x, r.WithContext(ctx))
	rt.record(x, r.Context(), ctx)
	rt.release(x)
}

// split reports whether a request's route depends on a draw: a canary
// holds part of the traffic and the kill-switch is off.
func (s *state) split() bool {
	return !s.kill && s.canary != nil && s.weight > 0 && s.weight < 100
}

// choose picks a request's upstream. A sticky key hashes to a bucket in
// [0, 100) that is on the canary while it is below the weight, so raising
// the weight only adds users to the canary.
func (s *state) choose(key string) *upstream {
	switch {
	case s.kill:
		if s.fallback != nil {
			return s.fallback
		}
		return s.stable
	case s.canary == nil || s.weight <= 0:
		return s.stable
	case s.weight >= 100:
		return s.canary
	case key != "":
		if bucket(s.canary.salt, key) < s.weight {
			return s.canary
		}
		return s.stable
	case rand.IntN(100) < s.weight:
		return s.canary
	}
	return s.stable
}

// bucket hashes salt and key (FNV-1a, then a mix of the bits) into
// [0, 100).
func bucket(salt, key string) int {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint64(salt[i])) * prime
	}
	h = (h ^ 0xff) * prime
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return int(h % 100)
}

// low reports whether a request is of low priority.
func (rt *Router) low(r *http.Request) bool {
	v := r.Header[rt.priorityKey]
	if len(v) == 0 {
		return false
	}
	for _, l := range rt.lowValues {
		if strings.EqualFold(strings.TrimSpace(v[0]), l) {
			return true
		}
	}
	return false
}

// shed refuses a request because too many are in flight.
func (rt *Router) shed(w http.ResponseWriter, low bool) {
	msg := "the router has too many requests in flight; retry later"
	if low {
		rt.metrics.shedLow.Inc()
		msg = "the router sheds low-priority requests while it is busy; retry later"
	} else {
		rt.metrics.shedNormal.Inc()
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusTooManyRequests, "overloaded", msg)
}

// sizedBody ends a request body of known length itself. The transport
// that sends it upstream reads once more after the last byte, to see the
// end; net/http's server closes a request body when the response starts,
// and an upstream that answers (a stream starts) before that last read
// would fail it, and the transport would then close the upstream
// connection under the stream (golang/go#40747).
type sizedBody struct {
	io.ReadCloser
	left int64
}

func (b *sizedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left <= 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// readBody reads a request body the router must look into, up to
// MaxBodyBytes; on failure it has answered the client.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("the request body is larger than the router's limit of %d bytes", MaxBodyBytes))
		return nil, false
	}
	if r.ContentLength > 0 {
		// Exactly the declared length: nothing past it is read.
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "reading the request body: "+err.Error())
			return nil, false
		}
		return buf, true
	}
	buf := bytes.NewBuffer(make([]byte, 0, 512))
	n, err := buf.ReadFrom(io.LimitReader(r.Body, MaxBodyBytes+1))
	switch {
	case n > MaxBodyBytes:
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("the request body is larger than the router's limit of %d bytes", MaxBodyBytes))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "reading the request body: "+err.Error())
		return nil, false
	}
	return buf.Bytes(), true
}

// userField is the OpenAI request's "user", or "" when there is none (a
// body that is not JSON is the upstream's to refuse).
func userField(body []byte) string {
	var v struct {
		User string `json:"user"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.User
}

// rewriteModel sets the request's "model" field. The other fields are
// kept as they are (their order may change).
func rewriteModel(body []byte, model string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, errors.New("the request body is not a JSON object")
	}
	b, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	m["model"] = b
	return json.Marshal(m)
}

// proxyError answers a request the upstream did not: 504 when the timeout
// ran out, else 502.
func (rt *Router) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	variant := ""
	if x, ok := w.(*exchange); ok {
		x.failed = true
		variant = x.up.variant
	}
	if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		if n, ok := rt.warned.allow(); ok {
			rt.log.Warn("upstream timed out", "variant", variant, "path", r.URL.Path, "timeout", rt.cfg.Timeout.Duration, "unlogged_failures", n)
		}
		writeError(w, http.StatusGatewayTimeout, "upstream_timeout",
			fmt.Sprintf("the %s upstream did not answer within %s", variant, rt.cfg.Timeout.Duration))
		return
	}
	if r.Context().Err() == nil { // not a client that left
		if n, ok := rt.warned.allow(); ok {
			rt.log.Warn("upstream unreachable", "variant", variant, "path", r.URL.Path, "error", err, "unlogged_failures", n)
		}
	}
	msg := fmt.Sprintf("the %s upstream could not be reached", variant)
	if errors.Is(err, errNoAnswer) {
		msg = fmt.Sprintf("the %s upstream closed the connection without answering (not retried: the request may have been acted on)", variant)
	}
	writeError(w, http.StatusBadGateway, "upstream_error", msg)
}

// record counts a finished exchange in its variant's series.
func (rt *Router) record(x *exchange, client, upstreamCtx context.Context) {
	m := x.up.m
	d := time.Since(x.start)
	failed := x.failed || x.aborted
	// A client that left is not the upstream's failure.
	canceled := failed && (x.writeErr || client.Err() != nil)
	timedOut := failed && !canceled && errors.Is(upstreamCtx.Err(), context.DeadlineExceeded)
	status := x.status
	if status == 0 {
		status = http.StatusOK
	}
	c := class(status)
	if canceled {
		c = 4
	} else if timedOut && x.status == 0 {
		c = 5
	}
	m.requests[c].Inc()
	m.duration.Observe(d.Seconds())
	if canceled {
		return
	}
	if failed || status >= 500 {
		m.errors.Inc()
		return
	}
	if status/100 != 2 {
		return
	}
	switch x.kind {
	case kindSSE:
		if len(x.line) > 0 && !x.lineOver { // a last event without its newline
			x.event(x.line)
		}
		if x.ttft > 0 {
			m.ttft.Observe(x.ttft.Seconds())
		}
	case kindJSON:
		// Send the answer before reading it.
		if x.flusher != nil {
			x.flusher.Flush()
		}
		if !x.bodyOver {
			x.decode(x.body, false)
		}
		m.ttft.Observe(d.Seconds())
	default:
		return
	}
	if x.blocked {
		m.safety.Inc()
	}
	if x.usage {
		m.prompt.Add(float64(x.promptTokens))
		m.completion.Add(float64(x.completionTokens))
		if m.cost != nil {
			p := x.up.price
			m.cost.Add(float64(x.promptTokens)/1000*p.PromptPer1K + float64(x.completionTokens)/1000*p.CompletionPer1K)
		}
	}
}

// apiError is the OpenAI error body, {"error":{"message","type","code"}},
// which the proxy and the admin API both answer with.
type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e apiError
	e.Error.Message, e.Error.Code = msg, code
	e.Error.Type = code
	if code == "" {
		e.Error.Type = "error"
	}
	b, _ := json.Marshal(e) // a struct of strings always encodes
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Del("Content-Encoding")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a client that left is told nothing
}

// limiter lets one event a second through, and counts the others, so that
// an upstream down at 2,000 requests a second does not flood the log.
type limiter struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

// allow reports whether to log now, and how many events were not logged
// since the last one that was.
func (l *limiter) allow() (int, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) < time.Second {
		l.dropped++
		return 0, false
	}
	n := l.dropped
	l.last, l.dropped = now, 0
	return n, true
}

// bufferPool lends the proxies their copy buffers: a stack, which (unlike
// a sync.Pool of slices) takes a buffer back without allocating.
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
}

// maxPooledBuffers bounds the buffers kept: 32 KiB each, 8 MiB in all.
const maxPooledBuffers = 256

func (b *bufferPool) Get() []byte {
	b.mu.Lock()
	if n := len(b.free); n > 0 {
		buf := b.free[n-1]
		b.free = b.free[:n-1]
		b.mu.Unlock()
		return buf
	}
	b.mu.Unlock()
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) {
	b.mu.Lock()
	if len(b.free) < maxPooledBuffers {
		b.free = append(b.free, buf)
	}
	b.mu.Unlock()
}
