package openai

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// sseReader reads Server-Sent Events as OpenAI-compatible servers send
// them (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
// lines end in "\n" or "\r\n"; an event ends at a blank line; only data
// fields matter, with or without the space after the colon, and several
// data lines are joined with "\n"; lines starting with ":" are comments
// (pings); other fields (event, id, retry) are ignored. A lone "\r" does
// not end a line: no server this reads sends one.
type sseReader struct {
	br    *bufio.Reader
	long  []byte // a line longer than br's buffer
	data  []byte
	first bool // no line read yet (a byte order mark may start the stream)
}

// maxLine bounds one line; a longer one is not an OpenAI event.
const maxLine = 8 << 20

var errLineTooLong = errors.New("a stream line is longer than 8 MiB")

func newSSEReader() *sseReader { return &sseReader{br: bufio.NewReaderSize(nil, 8<<10)} }

func (s *sseReader) reset(r io.Reader) {
	s.br.Reset(r)
	s.data, s.first = s.data[:0], true
	if cap(s.long) > 64<<10 {
		s.long = nil
	}
	if cap(s.data) > 64<<10 {
		s.data = nil
	}
}

// next returns the data of the next event that has a data field; the
// slice is valid until the next call. At the end of the body it returns
// io.EOF, with the data of an event the body ended in, before its blank
// line, if there was one (the caller decides whether it is whole). Any
// other error is the body's.
func (s *sseReader) next() ([]byte, error) {
	if s.data == nil {
		s.data = make([]byte, 0, 512) // never nil: an empty trailing event is one
	}
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.line()
		if err == nil && len(line) == 0 { // a blank line ends the event
			if have {
				return s.data, nil
			}
			continue
		}
		if len(line) > 0 && line[0] != ':' {
			name, value, _ := bytes.Cut(line, []byte(":"))
			if string(name) == "data" {
				if len(value) > 0 && value[0] == ' ' {
					value = value[1:]
				}
				if have {
					s.data = append(s.data, '\n')
				}
				s.data = append(s.data, value...)
				have = true
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && have {
				return s.data, io.EOF
			}
			return nil, err
		}
	}
}

// line reads one line without its "\n" or "\r\n". At the end of the body
// it returns the unterminated rest, maybe empty, with io.EOF.
func (s *sseReader) line() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.br.ReadSlice('\n')
			s.long = append(s.long, line...)
			if len(s.long) > maxLine {
				return nil, errLineTooLong
			}
		}
		line = s.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if s.first {
		s.first = false
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
	}
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	return line[:n], err
}
