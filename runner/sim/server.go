package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/prometheus/client_golang/prometheus"
)

// Server is the simulated model server, an http.Handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	regexes []*regexp.Regexp // per answer; nil for Match answers
	faults  []atomic.Int64   // per answer: fault plays so far
	model   []byte           // the model name, JSON-encoded
	ready   time.Time
	apiKey  string
	slots   chan struct{}
	ids     atomic.Int64

	mu  sync.Mutex
	rng *rand.Rand

	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
}

// Option configures New.
type Option func(*Server)

// WithAPIKey makes the server require "Authorization: Bearer key".
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithRegisterer exports airlock_sim_requests_total{outcome} and
// airlock_sim_tokens_total{type} on reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Server) {
		s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_sim_requests_total",
			Help: "Requests the simulator answered, by outcome (ok, refused, error, fault)."}, []string{"outcome"})
		s.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_sim_tokens_total",
			Help: "Tokens the simulator read and generated, by type (input, output)."}, []string{"type"})
		reg.MustRegister(s.requests, s.tokens)
	}
}

// New returns a server playing cfg, which must be valid (Validate).
func New(cfg Config, opts ...Option) *Server {
	s := &Server{cfg: cfg, ready: time.Now().Add(cfg.StartupDelay), faults: make([]atomic.Int64, len(cfg.Answers)),
		rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x73696d))}
	s.model, _ = json.Marshal(cfg.Model)
	for _, a := range cfg.Answers {
		var re *regexp.Regexp
		if a.Regex != "" {
			re = regexp.MustCompile(a.Regex)
		}
		s.regexes = append(s.regexes, re)
	}
	if cfg.MaxConcurrency > 0 {
		s.slots = make(chan struct{}, cfg.MaxConcurrency)
	}
	for _, o := range opts {
		o(s)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, true) })
	s.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, false) })
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.apiKey != "" && r.Header.Get("Authorization") != "Bearer "+s.apiKey {
		apiError(w, http.StatusUnauthorized, "invalid_api_key", "missing or wrong bearer token", 0)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if time.Now().Before(s.ready) {
		apiError(w, http.StatusServiceUnavailable, "loading", "the simulated model is still loading", 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"object":"list","data":[{"id":%s,"object":"model","owned_by":"airlock-sim"}]}`, s.model)
}

// apiError writes the OpenAI error shape.
func apiError(w http.ResponseWriter, status int, code, msg string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": code, "code": code}})
	_, _ = w.Write(b) // a client that left is not the simulator's problem
}

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

// text is a message's content: a string, or text parts.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

func (s *Server) count(outcome string) {
	if s.requests != nil {
		s.requests.WithLabelValues(outcome).Inc()
	}
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request, chat bool) {
	if time.Now().Before(s.ready) {
		apiError(w, http.StatusServiceUnavailable, "loading", "the simulated model is still loading", 0)
		return
	}
	var req request
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "the body is not a JSON request: "+err.Error(), 0)
		return
	}
	var prompts []string
	promptWords := 0
	if chat {
		if len(req.Messages) == 0 {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "messages: at least one message is required", 0)
			return
		}
		last := ""
		for _, m := range req.Messages {
			t := text(m.Content)
			promptWords += len(strings.Fields(t))
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
			apiError(w, http.StatusBadRequest, "invalid_request_error", "prompt: want a string or a non-empty list of strings", 0)
			return
		}
		if len(prompts) > 1 && req.Stream {
			apiError(w, http.StatusBadRequest, "invalid_request_error", "prompt: a list of prompts cannot be streamed", 0)
			return
		}
		for _, p := range prompts {
			promptWords += len(strings.Fields(p))
		}
	}
	maxTokens := -1
	if req.MaxCompletionTokens != nil {
		maxTokens = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	if s.slots != nil {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		case <-r.Context().Done():
			return
		}
	}
	arrived := time.Now() // after any wait for a slot: the "prefill" starts now
	if s.tokens != nil {
		s.tokens.WithLabelValues("input").Add(float64(promptWords))
	}

	// Decide the outcome of each prompt.
	plays := make([]play, len(prompts))
	for i, p := range prompts {
		plays[i] = s.choose(p, maxTokens, req.IgnoreEOS)
	}
	pl := plays[0]
	switch {
	case pl.status != 0:
		s.count("error")
		apiError(w, pl.status, "simulated_error", fmt.Sprintf("simulated HTTP %d", pl.status), pl.retryAfter)
		return
	case pl.fault == "close":
		s.count("fault")
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	id := "sim-" + strconv.FormatInt(s.ids.Add(1), 10)
	if req.Stream {
		s.stream(w, r.Context(), arrived, chat, id, pl, promptWords, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		return
	}
	s.whole(w, r.Context(), chat, id, plays, promptWords)
}

// play is what the simulator does with one prompt.
type play struct {
	tokens     []string
	finish     string
	refused    bool
	status     int
	retryAfter time.Duration
	fault      string
}

func (s *Server) choose(prompt string, maxTokens int, ignoreEOS bool) play {
	var pl play
	answer, found := s.cfg.Default, false
	for i, a := range s.cfg.Answers {
		if (a.Match != "" && strings.Contains(prompt, a.Match)) || (s.regexes[i] != nil && s.regexes[i].MatchString(prompt)) {
			found = true
			answer = a.Text
			pl.refused = a.Refuse
			if a.Fault != "" && (a.FaultTimes == 0 || s.faults[i].Add(1) <= int64(a.FaultTimes)) {
				pl.fault = a.Fault
				pl.retryAfter = a.RetryAfter
			}
			break
		}
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
	if pl.status == 0 && pl.fault == "" && errDraw < s.cfg.ErrorRate {
		pl.status = cmpOr(s.cfg.ErrorStatus, http.StatusInternalServerError)
	}
	if refuseDraw < s.cfg.RefusalRate {
		pl.refused = true
	}
	if pl.refused {
		answer = cmpOrStr(s.cfg.Refusal, "I can't help with that.")
	}
	if answer == "" && !found {
		n := maxTokens
		if n < 0 {
			n = 16
		}
		pl.tokens = filler(n)
	} else {
		pl.tokens = tokenize(answer)
	}
	pl.finish = "stop"
	if maxTokens >= 0 && len(pl.tokens) >= maxTokens {
		if len(pl.tokens) > maxTokens {
			pl.finish = "length"
		}
		pl.tokens = pl.tokens[:maxTokens]
	}
	if ignoreEOS && maxTokens > len(pl.tokens) {
		pl.tokens = append(pl.tokens, filler(maxTokens-len(pl.tokens))...)
		pl.finish = "length"
	}
	return pl
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func cmpOrStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// tokenize splits text into the simulator's tokens: words, each after the
// first with its leading space.
func tokenize(s string) []string {
	words := strings.Fields(s)
	out := make([]string, len(words))
	for i, w := range words {
		if i > 0 {
			w = " " + w
		}
		out[i] = w
	}
	return out
}

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
	case "fixed", "":
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
		sigma2 := math.Log(1 + sd*sd/(m*m))
		mu := math.Log(m) - sigma2/2
		return time.Duration(math.Exp(mu + math.Sqrt(sigma2)*z))
	}
	return d.Mean
}

// wait sleeps for d or until ctx ends.
func wait(ctx context.Context, t *time.Timer, d time.Duration) bool {
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

func (s *Server) stream(w http.ResponseWriter, ctx context.Context, arrived time.Time, chat bool, id string, pl play, promptTokens int, usage bool) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	created := strconv.FormatInt(time.Now().Unix(), 10)
	object := `"text_completion"`
	if chat {
		object = `"chat.completion.chunk"`
	}
	head := `data: {"id":"` + id + `","object":` + object + `,"created":` + created + `,"model":` + string(s.model) + `,"choices":`
	buf := make([]byte, 0, 512)
	send := func(choices string) {
		buf = append(buf[:0], head...)
		buf = append(buf, choices...)
		buf = append(buf, "}\n\n"...)
		_, _ = w.Write(buf)
		if fl != nil {
			fl.Flush()
		}
	}
	if chat {
		send(`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`)
	} else if fl != nil {
		fl.Flush()
	}
	switch pl.fault {
	case "hang":
		s.count("fault")
		<-ctx.Done()
		return
	case "garbage":
		s.count("fault")
		_, _ = io.WriteString(w, "data: {not json\n\n")
		return
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	per := max(1, s.cfg.TokensPerChunk)
	cut := -1
	if pl.fault == "cut" {
		cut = len(pl.tokens) / 2
	}
	sent := 0
	// Deadlines are kept from the arrival of the request, not from the
	// last write, so that the stream's timing is the configured one and
	// does not drift by the cost of each write.
	next := arrived
	for i := 0; i < len(pl.tokens); i += per {
		var d time.Duration
		if i == 0 {
			d = s.draw(s.cfg.TTFT)
			for range min(per, len(pl.tokens)) - 1 {
				d += s.draw(s.cfg.PerToken)
			}
		} else {
			for range min(per, len(pl.tokens)-i) {
				d += s.draw(s.cfg.PerToken)
			}
		}
		next = next.Add(d)
		if !wait(ctx, t, time.Until(next)) {
			return
		}
		if cut >= 0 && i >= cut {
			s.count("fault")
			panic(http.ErrAbortHandler) // the client sees the stream break off
		}
		piece, _ := json.Marshal(strings.Join(pl.tokens[i:min(i+per, len(pl.tokens))], ""))
		if chat {
			send(`[{"index":0,"delta":{"content":` + string(piece) + `},"finish_reason":null}]`)
		} else {
			send(`[{"index":0,"text":` + string(piece) + `,"finish_reason":null}]`)
		}
		sent = min(i+per, len(pl.tokens))
	}
	if cut >= 0 { // nothing to cut in: end without finishing
		s.count("fault")
		panic(http.ErrAbortHandler)
	}
	if chat {
		send(`[{"index":0,"delta":{},"finish_reason":"` + pl.finish + `"}]`)
	} else {
		send(`[{"index":0,"text":"","finish_reason":"` + pl.finish + `"}]`)
	}
	if usage {
		send(fmt.Sprintf(`[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, promptTokens, sent, promptTokens+sent))
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	s.done(pl, sent)
}

func (s *Server) done(pl play, tokens int) {
	if pl.refused {
		s.count("refused")
	} else {
		s.count("ok")
	}
	if s.tokens != nil {
		s.tokens.WithLabelValues("output").Add(float64(tokens))
	}
}

func (s *Server) whole(w http.ResponseWriter, ctx context.Context, chat bool, id string, plays []play, promptTokens int) {
	// A whole response takes as long as its longest stream would.
	var longest time.Duration
	for _, pl := range plays {
		d := time.Duration(0)
		if len(pl.tokens) > 0 {
			d = s.draw(s.cfg.TTFT)
			for range len(pl.tokens) - 1 {
				d += s.draw(s.cfg.PerToken)
			}
		}
		longest = max(longest, d)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	if !wait(ctx, t, longest) {
		return
	}
	for _, pl := range plays {
		if pl.fault == "hang" {
			<-ctx.Done()
			return
		}
		switch pl.fault {
		case "cut": // half a response, then the connection drops
			s.count("fault")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices":[{"index":0,`)
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			panic(http.ErrAbortHandler)
		case "garbage":
			s.count("fault")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{not json`)
			return
		}
	}
	type choice struct {
		Index        int             `json:"index"`
		Text         *string         `json:"text,omitempty"`
		Message      *map[string]any `json:"message,omitempty"`
		FinishReason string          `json:"finish_reason"`
	}
	resp := map[string]any{"id": id, "created": time.Now().Unix(), "model": s.cfg.Model}
	var choices []choice
	completion := 0
	for i, pl := range plays {
		txt := strings.Join(pl.tokens, "")
		c := choice{Index: i, FinishReason: pl.finish}
		if chat {
			c.Message = &map[string]any{"role": "assistant", "content": txt}
		} else {
			c.Text = &txt
		}
		choices = append(choices, c)
		completion += len(pl.tokens)
		s.done(pl, len(pl.tokens))
	}
	if chat {
		resp["object"] = "chat.completion"
	} else {
		resp["object"] = "text_completion"
	}
	resp["choices"] = choices
	resp["usage"] = map[string]int{"prompt_tokens": promptTokens, "completion_tokens": completion, "total_tokens": promptTokens + completion}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil && !errors.Is(err, context.Canceled) {
		return
	}
}
