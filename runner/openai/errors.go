package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/runner"
)

// class is err's runner.Class, or "" for nil.
func class(err error) runner.Class {
	if err == nil {
		return ""
	}
	return runner.AsError(err).Class
}

// invalid is a request the engine will not send. It is the http_4xx
// class (a rejected request) without a status: the server never saw it.
func invalid(format string, a ...any) *runner.Error {
	return runner.Errorf(runner.ClassHTTP4xx, "openai: "+format, a...)
}

// ctxError classifies an error that ctx ended: the deadline is a timeout,
// anything else a cancellation (runner.AsError, decided by ctx rather
// than by what the transport wrapped).
func ctxError(ctx context.Context, what string, err error) *runner.Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &runner.Error{Class: runner.ClassTimeout, Message: what + " before the timeout", Err: err}
	}
	return &runner.Error{Class: runner.ClassCancelled, Message: "cancelled " + what, Err: err}
}

// transportError classifies a failure to get a response.
func transportError(ctx context.Context, err error) *runner.Error {
	if ctx.Err() != nil {
		return ctxError(ctx, "no response", err)
	}
	return &runner.Error{Class: runner.ClassConnect, Message: err.Error(), Err: err}
}

// readError classifies a failure while reading a response: the stream
// broke after the server answered.
func readError(ctx context.Context, err error) *runner.Error {
	if ctx.Err() != nil {
		return ctxError(ctx, "the response did not finish", err)
	}
	return &runner.Error{Class: runner.ClassStreamCut, Message: "the connection broke mid-response: " + err.Error(), Err: err}
}

// maxErrorBody bounds how much of an error response is read; the rest is
// dropped with the connection.
const maxErrorBody = 64 << 10

// statusError reads an error response: the server's message (OpenAI's
// {"error": {"message"}}, vLLM's {"message"}, FastAPI's {"detail"}, or
// the text) and the Retry-After of a 429 or 503.
func statusError(resp *http.Response) *runner.Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := errorMessage(b)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e := &runner.Error{Status: resp.StatusCode, Message: msg}
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests:
		e.Class = runner.ClassHTTP429
	case c >= 500:
		e.Class = runner.ClassHTTP5xx
	default: // 4xx, and a redirect or 1xx the engine does not follow
		e.Class = runner.ClassHTTP4xx
	}
	e.RetryAfter = runner.Duration(retryAfter(resp.Header, time.Now()))
	return e
}

// maxMessage bounds a server's error message in a report.
const maxMessage = 1 << 10

// errorMessage finds the message in an error body.
func errorMessage(b []byte) string {
	var env struct {
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	msg := ""
	if json.Unmarshal(b, &env) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(env.Error, &inner) == nil && inner.Message != "":
			msg = inner.Message
		case json.Unmarshal(env.Error, &s) == nil && s != "":
			msg = s
		case json.Unmarshal(env.Message, &s) == nil && s != "":
			msg = s
		case json.Unmarshal(env.Detail, &s) == nil && s != "":
			msg = s
		case len(env.Detail) > 0 && string(env.Detail) != "null":
			msg = string(env.Detail) // FastAPI's validation errors are a list
		}
	}
	if msg == "" {
		msg = string(b)
	}
	msg = strings.TrimSpace(msg)
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + "…"
	}
	return msg
}

// apiError is an error the server sent in place of a result (a 200
// response or a stream event with an error object): the class follows
// its code, 5xx when it has none.
func apiError(code int, msg string) *runner.Error {
	c := runner.ClassHTTP5xx
	switch {
	case code == http.StatusTooManyRequests:
		c = runner.ClassHTTP429
	case code >= 400 && code < 500:
		c = runner.ClassHTTP4xx
	}
	if msg == "" {
		msg = "no message"
	}
	if code != 0 {
		return runner.Errorf(c, "the server sent an error (code %d): %s", code, msg)
	}
	return runner.Errorf(c, "the server sent an error: %s", msg)
}

// retryAfter reads retry-after-ms (OpenAI's, more precise) or
// Retry-After in seconds or as an HTTP date (RFC 9110 §10.2.3). A date
// in the past or a value it cannot read is zero.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s > 0 && s <= 1e9) { // also NaN
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// errBatch is a batch DoBatch cannot send.
func errBatch(format string, a ...any) *runner.Error {
	return invalid("batch: %s", fmt.Sprintf(format, a...))
}
