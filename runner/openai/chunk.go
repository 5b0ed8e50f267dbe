package openai

import (
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// A streamed chunk is decoded by a small scanner instead of
// encoding/json: a benchmark reads tens of thousands of chunks a second,
// and the scanner reads the few fields the runner needs without
// allocating. It accepts exactly what encoding/json accepts (FuzzChunk
// checks both, field by field); duplicate keys keep the last value, as
// encoding/json does.

// errSyntax is a chunk that is not JSON; errShape one whose known fields
// have the wrong type. Both are the stream_parse class.
var (
	errSyntax = errors.New("not JSON")
	errShape  = errors.New("not the OpenAI chunk shape")
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// span is a JSON string in the chunk: its bytes between the quotes.
type span struct {
	start, end int
	esc        bool // has escapes: decode with appendUnescaped
	set        bool // present and not null
}

func (s span) raw(b []byte) []byte { return b[s.start:s.end] }

// chunk is what one chat.completion.chunk or text_completion event says,
// summed over its choices (one, unless the request asked for n > 1).
type chunk struct {
	// choices is the number of choices; 0 when the list is absent,
	// null or empty (the usage-only chunk).
	choices int
	// content and reasoning are the generated text of the chunk:
	// delta.content and text (completions); reasoning_content, or
	// reasoning when that is empty (servers renamed the field and some
	// send both).
	content, reasoning []span
	toolCalls          bool // a non-empty delta.tool_calls
	role               bool // a delta.role
	finish             span // the last non-null finish_reason
	usage              usage
	// apiError is an error event ({"error": ...} or {"object": "error"}),
	// which vLLM sends mid-stream when generation fails.
	apiError struct {
		set     bool
		message span
		code    int
	}
}

// usage is the usage object; a null count is zero.
type usage struct {
	set                bool
	prompt, completion int
}

func (c *chunk) reset() {
	content, reasoning := c.content[:0], c.reasoning[:0]
	*c = chunk{content: content, reasoning: reasoning}
}

// scanner walks one JSON value.
type scanner struct {
	b     []byte
	i     int
	depth int
	key   []byte // an escaped key, decoded
}

// parseChunk decodes b into c. It fails with errSyntax when b is not
// JSON, and errShape when it is JSON but a field the runner reads has the
// wrong type.
func parseChunk(b []byte, c *chunk) error {
	c.reset()
	s := scanner{b: b}
	err := s.chunk(c)
	if err == nil {
		s.ws()
		if s.i != len(b) {
			err = errSyntax
		}
	}
	if errors.Is(err, errShape) && !valid(b) {
		// encoding/json reports a syntax error before a type error.
		err = errSyntax
	}
	return err
}

// valid reports whether b is one JSON value.
func valid(b []byte) bool {
	s := scanner{b: b}
	if s.value() != nil {
		return false
	}
	s.ws()
	return s.i == len(b)
}

func (s *scanner) chunk(c *chunk) error {
	s.ws()
	if !s.peek('{') {
		return errShape
	}
	var object, message span
	code, errSet := 0, false
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "choices":
			return s.choices(c)
		case "usage":
			return s.usage(c)
		case "error":
			return s.errorValue(c, &errSet)
		case "object":
			return s.optStr(&object)
		case "message":
			return s.optStr(&message)
		case "code":
			return s.optInt(&code)
		}
		return s.value()
	})
	if err != nil {
		return err
	}
	if !errSet && s.equal(object, "error") {
		errSet = true
		c.apiError.message, c.apiError.code = message, code
	}
	c.apiError.set = errSet
	return nil
}

// equal reports whether the string sp, decoded, is lit.
func (s *scanner) equal(sp span, lit string) bool {
	if !sp.set {
		return false
	}
	if !sp.esc {
		return string(sp.raw(s.b)) == lit
	}
	return string(appendUnescaped(nil, sp.raw(s.b))) == lit
}

