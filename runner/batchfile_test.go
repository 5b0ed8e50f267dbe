package runner

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const batchIn = `{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "Capital of "}, {"type": "text", "text": "France?"}]}], "max_completion_tokens": 16, "temperature": 0, "top_p": 0.9}}

{"custom_id": "q2", "method": "POST", "url": "/v1/completions", "body": {"model": "m", "prompt": "2+2=", "max_tokens": 4, "stream": true, "stream_options": {"include_usage": true}}}
`

func TestReadBatch(t *testing.T) {
	got, err := ReadBatch(strings.NewReader(batchIn))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	q1, q2 := got[0], got[1]
	if q1.Kind != Chat || q1.Model != "m" || q1.MaxTokens != 16 || len(q1.Messages) != 2 || q1.Messages[1].Content != "Capital of France?" {
		t.Errorf("q1 = %+v", q1)
	}
	if q1.Temperature == nil || *q1.Temperature != 0 || string(q1.Extra["top_p"]) != "0.9" {
		t.Errorf("q1 temperature %v, extra %s", q1.Temperature, q1.Extra)
	}
	if q2.Kind != Completion || q2.Prompt != "2+2=" || q2.MaxTokens != 4 || q2.Extra != nil {
		t.Errorf("q2 = %+v (stream and stream_options are the runner's to set)", q2)
	}
}

func TestReadBatchErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"custom_id":"a","url":"/v1/embeddings","body":{}}`, `line 1: custom_id "a": url "/v1/embeddings"`},
		{`{"custom_id":"a","method":"GET","url":"/v1/completions","body":{}}`, "method"},
		{`{"url":"/v1/completions","body":{}}`, "custom_id is missing"},
		{`{"custom_id":"a","url":"/v1/completions"}`, "body is missing"},
		{`{"custom_id":"a","url":"/v1/chat/completions","body":{"messages":[]}}`, "needs messages"},
		{`{"custom_id":"a","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}}`, `type "image_url"`},
		{`{"custom_id":"a","url":"/v1/completions","body":{"prompt":["x","y"]}}`, "body.prompt"},
		{"{\"custom_id\":\"a\",\"url\":\"/v1/completions\",\"body\":{}}\n{\"custom_id\":\"a\",\"url\":\"/v1/completions\",\"body\":{}}", `line 2: custom_id "a" already used on line 1`},
		{`not json`, "line 1: not a batch request"},
		{`{"custom_id":"a","url":"/v1/completions","body":{},"extra":1}`, "unknown field"},
		{"\n\n", "no requests"},
	} {
		_, err := ReadBatch(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestWriteBatch(t *testing.T) {
	in, err := ReadBatch(strings.NewReader(batchIn))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Request{"q1": &in[0], "q2": &in[1]}
	tls := []*Timeline{
		{ID: "w", Warmup: true},
		{ID: "q1", Output: "Paris.", FinishReason: "stop", Usage: &Usage{PromptTokens: 9, CompletionTokens: 2}},
		{ID: "q2", Error: &Error{Class: ClassHTTP429, Status: 429, Message: "slow down"}},
		{ID: "q3", Error: &Error{Class: ClassTimeout, Message: "deadline"}},
	}
	var buf bytes.Buffer
	if err := WriteBatch(&buf, byID, tls); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (warm-up is not written):\n%s", len(lines), buf.String())
	}
	var out []batchOut
	for _, l := range lines {
		var o batchOut
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	choice := out[0].Response.Body["choices"].([]any)[0].(map[string]any)
	if out[0].CustomID != "q1" || out[0].Response.StatusCode != 200 || choice["message"].(map[string]any)["content"] != "Paris." {
		t.Errorf("q1 line: %s", lines[0])
	}
	if out[0].Response.Body["usage"].(map[string]any)["total_tokens"] != 11.0 {
		t.Errorf("q1 usage: %s", lines[0])
	}
	if out[1].Response == nil || out[1].Response.StatusCode != 429 || out[1].Error != nil {
		t.Errorf("q2 line: %s", lines[1])
	}
	if out[2].Response != nil || out[2].Error == nil || out[2].Error.Code != "timeout" {
		t.Errorf("q3 line: %s", lines[2])
	}
}

func FuzzReadBatch(f *testing.F) {
	for _, l := range strings.Split(batchIn, "\n") {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"custom_id":"a","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"x"}],"seed":-1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs, err := ReadBatch(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i := range reqs {
			if err := reqs[i].Validate(); err != nil {
				t.Fatalf("ReadBatch returned an invalid request: %v", err)
			}
			if reqs[i].ID == "" {
				t.Fatal("empty custom_id accepted")
			}
		}
	})
}
