package openai

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/airlock-dev/airlock/runner"
)

type sseEvents struct {
	events   []string
	trailing string
	hasTrail bool
}

// readAll reads every event from r with a small buffer, so that long
// lines take the slow path.
func readAll(r io.Reader, size int) (sseEvents, error) {
	s := &sseReader{br: bufio.NewReaderSize(nil, size)}
	s.reset(r)
	var out sseEvents
	for {
		data, err := s.next()
		if errors.Is(err, io.EOF) {
			if data != nil {
				out.trailing, out.hasTrail = string(data), true
			}
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out.events = append(out.events, string(data))
	}
}

// referenceSSE parses a whole stream by the rules sseReader documents,
// the plain way.
func referenceSSE(b string) sseEvents {
	b = strings.TrimPrefix(b, "\xef\xbb\xbf")
	lines := strings.Split(b, "\n")
	var out sseEvents
	var data []string
	have := false
	for i, line := range lines {
		last := i == len(lines)-1
		line = strings.TrimSuffix(line, "\r")
		if !last && line == "" {
			if have {
				out.events = append(out.events, strings.Join(data, "\n"))
			}
			data, have = nil, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		if name == "data" {
			data = append(data, strings.TrimPrefix(value, " "))
			have = true
		}
	}
	if have {
		out.trailing, out.hasTrail = strings.Join(data, "\n"), true
	}
	return out
}

func TestSSEReader(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     sseEvents
	}{
		{"events", "data: a\n\ndata:b\n\n", sseEvents{events: []string{"a", "b"}}},
		{"CRLF", "data: a\r\n\r\ndata: b\r\n\r\n", sseEvents{events: []string{"a", "b"}}},
		{"multi-line data", "data: a\ndata:  b\n\n", sseEvents{events: []string{"a\n b"}}},
		{"comments and other fields", ": ping\nevent: x\nid: 3\nretry: 5\ndata: a\n\n:\n\n", sseEvents{events: []string{"a"}}},
		{"blank lines between events", "\n\n\ndata: a\n\n\n\n", sseEvents{events: []string{"a"}}},
		{"data without a colon", "data\n\n", sseEvents{events: []string{""}}},
		{"trailing event", "data: a\n\ndata: {\"b\":1}", sseEvents{events: []string{"a"}, trailing: `{"b":1}`, hasTrail: true}},
		{"trailing event with its newline", "data: a\n", sseEvents{trailing: "a", hasTrail: true}},
		{"trailing data lines", "data: a\ndata: b", sseEvents{trailing: "a\nb", hasTrail: true}},
		{"byte order mark", "\xef\xbb\xbfdata: a\n\n", sseEvents{events: []string{"a"}}},
		{"a long line", "data: " + strings.Repeat("x", 100) + "\n\n", sseEvents{events: []string{strings.Repeat("x", 100)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				got, err := readAll(strings.NewReader(tc.in), size)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.events, tc.want.events) || got.trailing != tc.want.trailing || got.hasTrail != tc.want.hasTrail {
					t.Errorf("buffer %d: got %+v, want %+v", size, got, tc.want)
				}
			}
			if ref := referenceSSE(tc.in); !slices.Equal(ref.events, tc.want.events) || ref.trailing != tc.want.trailing {
				t.Errorf("the reference disagrees with the table: %+v", ref)
			}
		})
	}
}

func TestSSEReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := readAll(io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom)), 4096)
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the body's", err)
	}
}

// FuzzSSE checks the reader against the plain reference, reading the
// input a byte at a time through a small buffer and whole through a large
// one.
func FuzzSSE(f *testing.F) {
	f.Add([]byte(goodStream))
	f.Add([]byte(strings.ReplaceAll(goodStream, "\n", "\r\n")))
	f.Add([]byte("data: {\"choices\":[{\"text\":\"a\"}]}\r\n\r\ndata: [DONE]"))
	f.Add([]byte(": c\nevent: x\ndata: 1\ndata:2\n\ndata\n\n\xef\xbb\xbfdata: x\r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := referenceSSE(string(b))
		for _, bytewise := range []bool{false, true} {
			for _, size := range []int{16, 4096} {
				var r io.Reader = bytes.NewReader(b)
				if bytewise {
					r = iotest.OneByteReader(r)
				}
				got, err := readAll(r, size)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.events, want.events) || got.trailing != want.trailing || got.hasTrail != want.hasTrail {
					t.Fatalf("%q (buffer %d, a byte at a time %t):\ngot  %+v\nwant %+v", b, size, bytewise, got, want)
				}
			}
		}
	})
}

// outcome is what reading a stream recorded.
type outcome struct {
	kinds  string
	chars  []int
	output string
	finish string
	class  runner.Class
	done   bool
}

func readStream(t *testing.T, r io.Reader) outcome {
	t.Helper()
	rd := &reader{sse: newSSEReader()}
	rd.reset(r)
	tl := runner.NewTimeline("f", time.Now())
	tl.MarkSent()
	done, err := rd.stream(context.Background(), tl, true)
	o := outcome{kinds: kinds(tl), output: tl.Output, finish: tl.FinishReason, class: classOf(err), done: done}
	generated, content := false, 0
	for i, ev := range tl.Events {
		o.chars = append(o.chars, ev.Chars)
		generated = generated || ev.Kind.Generated()
		switch {
		case i > 0 && ev.At < tl.Events[i-1].At:
			t.Fatalf("event %d at %v before event %d", i, ev.At, i-1)
		case ev.Chars < 0:
			t.Fatalf("event %+v", ev)
		case ev.Kind == runner.EventContent || ev.Kind == runner.EventReasoning:
			if ev.Chars == 0 {
				t.Fatalf("event %d: %s without text", i, ev.Kind)
			}
		case ev.Kind == runner.EventResponse:
			t.Fatal("a stream recorded a whole response")
		}
		if ev.Kind == runner.EventContent {
			content += ev.Chars
		}
	}
	if content != len(tl.Output) {
		t.Fatalf("content events have %d chars, the output %d", content, len(tl.Output))
	}
	switch o.class {
	case "":
		if !generated || (!done && tl.FinishReason == "") {
			t.Fatalf("success without output or an end: %+v", tl)
		}
	case runner.ClassStreamCut, runner.ClassStreamParse, runner.ClassHTTP4xx, runner.ClassHTTP5xx, runner.ClassHTTP429:
	case runner.ClassEmptyStream:
		if generated {
			t.Fatal("empty_stream with generated output")
		}
	default:
		t.Fatalf("class %q for a stream read from memory", o.class)
	}
	return o
}

// FuzzStream reads arbitrary bodies as streams: the events are
// consistent (ordered, content adds up to the output, success means
// output and an end) and the same whichever way the bytes arrive.
func FuzzStream(f *testing.F) {
	f.Add([]byte(goodStream))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}],\"usage\":{\"completion_tokens\":1}}"))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"r\",\"tool_calls\":[{}]}}]}\n\ndata: {\"error\":{\"code\":429}}\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"text\":\"\\ud83d\\ude00\"}]}\n\ndata: {\"choi"))
	f.Fuzz(func(t *testing.T, b []byte) {
		whole := readStream(t, bytes.NewReader(b))
		bytewise := readStream(t, iotest.OneByteReader(bytes.NewReader(b)))
		if whole.kinds != bytewise.kinds || !slices.Equal(whole.chars, bytewise.chars) || whole.output != bytewise.output ||
			whole.finish != bytewise.finish || whole.class != bytewise.class || whole.done != bytewise.done {
			t.Fatalf("%q read whole: %+v, a byte at a time: %+v", b, whole, bytewise)
		}
	})
}
