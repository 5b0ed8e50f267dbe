package runner

import (
	"fmt"
	"strconv"
	"time"
)

// EventKind says what a stream event carried. Only generated deltas
// (Content, Reasoning, ToolCall) count for TTFT and inter-chunk latency; a
// role-only first chunk and the final usage-only chunk do not (runner.md
// (e), complaint 1).
type EventKind string

const (
	EventRole      EventKind = "role"      // a delta with only a role, or empty
	EventContent   EventKind = "content"   // generated text
	EventReasoning EventKind = "reasoning" // reasoning_content / reasoning
	EventToolCall  EventKind = "tool_call" // tool_calls
	EventFinish    EventKind = "finish"    // a chunk with finish_reason and no text
	EventUsage     EventKind = "usage"     // a usage-only chunk (choices: [])
	EventResponse  EventKind = "response"  // a whole non-streamed response
)

// Generated reports whether the event carried generated output.
func (k EventKind) Generated() bool {
	return k == EventContent || k == EventReasoning || k == EventToolCall || k == EventResponse
}

// streamed reports a generated event of a stream (not a whole response):
// the events TTFT and inter-chunk gaps are taken from.
func (k EventKind) streamed() bool { return k.Generated() && k != EventResponse }

// eachGap calls f with each gap between consecutive streamed generated
// events of t (the inter_chunk definition).
func (t *Timeline) eachGap(f func(Duration)) {
	var prev Duration = -1
	for _, e := range t.Events {
		if e.Kind.streamed() {
			if prev >= 0 {
				f(e.At - prev)
			}
			prev = e.At
		}
	}
}

// Event is one stream event, timed from the request's send.
type Event struct {
	At   Duration  `json:"at"`
	Kind EventKind `json:"kind"`
	// Chars is the length of the generated text in bytes.
	Chars int `json:"chars,omitempty"`
	// Tokens is the server's cumulative completion_tokens, when the server
	// sends usage with every chunk (vLLM continuous_usage_stats).
	Tokens int `json:"tokens,omitempty"`
}

// Usage is the server's token count for a request.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Timeline is what happened to one request: when it was meant to go and
// went, every stream event, the server's usage and the outcome. Offsets
// Scheduled and Sent are from the start of the run; event times are from
// Sent. Metrics are computed from timelines afterwards (Summarize), so a
// report can always be recomputed with the definitions it names.
type Timeline struct {
	ID string `json:"id"`
	// Warmup marks a warm-up request: sent, but excluded from statistics.
	Warmup bool `json:"warmup,omitempty"`
	// Scheduled is when the load model meant to send the request; for a
	// closed loop, when a stream became free.
	Scheduled Duration `json:"scheduled"`
	// Sent is when the engine started the HTTP request of the last
	// attempt.
	Sent Duration `json:"sent"`
	// Done is when the response ended (the last byte, [DONE] or the
	// error), from Sent.
	Done   Duration `json:"done"`
	Status int      `json:"status,omitempty"`
	Events []Event  `json:"events,omitempty"`
	// Usage is the server's count; nil when the server sent none.
	Usage *Usage `json:"usage,omitempty"`
	// Output is the generated text, kept for evals; benchmarks drop it
	// unless asked.
	Output       string `json:"output,omitempty"`
	FinishReason string `json:"finish_reason,omitempty"`
	// Attempts is how many times the request was sent (evals retry).
	Attempts int    `json:"attempts"`
	Error    *Error `json:"error,omitempty"`
	// Batch is the size of the batch the request went in, when batched.
	Batch int `json:"batch,omitempty"`

	start time.Time // monotonic base of the run
	sent  time.Time // monotonic send time of the current attempt
}

// NewTimeline returns a timeline whose offsets are taken from start, the
// beginning of the run, on the monotonic clock.
func NewTimeline(id string, start time.Time) *Timeline {
	return &Timeline{ID: id, start: start}
}

// MarkSent records the send of an attempt; engines call it just before
// writing the request. Events of an earlier attempt are dropped.
func (t *Timeline) MarkSent() {
	t.sent = time.Now()
	t.Sent = Duration(t.sent.Sub(t.start))
	t.Attempts++
	t.Events = t.Events[:0]
	t.Usage, t.Output, t.FinishReason, t.Status, t.Error = nil, "", "", 0, nil
}

// Since is the time from the send to now.
func (t *Timeline) Since() Duration { return Duration(time.Since(t.sent)) }

// Add records an event now.
func (t *Timeline) Add(kind EventKind, chars, tokens int) {
	t.Events = append(t.Events, Event{At: t.Since(), Kind: kind, Chars: chars, Tokens: tokens})
}

// Started reports whether a generated event arrived in this attempt: a
// retry would then duplicate output, so it is not retried.
func (t *Timeline) Started() bool {
	for _, e := range t.Events {
		if e.Kind.Generated() {
			return true
		}
	}
	return false
}

// Finish records the end of the response.
func (t *Timeline) Finish() { t.Done = t.Since() }

// Duration is a time.Duration that JSON writes as seconds (a float), the
// base unit of every time in a report.
type Duration time.Duration

// Seconds is d in seconds.
func (d Duration) Seconds() float64 { return time.Duration(d).Seconds() }

func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, d.Seconds(), 'f', -1, 64), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration %s: want seconds as a number", b)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}
