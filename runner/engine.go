package runner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Engine sends requests to a model server. Do sends one request, calls
// tl.MarkSent just before writing it, records every stream event with
// tl.Add and the usage, output and finish reason the server sent, calls
// tl.Finish when the response ends, and returns an *Error (with its Class)
// when the request failed. Do is called from many goroutines at once.
//
// Do never retries: the driver decides (Retry), because benchmarks must
// not. It returns when ctx ends, with ClassTimeout or ClassCancelled.
type Engine interface {
	Do(ctx context.Context, req *Request, tl *Timeline) error
}

// Batcher is an Engine that can send several requests in one call (the
// completions API takes a list of prompts). The driver uses it when a
// batch size above one is asked for; tls[i] belongs to reqs[i], and each
// gets the batch's send and response times.
type Batcher interface {
	Engine
	DoBatch(ctx context.Context, reqs []*Request, tls []*Timeline) error
}

// Lifecycle is an Engine that must be started before use and stopped
// after, even when the run failed (runner/process starts a server).
// Start returns once the server is ready for requests.
type Lifecycle interface {
	Engine
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Describer is an Engine that can say what it talks to, for the report.
type Describer interface {
	Describe() EngineInfo
}

// EngineInfo names the engine in a report.
type EngineInfo struct {
	Kind     string `json:"kind"` // openai, process, kubernetes
	Endpoint string `json:"endpoint,omitempty"`
	Model    string `json:"model,omitempty"`
	Command  string `json:"command,omitempty"`
}

// Class names why a request failed, as the report and the
// airlock_bench_requests_total error_class label spell it.
type Class string

const (
	ClassHTTP429     Class = "http_429"     // rate limited
	ClassHTTP5xx     Class = "http_5xx"     // server error
	ClassHTTP4xx     Class = "http_4xx"     // rejected request
	ClassConnect     Class = "connect"      // no connection, or it broke before a response
	ClassTimeout     Class = "timeout"      // the per-request timeout passed
	ClassStreamCut   Class = "stream_cut"   // the stream ended before [DONE] or a finish_reason
	ClassStreamParse Class = "stream_parse" // an event that is not the OpenAI shape
	ClassEmptyStream Class = "empty_stream" // finished without generating anything
	ClassEngineExit  Class = "engine_exit"  // the serving process exited
	ClassCancelled   Class = "cancelled"    // the run was stopped
)

// Classes lists every class, in report order.
var Classes = []Class{ClassHTTP429, ClassHTTP5xx, ClassHTTP4xx, ClassConnect, ClassTimeout,
	ClassStreamCut, ClassStreamParse, ClassEmptyStream, ClassEngineExit, ClassCancelled}

// Error is a failed request.
type Error struct {
	Class   Class  `json:"class"`
	Message string `json:"message"`
	// Status is the HTTP status, when there was one.
	Status int `json:"status,omitempty"`
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter Duration `json:"retry_after,omitempty"`
	Err        error    `json:"-"`
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d): %s", e.Class, e.Status, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Class, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether an eval may send the request again: the
// server refused it for now, or the connection broke, before any output.
func (e *Error) Retryable() bool {
	switch e.Class {
	case ClassHTTP429, ClassHTTP5xx, ClassConnect, ClassTimeout, ClassStreamCut:
		return true
	}
	return false
}

// Errorf returns an *Error of class c.
func Errorf(c Class, format string, a ...any) *Error {
	return &Error{Class: c, Message: fmt.Sprintf(format, a...)}
}

// AsError returns err as an *Error, classifying errors that are not one:
// a context deadline is ClassTimeout, a cancellation ClassCancelled and
// anything else ClassConnect.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Class: ClassTimeout, Message: err.Error(), Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Class: ClassCancelled, Message: err.Error(), Err: err}
	}
	return &Error{Class: ClassConnect, Message: err.Error(), Err: err}
}

// Retry is how an eval retries a failed request: capped exponential
// backoff with full jitter, at least the server's Retry-After, and only
// before the stream started. The zero value never retries, which is what
// benchmarks use: a retried request hides latency.
type Retry struct {
	Attempts int           // total attempts; 0 and 1 mean one
	Base     time.Duration // first backoff; zero means 250ms
	Max      time.Duration // cap on one wait; zero means 10s
	// MaxRetryAfter is the longest Retry-After the runner waits for; a
	// server asking for longer fails the request. Zero means a minute.
	MaxRetryAfter time.Duration
}
