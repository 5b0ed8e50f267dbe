package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

// decoded is what a chunk says, decoded, for comparing the scanner with
// the reference below.
type decoded struct {
	Choices            int
	Content, Reasoning string
	ToolCalls, Role    bool
	Finish             string
	FinishSet          bool
	Usage              bool
	Prompt, Completion int
	Error              bool
	ErrorMessage       string
	ErrorCode          int
}

func scan(b []byte) (decoded, error) {
	var c chunk
	if err := parseChunk(b, &c); err != nil {
		return decoded{}, err
	}
	d := decoded{Choices: c.choices, ToolCalls: c.toolCalls, Role: c.role,
		Content: string(appendText(nil, b, c.content)), Reasoning: string(appendText(nil, b, c.reasoning)),
		Usage: c.usage.set, Prompt: c.usage.prompt, Completion: c.usage.completion,
		Error: c.apiError.set, ErrorCode: c.apiError.code}
	if c.finish.set {
		d.Finish, d.FinishSet = string(appendText(nil, b, []span{c.finish})), true
	}
	if c.apiError.set && c.apiError.message.set {
		d.ErrorMessage = string(appendText(nil, b, []span{c.apiError.message}))
	}
	return d, nil
}

func TestParseChunk(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     decoded
		err      error
	}{
		{name: "role chunk", in: `{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
			want: decoded{Choices: 1, Role: true}},
		{name: "content with escapes", in: `{"choices":[{"delta":{"content":"a\"b\\c\n\u00e9\ud83d\ude00\/"}}]}`,
			want: decoded{Choices: 1, Content: "a\"b\\c\né😀/"}},
		{name: "lone surrogate", in: `{"choices":[{"delta":{"content":"\ud800x"}}]}`,
			want: decoded{Choices: 1, Content: "\uFFFDx"}},
		{name: "completion text and finish", in: `{"choices":[{"text":" b","finish_reason":"length"}]}`,
			want: decoded{Choices: 1, Content: " b", Finish: "length", FinishSet: true}},
		{name: "usage only", in: `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":null}}`,
			want: decoded{Usage: true, Prompt: 3, Completion: 2}},
		{name: "reasoning_content before reasoning", in: `{"choices":[{"delta":{"reasoning_content":"r1","reasoning":"r2"}}]}`,
			want: decoded{Choices: 1, Reasoning: "r1"}},
		{name: "reasoning alone", in: `{"choices":[{"delta":{"reasoning_content":null,"reasoning":"r2"}}]}`,
			want: decoded{Choices: 1, Reasoning: "r2"}},
		{name: "tool calls", in: `{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}]}`,
			want: decoded{Choices: 1, ToolCalls: true}},
		{name: "empty tool calls", in: `{"choices":[{"delta":{"tool_calls":[]}}]}`, want: decoded{Choices: 1}},
		{name: "two choices", in: `{"choices":[{"index":0,"delta":{"content":"a"}},null,{"index":1,"delta":{"content":"b"},"finish_reason":"stop"}]}`,
			want: decoded{Choices: 2, Content: "ab", Finish: "stop", FinishSet: true}},
		{name: "duplicate keys: the last wins", in: `{"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b","content":"c"}}]}`,
			want: decoded{Choices: 1, Content: "c"}},
		{name: "escaped key", in: `{"\u0063hoices":[{"delta":{"content":"a"}}]}`, want: decoded{Choices: 1, Content: "a"}},
		{name: "error object", in: `{"error":{"message":"boom","code":503,"type":"x"}}`, want: decoded{Error: true, ErrorMessage: "boom", ErrorCode: 503}},
		{name: "vLLM error shape", in: `{"object":"error","message":"too long","type":"BadRequestError","code":400}`, want: decoded{Error: true, ErrorMessage: "too long", ErrorCode: 400}},
		{name: "null error", in: `{"error":null,"choices":[]}`, want: decoded{}},
		{name: "whitespace", in: " \t\r\n{ \"choices\" : [ { \"text\" : \"x\" } ] } \n", want: decoded{Choices: 1, Content: "x"}},
		{name: "not JSON", in: `{not json`, err: errSyntax},
		{name: "truncated", in: `{"choices":[{"delta":{"content":"a`, err: errSyntax},
		{name: "trailing garbage", in: `{"choices":[]} x`, err: errSyntax},
		{name: "two values", in: `{}{}`, err: errSyntax},
		{name: "control character in a string", in: "{\"choices\":[{\"text\":\"a\x01\"}]}", err: errSyntax},
		{name: "bad escape", in: `{"choices":[{"text":"\x"}]}`, err: errSyntax},
		{name: "leading zero", in: `{"usage":{"prompt_tokens":01}}`, err: errSyntax},
		{name: "not an object", in: `[1,2]`, err: errShape},
		{name: "content is a number", in: `{"choices":[{"delta":{"content":42}}]}`, err: errShape},
		{name: "choices is an object", in: `{"choices":{}}`, err: errShape},
		{name: "fractional tokens", in: `{"usage":{"completion_tokens":1.5}}`, err: errShape},
		{name: "a type error in invalid JSON is a syntax error", in: `{"choices":{},`, err: errSyntax},
		{name: "too large a count", in: `{"usage":{"completion_tokens":99999999999999999999}}`, err: errShape},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scan([]byte(tc.in))
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if ref, rerr := reference([]byte(tc.in)); !errors.Is(rerr, tc.err) || ref != tc.want {
				t.Errorf("the reference disagrees with the table: %+v, %v", ref, rerr)
			}
		})
	}
}

