package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
)

// maxBody bounds a request body; a longer one is a 413.
const maxBody = 16 << 20

// Server is the simulated model server, an http.Handler. It starts no
// goroutines of its own: every request's work ends when its handler
// returns, which is at the latest when the client goes away.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	scripts []script
	deflt   []string // the default answer's tokens; nil: filler
	refusal []string
	model   string // the model name as a JSON string
	now     func() time.Time
	ready   time.Time
	apiKey  string
	slots   chan struct{}
	ids     atomic.Int64

	active, waiting atomic.Int64

	mu  sync.Mutex
	rng *rand.Rand

	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
}

var _ http.Handler = (*Server)(nil)

// script is one Answer, prepared: its regular expression compiled and
// its text split into tokens that are already escaped for JSON.
type script struct {
	Answer
	re     *regexp.Regexp
	tokens []string
	plays  atomic.Int64 // matches so far, for FaultTimes
}

// Option configures New.
type Option func(*Server)

// WithAPIKey makes the server require "Authorization: Bearer key", so an
// engine's handling of credentials can be tested.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithClock sets the clock that readiness (StartupDelay, counted from
// New) and the "created" field of responses read, so tests can make a
// server ready, and responses byte-for-byte repeatable, without waiting.
// Token latencies always use real timers. The default is time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithRegisterer exports airlock_sim_requests_total{outcome} and
// airlock_sim_tokens_total{type} on reg; without it the server exports
// nothing.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Server) {
		s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_sim_requests_total",
			Help: "Generation requests the simulator finished, by outcome (ok, refused, error, fault, invalid, canceled)."}, []string{"outcome"})
		s.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_sim_tokens_total",
			Help: "Tokens the simulator read and generated, by type (input, output)."}, []string{"type"})
		reg.MustRegister(s.requests, s.tokens)
	}
}

// New returns a server playing cfg. cfg must be valid (Validate; Load and
// Parse validate): New panics on a regular expression that does not
// compile.
func New(cfg Config, opts ...Option) *Server {
	s := &Server{cfg: cfg, now: time.Now, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x73696d))}
	for _, o := range opts {
		o(s)
	}
	s.ready = s.now().Add(cfg.StartupDelay)
	s.model = quote(cfg.Model)
	s.scripts = make([]script, len(cfg.Answers))
	for i, a := range cfg.Answers {
		sc := &s.scripts[i]
		sc.Answer = a
		sc.tokens = tokenize(a.Text)
		if a.Regex != "" {
			sc.re = regexp.MustCompile(a.Regex)
		}
	}
	if cfg.Default != "" {
		s.deflt = tokenize(cfg.Default)
	}
	s.refusal = tokenize(cmp(cfg.Refusal, "I can't help with that."))
	if cfg.MaxConcurrency > 0 {
		s.slots = make(chan struct{}, cfg.MaxConcurrency)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, true) })
	s.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, false) })
	return s
}

// Stats is what a server is doing at one moment.
type Stats struct {
	// Active is the number of requests being generated (holding one of
	// MaxConcurrency's slots when it is set).
	Active int
	// Waiting is the number of requests waiting for a slot.
	Waiting int
}

// Stats reports the requests in flight, so a test can wait for a state
// (a request queued behind MaxConcurrency) instead of sleeping.
func (s *Server) Stats() Stats {
	return Stats{Active: int(s.active.Load()), Waiting: int(s.waiting.Load())}
}

