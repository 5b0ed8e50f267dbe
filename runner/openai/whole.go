package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"

	"github.com/airlock-dev/airlock/runner"
)

// response is the part of a whole (non-streamed) chat.completion or
// text_completion the runner reads.
type response struct {
	Choices []choice        `json:"choices"`
	Usage   *runner.Usage   `json:"usage"`
	Error   json.RawMessage `json:"error"`
	Object  string          `json:"object"` // "error" in vLLM's error shape
	Message string          `json:"message"`
}

type choice struct {
	Index   int     `json:"index"`
	Text    *string `json:"text"`
	Message *struct {
		Content          *string           `json:"content"`
		ReasoningContent *string           `json:"reasoning_content"`
		Reasoning        *string           `json:"reasoning"`
		ToolCalls        []json.RawMessage `json:"tool_calls"`
	} `json:"message"`
	FinishReason *string `json:"finish_reason"`
}

// maxResponse bounds a whole response.
const maxResponse = 64 << 20

// readResponse reads and decodes a whole response.
func readResponse(ctx context.Context, body io.Reader) (*response, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxResponse+1))
	if err != nil {
		return nil, readError(ctx, err)
	}
	if len(b) > maxResponse {
		return nil, runner.Errorf(runner.ClassStreamParse, "the response is longer than %d MiB", maxResponse>>20)
	}
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, &runner.Error{Class: runner.ClassStreamParse, Message: "the response is not OpenAI JSON: " + err.Error(), Err: err}
	}
	if len(r.Error) > 0 && string(r.Error) != "null" {
		var inner struct {
			Code json.RawMessage `json:"code"`
		}
		var code int
		if json.Unmarshal(r.Error, &inner) == nil {
			_ = json.Unmarshal(inner.Code, &code)
		}
		return nil, apiError(code, errorMessage(b))
	}
	if r.Object == "error" {
		return nil, apiError(0, r.Message)
	}
	return &r, nil
}

// whole reads a whole response into tl: one response event.
func (e *Engine) whole(ctx context.Context, body io.Reader, tl *runner.Timeline) error {
	r, err := readResponse(ctx, body)
	if err != nil {
		return err
	}
	if r.Usage != nil {
		u := *r.Usage
		tl.Usage = &u
	}
	if len(r.Choices) == 0 {
		return runner.Errorf(runner.ClassEmptyStream, "the response has no choices")
	}
	ch := &r.Choices[0]
	for i := range r.Choices { // n > 1: the first choice is the answer
		if r.Choices[i].Index == 0 {
			ch = &r.Choices[i]
			break
		}
	}
	return e.answer(tl, ch, -1)
}