func TestParseChunkAllocs(t *testing.T) {
	b := []byte(`{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok\n"},"finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`)
	var c chunk
	_ = parseChunk(b, &c)
	if n := testing.AllocsPerRun(100, func() { _ = parseChunk(b, &c) }); n != 0 {
		t.Errorf("parseChunk allocates %v times per chunk, want 0", n)
	}
}

// FuzzChunk checks the scanner against a reference built on
// encoding/json's tokenizer: the same inputs are JSON, the same have the
// wrong shape, and the same fields come out.
func FuzzChunk(f *testing.F) {
	for _, s := range []string{
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":"a\u00e9\ud83d\ude00"},"finish_reason":null}]}`,
		`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`,
		`{"choices":[{"text":"x","finish_reason":"length"}],"usage":null}`,
		`{"choices":[{"delta":{"reasoning_content":"r","tool_calls":[{}]}}]}`,
		`{"error":{"message":"m","code":500}}`,
		`{"object":"error","message":"m","code":400}`,
		`{"\u0063hoices":[null,{"delta":null}],"choices":5}`,
		`[1,{"a":[true,false,null,-0.5e+3]}]`,
		`{"usage":{"completion_tokens":-9223372036854775808}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := scan(b)
		want, werr := reference(b)
		if !errors.Is(err, werr) || (err == nil) != (werr == nil) {
			t.Fatalf("%q: scanner says %v, reference %v", b, err, werr)
		}
		if got != want {
			t.Fatalf("%q:\nscanner   %+v\nreference %+v", b, got, want)
		}
	})
}

// reference decodes a chunk with encoding/json's tokenizer, by the rules
// the scanner documents.
func reference(b []byte) (decoded, error) {
	if !json.Valid(b) {
		return decoded{}, errSyntax
	}
	r := refReader{d: json.NewDecoder(bytes.NewReader(b))}
	r.d.UseNumber()
	var d decoded
	if r.next() != json.Delim('{') {
		return decoded{}, errShape
	}
	var object, message string
	var objectSet, errSet bool
	code := 0
	for {
		k := r.next()
		if k == json.Delim('}') {
			break
		}
		v := r.next()
		var err error
		switch k.(string) {
		case "choices":
			err = r.choices(&d, v)
		case "usage":
			d.Usage, d.Prompt, d.Completion = false, 0, 0
			err = r.usage(&d, v)
		case "error":
			d.ErrorMessage, d.ErrorCode = "", 0
			errSet = v != nil
			if errSet {
				r.errorValue(&d, v)
			}
		case "object":
			object, objectSet = r.optStr(v)
		case "message":
			message, _ = r.optStr(v)
		case "code":
			code = r.optInt(v)
		default:
			r.skip(v)
		}
		if err != nil {
			return decoded{}, err
		}
	}
	if !errSet && objectSet && object == "error" {
		errSet, d.ErrorMessage, d.ErrorCode = true, message, code
	}
	d.Error = errSet
	if !errSet {
		d.ErrorMessage, d.ErrorCode = "", 0
	}
	return d, nil
}

type refReader struct{ d *json.Decoder }

func (r *refReader) next() json.Token {
	t, err := r.d.Token()
	if err != nil {
		panic(err) // the input is valid JSON
	}
	return t
}

// skip consumes the rest of the value that starts with t.
func (r *refReader) skip(t json.Token) {
	if d, ok := t.(json.Delim); ok && (d == '{' || d == '[') {
		for {
			t := r.next()
			if d, ok := t.(json.Delim); ok && (d == '}' || d == ']') {
				return
			}
			r.skip(t)
		}
	}
}

func (r *refReader) str(t json.Token) (string, bool, error) {
	switch v := t.(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	}
	return "", false, errShape
}

func (r *refReader) optStr(t json.Token) (string, bool) {
	if s, ok := t.(string); ok {
		return s, true
	}
	r.skip(t)
	return "", false
}

func refInt(n json.Number) (int, bool) {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || v == math.MinInt64 || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	return int(v), true
}

func (r *refReader) optInt(t json.Token) int {
	if n, ok := t.(json.Number); ok {
		v, _ := refInt(n)
		return v
	}
	r.skip(t)
	return 0
}

func (r *refReader) choices(d *decoded, t json.Token) error {
	d.Choices, d.Content, d.Reasoning, d.ToolCalls, d.Role, d.Finish, d.FinishSet = 0, "", "", false, false, "", false
	if t == nil {
		return nil
	}
	if t != json.Delim('[') {
		return errShape
	}
	for {
		e := r.next()
		if e == json.Delim(']') {
			return nil
		}
		if e == nil {
			continue
		}
		if e != json.Delim('{') {
			return errShape
		}
		d.Choices++
		var text, finish, role, content, rc, rs string
		var finishSet, roleSet, tools bool
		for {
			k := r.next()
			if k == json.Delim('}') {
				break
			}
			v := r.next()
			var err error
			switch k.(string) {
			case "delta":
				role, content, rc, rs, roleSet, tools = "", "", "", "", false, false
				if v == nil {
					break
				}
				if v != json.Delim('{') {
					return errShape
				}
				for {
					dk := r.next()
					if dk == json.Delim('}') {
						break
					}
					dv := r.next()
					switch dk.(string) {
					case "role":
						role, roleSet, err = r.str(dv)
					case "content":
						content, _, err = r.str(dv)
					case "reasoning_content":
						rc, _, err = r.str(dv)
					case "reasoning":
						rs, _, err = r.str(dv)
					case "tool_calls":
						tools = false
						switch {
						case dv == nil:
						case dv == json.Delim('['):
							for {
								x := r.next()
								if x == json.Delim(']') {
									break
								}
								tools = true
								r.skip(x)
							}
						default:
							err = errShape
						}
					default:
						r.skip(dv)
					}
					if err != nil {
						return err
					}
				}
			case "text":
				text, _, err = r.str(v)
			case "finish_reason":
				finish, finishSet, err = r.str(v)
			default:
				r.skip(v)
			}
			if err != nil {
				return err
			}
		}
		_ = role
		d.Content += content + text
		if rc != "" {
			d.Reasoning += rc
		} else {
			d.Reasoning += rs
		}
		d.ToolCalls = d.ToolCalls || tools
		d.Role = d.Role || roleSet
		if finishSet {
			d.Finish, d.FinishSet = finish, true
		}
	}
}

func (r *refReader) usage(d *decoded, t json.Token) error {
	if t == nil {
		return nil
	}
	if t != json.Delim('{') {
		return errShape
	}
	d.Usage = true
	for {
		k := r.next()
		if k == json.Delim('}') {
			return nil
		}
		v := r.next()
		var p *int
		switch k.(string) {
		case "prompt_tokens":
			p = &d.Prompt
		case "completion_tokens":
			p = &d.Completion
		default:
			r.skip(v)
			continue
		}
		switch n := v.(type) {
		case nil:
			*p = 0
		case json.Number:
			i, ok := refInt(n)
			if !ok {
				return errShape
			}
			*p = i
		default:
			return errShape
		}
	}
}

func (r *refReader) errorValue(d *decoded, t json.Token) {
	if t != json.Delim('{') {
		d.ErrorMessage, _ = r.optStr(t)
		return
	}
	for {
		k := r.next()
		if k == json.Delim('}') {
			return
		}
		v := r.next()
		switch k.(string) {
		case "message":
			d.ErrorMessage, _ = r.optStr(v)
		case "code":
			d.ErrorCode = r.optInt(v)
		default:
			r.skip(v)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "quote \" backslash \\ slash /", "\n\r\t\b\f\x00\x1f", "é😀", "bad \xff utf8", "\u2028\u2029", "<&>"} {
		checkString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\n\x00é\xff\u2028")
	f.Fuzz(checkString)
}

// checkString: appendString writes what encoding/json writes (without
// HTML escaping).
func checkString(t *testing.T, s string) {
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	if got := appendString(nil, s); string(got) != strings.TrimSuffix(want.String(), "\n") {
		t.Errorf("appendString(%q) = %s, want %s", s, got, want.String())
	}
}

func BenchmarkParseChunk(b *testing.B) {
	in := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}`)
	b.Run("scanner", func(b *testing.B) {
		b.ReportAllocs()
		var c chunk
		for b.Loop() {
			if err := parseChunk(in, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		var c struct {
			Choices []struct {
				Delta struct {
					Content *string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		for b.Loop() {
			if err := json.Unmarshal(in, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
