package openai

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/runner"
)

// Do sends one request and records its timeline: tl.MarkSent just before
// the request is written, an event per stream chunk, the usage, output
// (with KeepOutput) and finish reason, and tl.Finish when the response
// ended ([DONE], the end of the body or the error). On failure it
// returns, and sets tl.Error to, a *runner.Error; a request it will not
// send (runner.Request.Validate, an extra field that is not JSON) is the
// http_4xx class with no status.
func (e *Engine) Do(ctx context.Context, req *runner.Request, tl *runner.Timeline) error {
	model := req.Model
	if model == "" {
		model = e.Model()
	}
	payload, err := e.encode(req, model, nil)
	if err != nil {
		tl.MarkSent()
		tl.Finish()
		return fail(tl, err)
	}
	url := e.chat
	if req.Kind == runner.Completion {
		url = e.compl
	}
	hr, err := e.newRequest(ctx, url, payload, req.ID, !req.NoStream)
	if err != nil {
		tl.MarkSent()
		tl.Finish()
		return fail(tl, err)
	}
	tl.MarkSent()
	resp, err := e.client.Do(hr)
	if err != nil {
		tl.Finish()
		return fail(tl, transportError(ctx, err))
	}
	defer resp.Body.Close()
	tl.Status = resp.StatusCode
	if resp.StatusCode/100 != 2 {
		err := statusError(resp)
		tl.Finish()
		return fail(tl, err)
	}
	if req.NoStream || isJSON(resp.Header) {
		// A server that does not stream answers a stream request with
		// the whole response.
		err = e.whole(ctx, resp.Body, tl)
		tl.Finish()
		return fail(tl, err)
	}
	r, _ := e.readers.Get().(*reader)
	if r == nil {
		r = &reader{sse: newSSEReader()}
	}
	r.reset(resp.Body)
	done, err := r.stream(ctx, tl, e.opts.KeepOutput)
	tl.Finish()
	if done {
		r.drain(resp.Body)
	}
	r.reset(nil)
	e.readers.Put(r)
	return fail(tl, err)
}

// fail records err in tl and returns it (nil for nil).
func fail(tl *runner.Timeline, err error) error {
	if err == nil {
		return nil
	}
	re := runner.AsError(err)
	tl.Error = re
	return re
}

func (e *Engine) newRequest(ctx context.Context, url string, payload []byte, id string, stream bool) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, invalid("%v", err)
	}
	// The values are shared with the engine's header, which net/http
	// only reads; copying the map is enough.
	hr.Header = make(http.Header, len(e.header)+2)
	for k, v := range e.header {
		hr.Header[k] = v
	}
	if stream {
		hr.Header["Accept"] = acceptStream
	} else {
		hr.Header["Accept"] = acceptJSON
	}
	if id != "" {
		hr.Header["X-Request-Id"] = []string{id}
	}
	return hr, nil
}

// The Accept headers are shared: net/http does not change header values.
var (
	acceptStream = []string{"text/event-stream"}
	acceptJSON   = []string{"application/json"}
)

// isJSON reports a Content-Type of application/json, with or without
// parameters (mime.ParseMediaType would allocate for every response).
func isJSON(h http.Header) bool {
	const jsonType = "application/json"
	ct := strings.TrimSpace(h.Get("Content-Type"))
	if len(ct) < len(jsonType) || !strings.EqualFold(ct[:len(jsonType)], jsonType) {
		return false
	}
	rest := strings.TrimLeft(ct[len(jsonType):], " \t")
	return rest == "" || rest[0] == ';'
}

// reader reads one stream; Do keeps readers in a pool.
type reader struct {
	sse *sseReader
	c   chunk
	out []byte // the output, with KeepOutput
	tmp []byte // escaped text decoded to count it
}

func (r *reader) reset(body io.Reader) {
	r.sse.reset(body)
	r.out = r.out[:0]
	if cap(r.out) > 1<<20 {
		r.out = nil
	}
	if cap(r.tmp) > 64<<10 {
		r.tmp = nil
	}
}

