package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/runner"
)

// Options configure New. The zero value of every field but BaseURL is the
// documented default.
type Options struct {
	// BaseURL is the server, such as http://127.0.0.1:8000; a trailing
	// /v1 is accepted. It may carry a path prefix (a gateway's route).
	BaseURL string
	// APIKey is sent as a bearer token when set. The library never reads
	// the environment; the CLI passes OPENAI_API_KEY.
	APIKey string
	// Model is sent with requests that name none. When both are empty
	// the body has no model field (vLLM and llama.cpp then use the one
	// they serve); ResolveModel picks the server's.
	Model string
	// Client sends the requests; nil means one whose transport keeps
	// MaxConns connections to the server, so that the pool never
	// silently caps concurrency (runner.md (e), complaint 4).
	Client *http.Client
	// MaxConns sizes the default client's pool of idle connections (the
	// number of connections is not capped); zero means 1024.
	MaxConns int
	// Headers are added to every request, after the engine's own (so
	// they may replace Authorization, for a gateway that wants api-key
	// instead).
	Headers map[string]string
	// ContinuousUsage asks vLLM to send usage with every chunk
	// (stream_options.continuous_usage_stats), so that events carry the
	// server's cumulative token count even when it puts several tokens
	// in one chunk.
	ContinuousUsage bool
	// KeepOutput keeps generated text in Timeline.Output (evals need
	// it; benchmarks save memory without it).
	KeepOutput bool
	// UserAgent is sent as User-Agent; empty means Go's.
	UserAgent string
}

// DefaultMaxConns is the default client's pool size.
const DefaultMaxConns = 1024

// Engine is a runner.Engine for an OpenAI-compatible server. It is safe
// for concurrent use.
type Engine struct {
	opts   Options
	base   string // scheme://host[:port][/prefix], without /v1
	chat   string
	compl  string
	client *http.Client
	header http.Header // sent with every request; cloned per request
	model  atomic.Pointer[string]
	// readers keeps stream readers for reuse: a benchmark reads
	// thousands of streams a second, and their buffers would be most of
	// a request's garbage.
	readers sync.Pool
}

var (
	_ runner.Engine    = (*Engine)(nil)
	_ runner.Batcher   = (*Engine)(nil)
	_ runner.Describer = (*Engine)(nil)
)

// New checks opts and returns an engine. It does not contact the server.
func New(opts Options) (*Engine, error) {
	u, err := url.Parse(strings.TrimSpace(opts.BaseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("openai: endpoint %q: want an http:// or https:// URL such as http://127.0.0.1:8000", opts.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("openai: endpoint %q: want no query, fragment or user (use Headers or APIKey for credentials)", opts.BaseURL)
	}
	p := strings.TrimRight(u.EscapedPath(), "/")
	p = strings.TrimRight(strings.TrimSuffix(p, "/v1"), "/")
	base := u.Scheme + "://" + u.Host + p
	if opts.MaxConns < 0 {
		return nil, fmt.Errorf("openai: MaxConns %d is negative", opts.MaxConns)
	}
	c := opts.Client
	if c == nil {
		c = newClient(opts.MaxConns)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if opts.APIKey != "" {
		h.Set("Authorization", "Bearer "+opts.APIKey)
	}
	if opts.UserAgent != "" {
		h.Set("User-Agent", opts.UserAgent)
	}
	for k, v := range opts.Headers {
		h.Set(k, v)
	}
	e := &Engine{opts: opts, base: base, chat: base + "/v1/chat/completions", compl: base + "/v1/completions", client: c, header: h}
	e.SetModel(opts.Model)
	return e, nil
}

// newClient returns a client whose pool keeps n idle connections to the
// server (http.DefaultTransport keeps two per host, so a run of 256
// streams would open and close connections all the time) and does not
// cap connections. Compression is off: a gzip reader would hold back
// stream events. Redirects are not followed: Go would replay a POST as a
// GET.
func newClient(n int) *http.Client {
	if n <= 0 {
		n = DefaultMaxConns
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.MaxConnsPerHost = n, n, 0
	t.DisableCompression = true
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Describe names the engine in reports.
func (e *Engine) Describe() runner.EngineInfo {
	return runner.EngineInfo{Kind: "openai", Endpoint: e.base, Model: e.Model()}
}

// Model is the model sent with requests that name none.
func (e *Engine) Model() string {
	if m := e.model.Load(); m != nil {
		return *m
	}
	return ""
}

// SetModel sets the model sent with requests that name none.
func (e *Engine) SetModel(m string) { e.model.Store(&m) }

// CloseIdleConnections closes the pool's idle connections; a caller that
// is done with the engine calls it so that no connection outlives it.
func (e *Engine) CloseIdleConnections() { e.client.CloseIdleConnections() }

// Models lists the models the server serves (GET /v1/models).
func (e *Engine) Models(ctx context.Context) ([]string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/models", nil)
	if err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	hr.Header = e.header.Clone()
	hr.Header.Del("Content-Type")
	hr.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(hr)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, statusError(resp)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET %s/v1/models: not a model list: %w", e.base, err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// ResolveModel returns the model sent with requests that name none: the
// one set, or else the first the server lists, which it then keeps.
func (e *Engine) ResolveModel(ctx context.Context) (string, error) {
	old := e.model.Load()
	if old != nil && *old != "" {
		return *old, nil
	}
	ids, err := e.Models(ctx)
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("GET %s/v1/models lists no model", e.base)
	}
	e.model.CompareAndSwap(old, &ids[0]) // unless SetModel ran meanwhile
	return e.Model(), nil
}

// Ready reports whether the server answers: GET /v1/models lists a model
// and a one-token request succeeds (runner.md (f), recommendation 3). The
// request is a chat request, or a completion when the server rejects
// chat (a base model without a chat template). The process engine polls
// it while its server starts.
func (e *Engine) Ready(ctx context.Context) error {
	ids, err := e.Models(ctx)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return fmt.Errorf("GET %s/v1/models lists no model yet", e.base)
	}
	model := e.Model()
	if model == "" {
		model = ids[0]
	}
	req := runner.Request{ID: "airlock-ready", Kind: runner.Chat, Model: model, MaxTokens: 1, NoStream: true,
		Messages: []runner.Message{{Role: "user", Content: "Hi"}}}
	err = e.Do(ctx, &req, runner.NewTimeline(req.ID, time.Now()))
	if class(err) == runner.ClassHTTP4xx {
		compl := runner.Request{ID: req.ID, Kind: runner.Completion, Model: model, MaxTokens: 1, NoStream: true, Prompt: "Hi"}
		if c := class(e.Do(ctx, &compl, runner.NewTimeline(req.ID, time.Now()))); c == "" || c == runner.ClassEmptyStream {
			return nil
		}
	}
	// A model may end its answer at once: the server still answered.
	if c := class(err); c != "" && c != runner.ClassEmptyStream {
		return fmt.Errorf("one-token request to %s: %w", e.base, err)
	}
	return nil
}