// choices reads the choices list; a second list replaces the first.
func (s *scanner) choices(c *chunk) error {
	c.choices, c.content, c.reasoning = 0, c.content[:0], c.reasoning[:0]
	c.toolCalls, c.role, c.finish = false, false, span{}
	s.ws()
	if s.null() {
		return nil
	}
	if !s.peek('[') {
		return errShape
	}
	return s.array(func() error {
		s.ws()
		if s.null() {
			return nil // a null choice is skipped
		}
		if !s.peek('{') {
			return errShape
		}
		c.choices++
		var text, finish span
		var d delta
		err := s.object(func(key []byte) error {
			switch string(key) {
			case "delta":
				d = delta{}
				return s.delta(&d)
			case "text":
				return s.str(&text)
			case "finish_reason":
				return s.str(&finish)
			}
			return s.value()
		})
		if err != nil {
			return err
		}
		if d.content.set && d.content.end > d.content.start {
			c.content = append(c.content, d.content)
		}
		if text.set && text.end > text.start {
			c.content = append(c.content, text)
		}
		switch {
		case d.reasoningContent.set && d.reasoningContent.end > d.reasoningContent.start:
			c.reasoning = append(c.reasoning, d.reasoningContent)
		case d.reasoning.set && d.reasoning.end > d.reasoning.start:
			c.reasoning = append(c.reasoning, d.reasoning)
		}
		c.toolCalls = c.toolCalls || d.toolCalls
		c.role = c.role || d.role.set
		if finish.set {
			c.finish = finish
		}
		return nil
	})
}

type delta struct {
	role, content, reasoningContent, reasoning span
	toolCalls                                  bool
}

func (s *scanner) delta(d *delta) error {
	s.ws()
	if s.null() {
		return nil
	}
	if !s.peek('{') {
		return errShape
	}
	return s.object(func(key []byte) error {
		switch string(key) {
		case "role":
			return s.str(&d.role)
		case "content":
			return s.str(&d.content)
		case "reasoning_content":
			return s.str(&d.reasoningContent)
		case "reasoning":
			return s.str(&d.reasoning)
		case "tool_calls":
			s.ws()
			d.toolCalls = false
			if s.null() {
				return nil
			}
			if !s.peek('[') {
				return errShape
			}
			n := 0
			err := s.array(func() error { n++; return s.value() })
			d.toolCalls = n > 0
			return err
		}
		return s.value()
	})
}

// usage reads the usage object; a second one replaces the first.
func (s *scanner) usage(c *chunk) error {
	u := &c.usage
	*u = usage{}
	s.ws()
	if s.null() {
		return nil
	}
	if !s.peek('{') {
		return errShape
	}
	u.set = true
	return s.object(func(key []byte) error {
		switch string(key) {
		case "prompt_tokens":
			return s.integer(&u.prompt)
		case "completion_tokens":
			return s.integer(&u.completion)
		}
		return s.value()
	})
}