// answer records a choice of a whole response in tl: a response event at
// at (now when negative) whose Chars are the text and reasoning, the
// finish reason and, with KeepOutput, the text. A choice with neither
// text, reasoning nor tool calls is the empty_stream class.
func (e *Engine) answer(tl *runner.Timeline, ch *choice, at runner.Duration) error {
	text, reasoning, tools := str(ch.Text), 0, false
	if m := ch.Message; m != nil {
		text += str(m.Content)
		reasoning = len(str(m.ReasoningContent))
		if reasoning == 0 {
			reasoning = len(str(m.Reasoning))
		}
		tools = len(m.ToolCalls) > 0
	}
	tl.FinishReason = str(ch.FinishReason)
	if e.opts.KeepOutput {
		tl.Output = text
	}
	if text == "" && reasoning == 0 && !tools {
		return runner.Errorf(runner.ClassEmptyStream, "the response (finish_reason %q) has no output", tl.FinishReason)
	}
	if at < 0 {
		tl.Add(runner.EventResponse, len(text)+reasoning, 0)
	} else {
		tl.Events = append(tl.Events, runner.Event{At: at, Kind: runner.EventResponse, Chars: len(text) + reasoning})
	}
	return nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// DoBatch sends completion requests as one non-streamed request to
// /v1/completions with a list of prompts, and gives each request its
// choice (matched by choices[].index, not by order). Every timeline of
// the batch has the same send and end times (to within the loop that
// marks them) and one response event at the end.
//
// Only non-streamed completion requests can be batched; anything else
// fails the whole call before sending. Requests with different models or
// sampling settings (max tokens, temperature, seed, ignore_eos, extra
// fields) are sent as one batch per setting, concurrently.
//
// The server's usage covers the whole batch, so a request's Usage is set
// only for a batch of one; for larger batches it is nil and the runner
// falls back to counting the response as one event (runner.Summarize
// reports such requests as client-counted). A prompt that got no choice,
// or an empty one, has the empty_stream class in its timeline.
func (e *Engine) DoBatch(ctx context.Context, reqs []*runner.Request, tls []*runner.Timeline) error {
	if len(reqs) != len(tls) {
		return errBatch("%d requests with %d timelines", len(reqs), len(tls))
	}
	if len(reqs) == 0 {
		return nil
	}
	for _, r := range reqs {
		if r.Kind != runner.Completion || !r.NoStream {
			return errBatch("request %q: only non-streamed completion requests can be batched (kind %s, streamed %t)", r.ID, r.Kind, !r.NoStream)
		}
	}
	// Group requests that can share a body, keeping their order.
	var groups [][]int
	for i, r := range reqs {
		placed := false
		for g, idx := range groups {
			if e.sameSettings(reqs[idx[0]], r) {
				groups[g] = append(groups[g], i)
				placed = true
				break
			}
		}
		if !placed {
			groups = append(groups, []int{i})
		}
	}
	if len(groups) == 1 {
		return e.batch(ctx, reqs, tls)
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for g, idx := range groups {
		rs, ts := make([]*runner.Request, len(idx)), make([]*runner.Timeline, len(idx))
		for k, i := range idx {
			rs[k], ts[k] = reqs[i], tls[i]
		}
		wg.Go(func() { errs[g] = e.batch(ctx, rs, ts) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sameSettings reports whether a and b can go in one batch.
func (e *Engine) sameSettings(a, b *runner.Request) bool {
	if e.modelOf(a) != e.modelOf(b) || a.MaxTokens != b.MaxTokens || a.IgnoreEOS != b.IgnoreEOS ||
		!samePtr(a.Temperature, b.Temperature) || !samePtr(a.Seed, b.Seed) || len(a.Extra) != len(b.Extra) {
		return false
	}
	for k, v := range a.Extra {
		w, ok := b.Extra[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func (e *Engine) modelOf(r *runner.Request) string {
	if r.Model != "" {
		return r.Model
	}
	return e.Model()
}

func samePtr[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// batch sends requests that share their settings as one request.
func (e *Engine) batch(ctx context.Context, reqs []*runner.Request, tls []*runner.Timeline) error {
	failAll := func(err error) error {
		re := runner.AsError(err)
		for _, tl := range tls {
			if tl.Status == 0 {
				tl.Status = re.Status
			}
			tl.Error = re
		}
		return re
	}
	finish := func() {
		for _, tl := range tls {
			tl.Finish()
		}
	}
	prompts := make([]string, len(reqs))
	for i, r := range reqs {
		prompts[i] = r.Prompt
	}
	payload, err := e.encode(reqs[0], e.modelOf(reqs[0]), prompts)
	if err == nil {
		for _, r := range reqs[1:] {
			if err = r.Validate(); err != nil {
				err = invalid("%v", err)
				break
			}
		}
	}
	var hr *http.Request
	if err == nil {
		hr, err = e.newRequest(ctx, e.compl, payload, reqs[0].ID, false)
	}
	if err != nil {
		for _, tl := range tls {
			tl.MarkSent()
		}
		finish()
		return failAll(err)
	}
	for _, tl := range tls {
		tl.MarkSent()
	}
	resp, err := e.client.Do(hr)
	if err != nil {
		finish()
		return failAll(transportError(ctx, err))
	}
	defer resp.Body.Close()
	for _, tl := range tls {
		tl.Status = resp.StatusCode
	}
	if resp.StatusCode/100 != 2 {
		err := statusError(resp)
		finish()
		return failAll(err)
	}
	r, err := readResponse(ctx, resp.Body)
	finish()
	if err != nil {
		return failAll(err)
	}
	got := make([]bool, len(reqs))
	for i := range r.Choices {
		ch := &r.Choices[i]
		if ch.Index < 0 || ch.Index >= len(reqs) || got[ch.Index] {
			return failAll(runner.Errorf(runner.ClassStreamParse, "the batch response has choice index %d for %d prompts (a request with n > 1?)", ch.Index, len(reqs)))
		}
		got[ch.Index] = true
	}
	for i := range r.Choices {
		ch := &r.Choices[i]
		tl := tls[ch.Index]
		if err := e.answer(tl, ch, tl.Done); err != nil {
			tl.Error = runner.AsError(err)
		}
	}
	for i, ok := range got {
		if !ok {
			tls[i].Error = runner.Errorf(runner.ClassEmptyStream, "the batch response has no choice for prompt %d of %d", i, len(reqs))
		}
	}
	if len(reqs) == 1 && r.Usage != nil {
		u := *r.Usage
		tls[0].Usage = &u
	}
	return nil
}
