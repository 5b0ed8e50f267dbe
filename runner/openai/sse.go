package openai

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// sseReader reads Server-Sent Events as OpenAI-compatible servers send
// them (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// events end at a blank line; only "data:" lines matter, with or without
// the space after the colon; lines starting with ":" are comments (pings);
// other fields (event:, id:, retry:) are ignored. Multi-line data is joined
// with "\n".
type sseReader struct {
	r    *bufio.Reader
	data []byte
}

// sseReaders keeps sseReaders for reuse: a benchmark reads thousands of
// streams a second, and the buffer is most of a request's garbage.
type sseReaders struct{ p sync.Pool }

func (rs *sseReaders) get(r io.Reader) *sseReader {
	s, _ := rs.p.Get().(*sseReader)
	if s == nil {
		s = &sseReader{r: bufio.NewReaderSize(nil, 8<<10)}
	}
	s.r.Reset(r)
	return s
}

// put returns s for reuse; s must not be used after.
func (rs *sseReaders) put(s *sseReader) {
	s.r.Reset(nil)
	if cap(s.data) > 64<<10 {
		s.data = nil
	}
	rs.p.Put(s)
}


// errLineTooLong is returned for a line over the reader's limit.
var errLineTooLong = errors.New("stream line longer than 8 MiB")

const maxLine = 8 << 20

// next returns the data of the next event. The slice is valid until the
// next call. At the end of the stream it returns io.EOF if the stream
// ended cleanly between events, or io.ErrUnexpectedEOF with any partial
// event's data.
func (s *sseReader) next() ([]byte, error) {
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.line()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if have {
					return s.data, io.ErrUnexpectedEOF
				}
				if len(line) == 0 {
					return nil, io.EOF
				}
				// A last line without its newline.
				if v, ok := dataValue(line); ok {
					return append(s.data, v...), io.ErrUnexpectedEOF
				}
				return nil, io.EOF
			}
			return nil, err
		}
		if len(line) == 0 { // blank line: end of event
			if have {
				return s.data, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		if v, ok := dataValue(line); ok {
			if have {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, v...)
			have = true
		}
	}
}

// line reads one line without its "\n" or "\r\n".
func (s *sseReader) line() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.r.ReadSlice('\n')
			long = append(long, line...)
			if len(long) > maxLine {
				return nil, errLineTooLong
			}
		}
		line = long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	eof := err != nil
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if eof {
		return line, io.EOF
	}
	return line, nil
}

func dataValue(line []byte) ([]byte, bool) {
	v, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return nil, false
	}
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return v, true
}