// errorValue reads "error": null is no error; an object is one, with
// its last string "message" and integer "code"; any other value is one
// with that message when it is a string.
func (s *scanner) errorValue(c *chunk, set *bool) error {
	e := &c.apiError
	e.message, e.code = span{}, 0
	s.ws()
	if *set = !s.null(); !*set {
		return nil
	}
	if !s.peek('{') {
		return s.optStr(&e.message)
	}
	return s.object(func(key []byte) error {
		switch string(key) {
		case "message":
			return s.optStr(&e.message)
		case "code":
			return s.optInt(&e.code)
		}
		return s.value()
	})
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

// null consumes a null literal if one is next.
func (s *scanner) null() bool {
	if s.i+4 <= len(s.b) && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// object reads an object at s.i ('{' next), calling field with each key,
// decoded, and s.i at its value; field must consume the value, and may
// use the key only until it reads further.
func (s *scanner) object(field func(key []byte) error) error {
	s.i++ // '{'
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.ws()
	if s.peek('}') {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.ws()
		var k span
		if err := s.strRaw(&k); err != nil {
			return err
		}
		key := k.raw(s.b)
		if k.esc {
			s.key = appendUnescaped(s.key[:0], key)
			key = s.key
		}
		s.ws()
		if !s.peek(':') {
			return errSyntax
		}
		s.i++
		if err := field(key); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// array reads an array at s.i ('[' next), calling elem with s.i at each
// element; elem must consume it.
func (s *scanner) array(elem func() error) error {
	s.i++ // '['
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.ws()
	if s.peek(']') {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// value skips any JSON value.
func (s *scanner) value() error {
	s.ws()
	if s.i >= len(s.b) {
		return errSyntax
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(func([]byte) error { return s.value() })
	case c == '[':
		return s.array(s.value)
	case c == '"':
		var sp span
		return s.strRaw(&sp)
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, err := s.number()
		return err
	}
	return errSyntax
}

func (s *scanner) literal(lit string) error {
	if s.i+len(lit) <= len(s.b) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return nil
	}
	return errSyntax
}

// str reads a string or null into sp (null unsets it); another type is
// errShape.
func (s *scanner) str(sp *span) error {
	s.ws()
	if s.null() {
		*sp = span{}
		return nil
	}
	if !s.peek('"') {
		return errShape
	}
	return s.strRaw(sp)
}

// optStr reads a string into sp, and unsets it for any other value.
func (s *scanner) optStr(sp *span) error {
	s.ws()
	if s.peek('"') {
		return s.strRaw(sp)
	}
	*sp = span{}
	return s.value()
}

// optInt reads an integer into n, and sets it to zero for any other
// value.
func (s *scanner) optInt(n *int) error {
	s.ws()
	*n = 0
	if s.peek('-') || (s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		v, ok, err := s.number()
		if ok {
			*n = v
		}
		return err
	}
	return s.value()
}

// strRaw reads a string at s.i.
func (s *scanner) strRaw(sp *span) error {
	if !s.peek('"') {
		return errSyntax
	}
	s.i++
	start, esc := s.i, false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			*sp = span{start: start, end: s.i, esc: esc, set: true}
			s.i++
			return nil
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				return errSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return errSyntax
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if unhex(h) < 0 {
						return errSyntax
					}
				}
				s.i += 6
			default:
				return errSyntax
			}
		case c < 0x20:
			return errSyntax
		default:
			s.i++
		}
	}
	return errSyntax
}

// number reads a JSON number. ok reports an integer (no fraction or
// exponent) that fits an int, and n is its value.
func (s *scanner) number() (n int, ok bool, err error) {
	neg := s.peek('-')
	if neg {
		s.i++
	}
	ok = true
	switch {
	case s.peek('0'):
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		const maxInt = int(^uint(0) >> 1)
		for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9'; s.i++ {
			d := int(s.b[s.i] - '0')
			if n > (maxInt-d)/10 {
				ok = false
			}
			n = n*10 + d
		}
	default:
		return 0, false, errSyntax
	}
	if s.peek('.') {
		ok = false
		s.i++
		if !s.digits() {
			return 0, false, errSyntax
		}
	}
	if s.peek('e') || s.peek('E') {
		ok = false
		s.i++
		if s.peek('+') || s.peek('-') {
			s.i++
		}
		if !s.digits() {
			return 0, false, errSyntax
		}
	}
	if !ok {
		return 0, false, nil
	}
	if neg {
		n = -n
	}
	return n, true, nil
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// integer reads an integer or null (zero); a fraction, an exponent, a
// value out of range or another type is errShape, as it is for
// encoding/json decoding into an int.
func (s *scanner) integer(n *int) error {
	s.ws()
	if s.null() {
		*n = 0
		return nil
	}
	if !s.peek('-') && (s.i >= len(s.b) || s.b[s.i] < '0' || s.b[s.i] > '9') {
		return errShape
	}
	v, ok, err := s.number()
	if err != nil {
		return err
	}
	if !ok {
		return errShape
	}
	*n = v
	return nil
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// appendUnescaped appends the decoded JSON string raw (without quotes,
// already validated by strRaw) to dst, as encoding/json decodes it:
// escapes resolved, UTF-16 surrogate pairs joined, lone surrogates and
// invalid UTF-8 replaced by U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case '"', '\\', '/':
				dst = append(dst, raw[i+1])
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						if pair := utf16.DecodeRune(r, hex4(raw[i+2:])); pair != utf8.RuneError {
							dst = utf8.AppendRune(dst, pair)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+n]...)
			}
			i += n
		}
	}
	return dst
}

func hex4(b []byte) rune {
	return unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3])
}
