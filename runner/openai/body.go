package openai

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/runner"
)

// encode returns the JSON body of req for model. prompts replaces
// req.Prompt for a batch. The body is written by hand, in a fixed field
// order, because it is built for every request of a benchmark.
//
// Chat requests carry both max_completion_tokens (OpenAI's current name)
// and max_tokens: some servers know only one, and one that ignores the cap
// generates without end (runner.md (e), complaint 2). req.Extra adds
// fields; a key the engine also sets (max_tokens, temperature, seed,
// ignore_eos...) replaces the engine's. Keys that would change what the
// engine reads (model, messages, prompt, stream, stream_options) are
// rejected by req.Validate.
func (e *Engine) encode(req *runner.Request, model string, prompts []string) ([]byte, error) {
	if err := req.Validate(); err != nil {
		return nil, invalid("%v", err)
	}
	for k, v := range req.Extra {
		if !json.Valid(v) {
			return nil, invalid("request %q: extra body field %q is not JSON: %.40q", req.ID, k, v)
		}
	}
	if t := req.Temperature; t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0)) {
		return nil, invalid("request %q: temperature %v is not a number JSON can carry", req.ID, *t)
	}
	n := 128
	for _, m := range req.Messages {
		n += len(m.Role) + len(m.Content) + 32
	}
	n += len(req.Prompt)
	for _, p := range prompts {
		n += len(p) + 4
	}
	for k, v := range req.Extra {
		n += len(k) + len(v) + 4
	}
	w := bodyWriter{b: make([]byte, 0, n), extra: req.Extra}
	w.b = append(w.b, '{')
	if model != "" {
		w.key("model")
		w.b = appendString(w.b, model)
	}
	switch {
	case req.Kind == runner.Chat:
		w.key("messages")
		w.b = append(w.b, '[')
		for i, m := range req.Messages {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, `{"role":`...)
			w.b = appendString(w.b, m.Role)
			w.b = append(w.b, `,"content":`...)
			w.b = appendString(w.b, m.Content)
			w.b = append(w.b, '}')
		}
		w.b = append(w.b, ']')
	case prompts != nil:
		w.key("prompt")
		w.b = append(w.b, '[')
		for i, p := range prompts {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = appendString(w.b, p)
		}
		w.b = append(w.b, ']')
	default:
		w.key("prompt")
		w.b = appendString(w.b, req.Prompt)
	}
	if req.MaxTokens > 0 {
		if req.Kind == runner.Chat && w.key("max_completion_tokens") {
			w.b = strconv.AppendInt(w.b, int64(req.MaxTokens), 10)
		}
		if w.key("max_tokens") {
			w.b = strconv.AppendInt(w.b, int64(req.MaxTokens), 10)
		}
	}
	if req.Temperature != nil && w.key("temperature") {
		w.b = strconv.AppendFloat(w.b, *req.Temperature, 'g', -1, 64)
	}
	if req.Seed != nil && w.key("seed") {
		w.b = strconv.AppendInt(w.b, *req.Seed, 10)
	}
	if req.IgnoreEOS && w.key("ignore_eos") {
		w.b = append(w.b, "true"...)
	}
	w.key("stream")
	if stream := !req.NoStream && prompts == nil; stream {
		w.b = append(w.b, "true"...)
		w.key("stream_options")
		w.b = append(w.b, `{"include_usage":true`...)
		if e.opts.ContinuousUsage {
			w.b = append(w.b, `,"continuous_usage_stats":true`...)
		}
		w.b = append(w.b, '}')
	} else {
		w.b = append(w.b, "false"...)
	}
	if len(req.Extra) > 0 {
		keys := make([]string, 0, len(req.Extra))
		for k := range req.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			w.sep()
			w.b = appendString(w.b, k)
			w.b = append(w.b, ':')
			w.b = append(w.b, req.Extra[k]...)
		}
	}
	w.b = append(w.b, '}')
	return w.b, nil
}

// bodyWriter writes the fields of a JSON object.
type bodyWriter struct {
	b     []byte
	extra map[string]json.RawMessage
	more  bool // a field was written
}

func (w *bodyWriter) sep() {
	if w.more {
		w.b = append(w.b, ',')
	}
	w.more = true
}

// key writes the key of the next field, unless Extra sets it.
func (w *bodyWriter) key(k string) bool {
	if _, ok := w.extra[k]; ok {
		return false
	}
	w.sep()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
	return true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, as encoding/json writes it
// without HTML escaping: invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped (JavaScript reads them as line ends).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
