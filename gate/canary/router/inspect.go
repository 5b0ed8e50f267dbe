package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Kinds of answer the router reads.
const (
	kindNone = iota // not read: not a generation, or not a success
	kindSSE         // a server-sent event stream, read event by event
	kindJSON        // a whole JSON answer, read once it has been sent
)

// maxKeptBuffer is the largest buffer an exchange keeps for the next one.
const maxKeptBuffer = 64 << 10

// exchange is one request through the proxy: the http.ResponseWriter the
// proxy writes the answer to. It passes every byte on first, then reads
// it: the generated text (for refusal patterns, whose matches may span
// events), the finish_reason, usage and the time of the first generated
// text. Exchanges are pooled: their buffers serve many requests.
type exchange struct {
	rt      *Router
	w       http.ResponseWriter
	flusher http.Flusher
	up      *upstream
	start   time.Time
	inspect bool // a generation request, whose answer is read

	status                    int
	kind                      int
	failed, aborted, writeErr bool

	ttft                           time.Duration
	line                           []byte // a partial event line
	lineOver                       bool   // the partial line outgrew inspectLimit
	body                           []byte // a whole answer
	bodyOver                       bool
	tail                           []byte // the generated text's last bytes
	blocked                        bool
	usage                          bool
	promptTokens, completionTokens int
	chunk                          chunk
}

var _ http.Flusher = (*exchange)(nil)

// chunk is what the router reads of an event or an answer.
type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func (x *exchange) begin(rt *Router, w http.ResponseWriter, r *http.Request, up *upstream, start time.Time) {
	x.rt, x.w, x.up, x.start = rt, w, up, start
	x.flusher, _ = w.(http.Flusher)
	x.inspect = r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "completions")
}

// release returns an exchange to the pool, keeping its buffers unless
// they grew large.
func (rt *Router) release(x *exchange) {
	keep := func(b []byte) []byte {
		if cap(b) > maxKeptBuffer {
			return nil
		}
		return b[:0]
	}
	choices := x.chunk.Choices[:cap(x.chunk.Choices)]
	clear(choices)
	*x = exchange{line: keep(x.line), body: keep(x.body), tail: keep(x.tail), chunk: chunk{Choices: choices[:0]}}
	rt.exchanges.Put(x)
}

// Header implements http.ResponseWriter.
func (x *exchange) Header() http.Header { return x.w.Header() }

// WriteHeader implements http.ResponseWriter: it names the variant and
// decides whether and how the answer is read.
func (x *exchange) WriteHeader(code int) {
	if code < 200 { // informational (103 Early Hints): pass on
		x.w.WriteHeader(code)
		return
	}
	if x.status != 0 {
		return
	}
	x.status = code
	h := x.w.Header()
	h[VariantHeader] = x.up.header
	if x.inspect && code/100 == 2 {
		switch mediaType(h.Get("Content-Type")) {
		case "text/event-stream":
			x.kind = kindSSE
		case "application/json":
			x.kind = kindJSON
		}
	}
	x.w.WriteHeader(code)
}

// Write implements http.ResponseWriter. An event stream is flushed to the
// client before it is read, so reading never delays it.
func (x *exchange) Write(p []byte) (int, error) {
	if x.status == 0 {
		x.WriteHeader(http.StatusOK)
	}
	n, err := x.w.Write(p)
	if err != nil {
		x.writeErr = true
	}
	switch x.kind {
	case kindSSE:
		if x.flusher != nil {
			x.flusher.Flush()
		}
		x.scan(p[:n])
	case kindJSON:
		if !x.bodyOver {
			if len(x.body)+n > inspectLimit {
				x.bodyOver, x.body = true, x.body[:0]
			} else {
				x.body = append(x.body, p[:n]...)
			}
		}
	}
	return n, err
}

// Flush implements http.Flusher.
func (x *exchange) Flush() {
	if x.flusher != nil {
		x.flusher.Flush()
	}
}

// Unwrap lets http.ResponseController reach the client's writer.
func (x *exchange) Unwrap() http.ResponseWriter { return x.w }

// scan reads the complete lines of an event stream in p, keeping a partial
// last line for the next write.
func (x *exchange) scan(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			x.keep(p)
			return
		}
		switch {
		case x.lineOver:
			x.lineOver = false
		case len(x.line) > 0:
			x.keep(p[:i])
			if !x.lineOver {
				x.event(x.line)
			}
			x.lineOver = false
		default:
			x.event(p[:i])
		}
		x.line = x.line[:0]
		p = p[i+1:]
	}
}

// keep adds to the partial line, unless it would outgrow inspectLimit.
func (x *exchange) keep(p []byte) {
	if x.lineOver {
		return
	}
	if len(x.line)+len(p) > inspectLimit {
		x.lineOver, x.line = true, x.line[:0]
		return
	}
	x.line = append(x.line, p...)
}

// event reads one line of an event stream: a data: line holding a JSON
// chunk. Comments, other fields and data: [DONE] are skipped.
func (x *exchange) event(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	if len(data) > 0 && data[0] == ' ' {
		data = data[1:]
	}
	if len(data) == 0 || data[0] != '{' {
		return
	}
	x.decode(data, true)
}

// decode reads a chunk of a stream, or a whole answer.
func (x *exchange) decode(data []byte, stream bool) {
	c := &x.chunk
	cs := c.Choices[:cap(c.Choices)]
	clear(cs)
	c.Choices, c.Usage = cs[:0], nil
	if err := json.Unmarshal(data, c); err != nil {
		// A field of an unexpected type is skipped and the rest read;
		// anything else is not JSON, and not read.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return
		}
	}
	for i := range c.Choices {
		ch := &c.Choices[i]
		text := ch.Delta.Content
		if text == "" {
			text = ch.Text
		}
		if text == "" {
			text = ch.Message.Content
		}
		if text != "" {
			if stream && x.ttft == 0 {
				x.ttft = max(time.Since(x.start), 1)
			}
			x.match(text)
		}
		if ch.FinishReason != "" && slices.Contains(x.rt.finishReasons, ch.FinishReason) {
			x.blocked = true
		}
	}
	if u := c.Usage; u != nil {
		// Servers that report usage in every chunk report running
		// totals: the last one counts.
		x.usage, x.promptTokens, x.completionTokens = true, u.PromptTokens, u.CompletionTokens
	}
}

// match looks for refusal patterns in the generated text, across chunks:
// it keeps the text's last bytes, as many as the longest pattern but one.
func (x *exchange) match(text string) {
	ps := x.rt.patterns
	if x.blocked || len(ps) == 0 {
		return
	}
	x.tail = append(x.tail, text...)
	for _, p := range ps {
		if bytes.Contains(x.tail, p) {
			x.blocked = true
			return
		}
	}
	if keep := x.rt.maxPattern - 1; len(x.tail) > keep {
		x.tail = append(x.tail[:0], x.tail[len(x.tail)-keep:]...)
	}
}

// mediaType is a Content-Type's media type, lower-cased, without
// parameters.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	switch {
	case strings.EqualFold(ct, "text/event-stream"):
		return "text/event-stream"
	case strings.EqualFold(ct, "application/json"):
		return "application/json"
	}
	return ct
}