// ServeHTTP checks the bearer token, if WithAPIKey set one, and serves
// the OpenAI routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.apiKey != "" && r.Header.Get("Authorization") != "Bearer "+s.apiKey {
		apiError(w, http.StatusUnauthorized, "invalid_api_key", "missing or wrong bearer token", 0)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	if s.now().Before(s.ready) {
		apiError(w, http.StatusServiceUnavailable, "loading", "the simulated model is still loading", 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"`+s.model+`","object":"model","owned_by":"airlock-sim"}]}`)
}

// apiError writes the OpenAI error shape, {"error":{"message","type","code"}}.
func apiError(w http.ResponseWriter, status int, code, msg string, retryAfter time.Duration) {
	if retryAfter > 0 {
		// Retry-After is whole seconds (RFC 9110 §10.2.3); round up so a
		// client that honours it is never early.
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	c := quote(code)
	_, _ = io.WriteString(w, `{"error":{"message":"`+quote(msg)+`","type":"`+c+`","code":"`+c+`"}}`+"\n") // a client that left is not the simulator's problem
}

// request is the part of an OpenAI request the simulator reads.
type request struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS bool `json:"ignore_eos"`
}

// text is a message's content: a string, or a list of parts whose text
// is joined.
func text(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err == nil
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), true
}

// words is the simulator's prompt token count: the number of
// whitespace-separated words (as strings.Fields splits them), counted
// without allocating.
func words(s string) int {
	n, in := 0, false
	for _, r := range s {
		word := !unicode.IsSpace(r)
		if word && !in {
			n++
		}
		in = word
	}
	return n
}

func (s *Server) count(outcome string) {
	if s.requests != nil {
		s.requests.WithLabelValues(outcome).Inc()
	}
}

func (s *Server) invalid(w http.ResponseWriter, msg string) {
	s.count("invalid")
	apiError(w, http.StatusBadRequest, "invalid_request_error", msg, 0)
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request, chat bool) {
	if s.now().Before(s.ready) {
		apiError(w, http.StatusServiceUnavailable, "loading", "the simulated model is still loading", 0)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	switch {
	case err != nil:
		s.invalid(w, "reading the body: "+err.Error())
		return
	case len(body) > maxBody:
		s.count("invalid")
		apiError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "the body is larger than 16 MiB", 0)
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		s.invalid(w, "the body is not a JSON request: "+err.Error())
		return
	}
	var prompts []string
	promptTokens := 0
	if chat {
		if len(req.Messages) == 0 {
			s.invalid(w, "messages: at least one message is required")
			return
		}
		last := ""
		for i, m := range req.Messages {
			t, ok := text(m.Content)
			if !ok {
				s.invalid(w, "messages["+strconv.Itoa(i)+"].content: want a string or a list of text parts")
				return
			}
			promptTokens += words(t)
			if m.Role == "user" {
				last = t
			}
		}
		prompts = []string{last}
	} else {
		var one string
		if err := json.Unmarshal(req.Prompt, &one); err == nil {
			prompts = []string{one}
		} else if err := json.Unmarshal(req.Prompt, &prompts); err != nil || len(prompts) == 0 {
			s.invalid(w, "prompt: want a string or a non-empty list of strings")
			return
		}
		if len(prompts) > 1 && req.Stream {
			s.invalid(w, "prompt: a list of prompts cannot be streamed")
			return
		}
		for _, p := range prompts {
			promptTokens += words(p)
		}
	}
	maxTokens := -1 // no cap
	if req.MaxCompletionTokens != nil {
		maxTokens = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	if maxTokens < -1 || (maxTokens == -1 && (req.MaxCompletionTokens != nil || req.MaxTokens != nil)) {
		s.invalid(w, "max_tokens: cannot be negative")
		return
	}

	if s.slots != nil {
		s.waiting.Add(1)
		select {
		case s.slots <- struct{}{}:
			s.waiting.Add(-1)
			defer func() { <-s.slots }()
		case <-r.Context().Done():
			s.waiting.Add(-1)
			s.count("canceled")
			return
		}
	}
	s.active.Add(1)
	defer s.active.Add(-1)
	arrived := time.Now() // after any wait for a slot: "prefill" starts now
	if s.tokens != nil {
		s.tokens.WithLabelValues("input").Add(float64(promptTokens))
	}

	// Decide each prompt's play. A batch is one HTTP request, so any
	// prompt's HTTP error or closed connection is the whole request's.
	plays := make([]play, len(prompts))
	for i, p := range prompts {
		plays[i] = s.choose(p, maxTokens, req.IgnoreEOS)
	}
	for _, pl := range plays {
		switch {
		case pl.status != 0:
			if pl.fault != "" {
				s.count("fault")
			} else {
				s.count("error")
			}
			apiError(w, pl.status, "simulated_error", "simulated HTTP "+strconv.Itoa(pl.status)+" (airlock-sim)", pl.retryAfter)
			return
		case pl.fault == "close":
			s.count("fault")
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler) // HTTP/2: the stream is reset
		}
	}
	rs := response{chat: chat, id: s.ids.Add(1), created: s.now().Unix(), promptTokens: promptTokens}
	if req.Stream {
		s.stream(w, r.Context(), arrived, rs, plays[0], req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		return
	}
	s.whole(w, r.Context(), arrived, rs, plays)
}

// play is what the simulator does with one prompt.
type play struct {
	tokens     []string // JSON-escaped
	finish     string
	refused    bool
	status     int
	retryAfter time.Duration
	fault      string
}

func (s *Server) choose(prompt string, maxTokens int, ignoreEOS bool) play {
	var pl play
	tokens := s.deflt
	for i := range s.scripts {
		sc := &s.scripts[i]
		if sc.re == nil && !strings.Contains(prompt, sc.Match) || sc.re != nil && !sc.re.MatchString(prompt) {
			continue
		}
		tokens = sc.tokens // never nil: an answer without text says nothing
		pl.refused = sc.Refuse
		if sc.Fault != "" && (sc.FaultTimes == 0 || sc.plays.Add(1) <= int64(sc.FaultTimes)) {
			pl.fault = sc.Fault
			pl.retryAfter = sc.RetryAfter
		}
		break
	}
	s.mu.Lock()
	errDraw, refuseDraw := s.rng.Float64(), s.rng.Float64()
	s.mu.Unlock()
	switch pl.fault {
	case "http_429":
		pl.status = http.StatusTooManyRequests
	case "http_500":
		pl.status = http.StatusInternalServerError
	case "http_400":
		pl.status = http.StatusBadRequest
	}
	if pl.fault == "" && errDraw < s.cfg.ErrorRate {
		pl.status = cmp(s.cfg.ErrorStatus, http.StatusInternalServerError)
	}
	if refuseDraw < s.cfg.RefusalRate {
		pl.refused = true
	}
	if pl.refused {
		tokens = s.refusal
	}
	pl.finish = "stop"
	if tokens == nil { // no answer matched and no default: text that goes on to the cap
		tokens = filler(16)
		if maxTokens >= 0 {
			tokens = filler(maxTokens)
			pl.finish = "length"
		}
	}
	if maxTokens >= 0 && len(tokens) > maxTokens {
		tokens = tokens[:maxTokens:maxTokens]
		pl.finish = "length"
	}
	if ignoreEOS && maxTokens > len(tokens) {
		pad := filler(maxTokens - len(tokens))
		if len(tokens) > 0 {
			pad[0] = " lorem"
		}
		tokens = append(tokens[:len(tokens):len(tokens)], pad...)
		pl.finish = "length"
	}
	pl.tokens = tokens
	return pl
}

// cmp returns a unless it is the zero value, then b.
func cmp[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// quote escapes s for the inside of a JSON string.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return string(b.Bytes()[1 : b.Len()-2])
}

// tokenize splits text into the simulator's tokens, escaped for JSON:
// words, each after the first with its leading space.
func tokenize(s string) []string {
	fields := strings.Fields(s)
	out := make([]string, len(fields))
	for i, w := range fields {
		if i > 0 {
			w = " " + w
		}
		out[i] = quote(w)
	}
	return out
}

// filler is n tokens of deterministic text: "lorem lorem …".
func filler(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = " lorem"
	}
	if n > 0 {
		out[0] = "lorem"
	}
	return out
}

// draw is one delay from d.
func (s *Server) draw(d Dist) time.Duration {
	switch d.Kind {
	case "", "fixed":
		return d.Mean
	}
	s.mu.Lock()
	z := s.rng.NormFloat64()
	s.mu.Unlock()
	m, sd := float64(d.Mean), float64(d.StdDev)
	switch d.Kind {
	case "normal":
		return time.Duration(max(0, m+sd*z))
	case "lognormal":
		if m <= 0 {
			return 0
		}
		sigma2 := math.Log(1 + sd*sd/(m*m))
		mu := math.Log(m) - sigma2/2
		return time.Duration(math.Exp(mu + math.Sqrt(sigma2)*z))
	}
	return d.Mean
}

// wait waits until the deadline or until ctx ends, and reports whether
// ctx is still live. t is the request's one timer, reused per wait.
func wait(ctx context.Context, t *time.Timer, deadline time.Time) bool {
	d := time.Until(deadline)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t.Reset(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

// response is what every chunk or body of one response shares.
type response struct {
	chat         bool
	id           int64
	created      int64
	promptTokens int
}

// head appends the opening of a chunk or body, up to "choices":.
func (s *Server) head(b []byte, rs response, chunk bool) []byte {
	b = append(b, `{"id":"`...)
	if rs.chat {
		b = append(b, "chatcmpl-sim-"...)
	} else {
		b = append(b, "cmpl-sim-"...)
	}
	b = strconv.AppendInt(b, rs.id, 10)
	switch {
	case rs.chat && chunk:
		b = append(b, `","object":"chat.completion.chunk","created":`...)
	case rs.chat:
		b = append(b, `","object":"chat.completion","created":`...)
	default:
		b = append(b, `","object":"text_completion","created":`...)
	}
	b = strconv.AppendInt(b, rs.created, 10)
	b = append(b, `,"model":"`...)
	b = append(b, s.model...)
	return append(b, `","choices":`...)
}

func appendUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt+completion), 10)
	return append(b, '}')
}

// next returns the deadline of the chunk that starts at token i and
// holds n tokens: the first token after a TTFT draw, each later one
// after a PerToken draw. Deadlines count from the request's arrival, not
// from the last write, so a stream keeps its configured timing however
// long each write takes.
func (s *Server) next(prev time.Time, i, n int) time.Time {
	var d time.Duration
	for k := i; k < i+n; k++ {
		if k == 0 {
			d += s.draw(s.cfg.TTFT)
		} else {
			d += s.draw(s.cfg.PerToken)
		}
	}
	return prev.Add(d)
}

// stream answers one prompt as server-sent events in vLLM's shape: for
// chat a role chunk at once, then content chunks, a finish chunk, a
// usage chunk with "choices":[] when asked, and data: [DONE].
func (s *Server) stream(w http.ResponseWriter, ctx context.Context, arrived time.Time, rs response, pl play, usage bool) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	buf := make([]byte, 0, 512)
	send := func(b []byte) {
		_, _ = w.Write(b) // a client that left ends the loop through ctx
		if fl != nil {
			fl.Flush()
		}
	}
	chunk := func() []byte { return s.head(append(buf[:0], "data: "...), rs, true) }
	if rs.chat {
		buf = append(chunk(), `[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
		send(buf)
	} else {
		w.WriteHeader(http.StatusOK)
		if fl != nil {
			fl.Flush()
		}
	}
	switch pl.fault {
	case "hang":
		<-ctx.Done()
		s.count("fault")
		return
	case "garbage":
		s.count("fault")
		send([]byte("data: {not json\n\n"))
		return
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	per := max(1, s.cfg.TokensPerChunk)
	end := len(pl.tokens)
	if pl.fault == "cut" {
		end /= 2
	}
	sent := 0
	next := arrived
	for sent < len(pl.tokens) {
		n := min(per, len(pl.tokens)-sent)
		next = s.next(next, sent, n)
		if !wait(ctx, t, next) {
			s.count("canceled")
			return
		}
		n = min(n, end-sent)
		if n <= 0 {
			break
		}
		buf = chunk()
		if rs.chat {
			buf = append(buf, `[{"index":0,"delta":{"content":"`...)
		} else {
			buf = append(buf, `[{"index":0,"text":"`...)
		}
		for _, tok := range pl.tokens[sent : sent+n] {
			buf = append(buf, tok...)
		}
		if rs.chat {
			buf = append(buf, `"}`...) // the delta
		} else {
			buf = append(buf, '"')
		}
		buf = append(buf, `,"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
		send(buf)
		sent += n
	}
	if pl.fault == "cut" {
		s.count("fault")
		s.countTokens(sent)
		// Abort the handler: net/http drops the connection without the
		// chunked encoding's last chunk, so the client reads an
		// unexpected EOF, not a clean end.
		panic(http.ErrAbortHandler)
	}
	buf = chunk()
	if rs.chat {
		buf = append(buf, `[{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
	} else {
		buf = append(buf, `[{"index":0,"text":"","logprobs":null,"finish_reason":"`...)
	}
	buf = append(buf, pl.finish...)
	buf = append(buf, `"}]}`+"\n\n"...)
	if usage {
		buf = append(s.head(append(buf, "data: "...), rs, true), `[],`...)
		buf = append(appendUsage(buf, rs.promptTokens, sent), "}\n\n"...)
	}
	buf = append(buf, "data: [DONE]\n\n"...)
	send(buf)
	s.done(pl.refused, sent)
}

func (s *Server) done(refused bool, tokens int) {
	if refused {
		s.count("refused")
	} else {
		s.count("ok")
	}
	s.countTokens(tokens)
}

func (s *Server) countTokens(n int) {
	if s.tokens != nil {
		s.tokens.WithLabelValues("output").Add(float64(n))
	}
}

// whole answers as one JSON body, after as long as the longest prompt's
// stream would have taken.
func (s *Server) whole(w http.ResponseWriter, ctx context.Context, arrived time.Time, rs response, plays []play) {
	for _, pl := range plays {
		if pl.fault == "hang" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			<-ctx.Done()
			s.count("fault")
			return
		}
	}
	var longest time.Time
	for _, pl := range plays {
		if d := s.next(arrived, 0, len(pl.tokens)); d.After(longest) {
			longest = d
		}
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	if !wait(ctx, t, longest) {
		s.count("canceled")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	for _, pl := range plays {
		switch pl.fault {
		case "cut": // the first half of a body, then the connection drops
			s.count("fault")
			_, _ = w.Write(append(s.head(nil, rs, false), `[{"index":0,`...))
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			panic(http.ErrAbortHandler)
		case "garbage":
			s.count("fault")
			_, _ = io.WriteString(w, `{not json`)
			return
		}
	}
	b := append(s.head(make([]byte, 0, 512), rs, false), '[')
	completion, refused := 0, false
	for i, pl := range plays {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		if rs.chat {
			b = append(b, `,"message":{"role":"assistant","content":"`...)
		} else {
			b = append(b, `,"text":"`...)
		}
		for _, tok := range pl.tokens {
			b = append(b, tok...)
		}
		if rs.chat {
			b = append(b, '"', '}')
		} else {
			b = append(b, '"')
		}
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
		b = append(b, pl.finish...)
		b = append(b, `"}`...)
		completion += len(pl.tokens)
		refused = refused || pl.refused
	}
	b = append(appendUsage(append(b, "],"...), rs.promptTokens, completion), "}\n"...)
	_, _ = w.Write(b)
	s.done(refused, completion)
}