// stream reads an event stream to its end and records its events in tl.
// It reports done when the stream ended with [DONE]: the rest of the
// body is then only the end of the HTTP response, which the caller reads
// so that the connection can be reused.
func (r *reader) stream(ctx context.Context, tl *runner.Timeline, keep bool) (done bool, err error) {
	generated, finished := false, false
	defer func() {
		if keep {
			tl.Output = string(r.out)
		}
	}()
	for {
		data, rerr := r.sse.next()
		partial := errors.Is(rerr, io.EOF) && data != nil
		if rerr != nil && !partial {
			switch {
			case errors.Is(rerr, io.EOF):
				// The body ended between events.
			case errors.Is(rerr, errLineTooLong):
				return false, runner.Errorf(runner.ClassStreamParse, "event %d: %v", len(tl.Events)+1, rerr)
			default:
				return false, readError(ctx, rerr)
			}
			break
		}
		trimmed := bytes.TrimSpace(data)
		if len(trimmed) == 0 {
			if partial {
				break
			}
			continue // an empty data field: a keep-alive
		}
		if string(trimmed) == "[DONE]" {
			done = true
			break
		}
		if perr := parseChunk(data, &r.c); perr != nil {
			if partial {
				// The body ended inside an event that is not whole:
				// the stream was cut, not garbled.
				break
			}
			return false, runner.Errorf(runner.ClassStreamParse, "event %d is %v: %.200q", len(tl.Events)+1, perr, data)
		}
		if r.c.apiError.set {
			msg := string(appendText(nil, data, []span{r.c.apiError.message}))
			return false, apiError(r.c.apiError.code, msg)
		}
		g, f := r.record(tl, data, keep)
		generated, finished = generated || g, finished || f
		if partial {
			break
		}
	}
	switch {
	case !done && !finished:
		if ctx.Err() != nil {
			return false, ctxError(ctx, "the stream did not finish", ctx.Err())
		}
		return false, runner.Errorf(runner.ClassStreamCut, "the stream ended without [DONE] or a finish_reason after %d events", len(tl.Events))
	case !generated:
		return done, runner.Errorf(runner.ClassEmptyStream, "the stream finished (finish_reason %q) without generating anything", tl.FinishReason)
	}
	return done, nil
}

// record adds the event of the chunk in r.c (decoded from b) to tl. It
// reports whether the chunk carried generated output, and a finish
// reason.
//
// One chunk is one event, of the first kind it carries: content (or
// completion text), reasoning, tool calls, a finish reason, usage with no
// choices; anything else (a role-only chunk, an empty delta) is a role
// event, which is not a token. Usage sent with a chunk (vLLM's continuous
// usage) is the event's Tokens and updates tl.Usage.
func (r *reader) record(tl *runner.Timeline, b []byte, keep bool) (generated, finished bool) {
	c := &r.c
	tokens := 0
	if c.usage.set {
		if tl.Usage == nil {
			tl.Usage = new(runner.Usage)
		}
		tl.Usage.PromptTokens, tl.Usage.CompletionTokens = c.usage.prompt, c.usage.completion
		tokens = c.usage.completion
	}
	if c.finish.set && c.finish.end > c.finish.start {
		tl.FinishReason = finishReason(b, c.finish)
		finished = true
	}
	switch {
	case len(c.content) > 0:
		n := 0
		if keep {
			before := len(r.out)
			r.out = appendText(r.out, b, c.content)
			n = len(r.out) - before
		} else {
			r.tmp, n = textLen(r.tmp, b, c.content)
		}
		tl.Add(runner.EventContent, n, tokens)
		return true, finished
	case len(c.reasoning) > 0:
		var n int
		r.tmp, n = textLen(r.tmp, b, c.reasoning)
		tl.Add(runner.EventReasoning, n, tokens)
		return true, finished
	case c.toolCalls:
		tl.Add(runner.EventToolCall, 0, tokens)
		return true, finished
	case finished:
		tl.Add(runner.EventFinish, 0, tokens)
	case c.choices == 0 && c.usage.set:
		tl.Add(runner.EventUsage, 0, tokens)
	default:
		tl.Add(runner.EventRole, 0, tokens)
	}
	return false, finished
}

// appendText appends the decoded strings to dst.
func appendText(dst, b []byte, spans []span) []byte {
	for _, sp := range spans {
		if raw := sp.raw(b); !sp.esc && utf8.Valid(raw) {
			dst = append(dst, raw...)
		} else {
			dst = appendUnescaped(dst, raw)
		}
	}
	return dst
}

// textLen is the decoded length of the strings; tmp is scratch space.
func textLen(tmp, b []byte, spans []span) ([]byte, int) {
	n := 0
	for _, sp := range spans {
		if raw := sp.raw(b); !sp.esc && utf8.Valid(raw) {
			n += len(raw)
		} else {
			tmp = appendUnescaped(tmp[:0], raw)
			n += len(tmp)
		}
	}
	return tmp, n
}

// finishReason returns the finish reason without allocating for the
// common ones.
func finishReason(b []byte, sp span) string {
	var buf [32]byte
	v := appendText(buf[:0], b, []span{sp})
	switch string(v) {
	case "stop":
		return "stop"
	case "length":
		return "length"
	case "tool_calls":
		return "tool_calls"
	case "content_filter":
		return "content_filter"
	case "abort":
		return "abort"
	}
	return string(v)
}

// drainWait and maxDrain bound the read of what follows [DONE]: the end
// of a chunked response, which lets the transport reuse the connection.
// A server that keeps the stream open after [DONE] loses the connection
// instead of holding the request.
const (
	drainWait = 250 * time.Millisecond
	maxDrain  = 64 << 10
)

func (r *reader) drain(body io.Closer) {
	t := time.AfterFunc(drainWait, func() { body.Close() })
	_, _ = r.sse.br.Discard(maxDrain)
	t.Stop()
}
