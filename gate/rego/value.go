package rego

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/airlock-dev/airlock/gate"
)

// maxDepth bounds nesting in an input document.
const maxDepth = 256

// lazyMembers is the size from which a flat object (every member a
// string, number, boolean or null) is handed to OPA as an
// ast.LazyObject: its members become terms only when a policy reads
// them. The metrics map is the case in point: hundreds of names, read one
// by one, when at all.
const lazyMembers = 32

// slabSize is how many terms the parser allocates at a time.
const slabSize = 256

// parseValue reads a JSON document straight into OPA's ast.Value, without
// the interface{} tree that decoding and then converting would build. It
// accepts exactly what encoding/json accepts and gives a value equal to
// what util.UnmarshalJSON followed by ast.InterfaceToValue gives; the test
// and the fuzz target compare the two. A document it refuses gets
// encoding/json's own message.
//
// Allocation is what a decision's latency tail is made of, so: strings
// and numbers are slices of one copy of the document, terms come from
// slabs, each object and array is built once at its final size, and
// large flat objects are lazy (lazyMembers).
func parseValue(b []byte) (ast.Value, error) {
	p := parsers.Get().(*jsonParser)
	defer p.release()
	p.s = string(b)
	v, _, err := p.value(0)
	if err == nil {
		p.ws()
		if p.i != len(p.s) {
			err = errSyntax
		}
	}
	if errors.Is(err, errSyntax) {
		var x any
		if jerr := json.Unmarshal(b, &x); jerr != nil {
			return nil, jerr
		}
		return nil, errors.New("invalid JSON") // not reached: the grammars agree (FuzzParseValue)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// errSyntax is any departure from the JSON grammar; parseValue replaces it
// with encoding/json's description.
var errSyntax = errors.New("JSON syntax error")

type member struct {
	k    string
	v    ast.Value
	lazy bool
}

// schemaKeys are terms for the member names of the input schema
// (gate.Input's JSON names), shared by every document parsed.
var schemaKeys = func() map[string]*ast.Term {
	keys := map[string]*ast.Term{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for f := range t.Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				keys[name] = ast.StringTerm(name)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[gate.Input]())
	return keys
}()

// jsonParser reads a valid document. The members and elements of the
// objects and arrays being read are kept on two stacks.
type jsonParser struct {
	s     string
	i     int
	pairs []member
	elems []*ast.Term
	kvs   [][2]*ast.Term
	slab  []ast.Term
	seen  map[string]struct{}
}

// parsers keeps parsers' stacks from one document to the next; the terms
// and values a parser made belong to its document and are not kept.
var parsers = sync.Pool{New: func() any { return new(jsonParser) }}

// maxKept bounds the stacks a pooled parser keeps, so that one huge
// document does not pin its scratch space.
const maxKept = 4096

func (p *jsonParser) release() {
	p.s, p.i, p.slab = "", 0, nil
	if cap(p.pairs) > maxKept || cap(p.elems) > maxKept || cap(p.kvs) > maxKept || len(p.seen) > maxKept {
		return
	}
	p.pairs, p.elems, p.kvs = p.pairs[:0], p.elems[:0], p.kvs[:0]
	parsers.Put(p)
}

func (p *jsonParser) term(v ast.Value) *ast.Term {
	if len(p.slab) == 0 {
		p.slab = make([]ast.Term, slabSize)
	}
	t := &p.slab[0]
	p.slab = p.slab[1:]
	t.Value = v
	return t
}

// peek is the byte at p.i, 0 at the end.
func (p *jsonParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// expect consumes c after optional white space.
func (p *jsonParser) expect(c byte) error {
	p.ws()
	if p.peek() != c {
		return errSyntax
	}
	p.i++
	return nil
}

func (p *jsonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value reads one value; lazy reports an ast.LazyObject.
func (p *jsonParser) value(depth int) (v ast.Value, lazy bool, err error) {
	if depth > maxDepth {
		return nil, false, fmt.Errorf("input nests deeper than %d levels", maxDepth)
	}
	p.ws()
	switch p.peek() {
	case '{':
		p.i++
		base := len(p.pairs)
		p.ws()
		if p.peek() == '}' {
			p.i++
			return ast.NewObject(), false, nil
		}
		for {
			p.ws()
			k, err := p.str()
			if err != nil {
				return nil, false, err
			}
			if err := p.expect(':'); err != nil {
				return nil, false, err
			}
			v, lazy, err := p.value(depth + 1)
			if err != nil {
				return nil, false, err
			}
			p.pairs = append(p.pairs, member{string(k), v, lazy})
			p.ws()
			if p.peek() == ',' {
				p.i++
				continue
			}
			if err := p.expect('}'); err != nil {
				return nil, false, err
			}
			obj, lazy := p.object(p.pairs[base:])
			clear(p.pairs[base:])
			p.pairs = p.pairs[:base]
			return obj, lazy, nil
		}
	case '[':
		p.i++
		base := len(p.elems)
		p.ws()
		if p.peek() == ']' {
			p.i++
			return ast.NewArray(), false, nil
		}
		for {
			v, _, err := p.value(depth + 1) // an array hashes its elements: a lazy one becomes whole here
			if err != nil {
				return nil, false, err
			}
			p.elems = append(p.elems, p.term(v))
			p.ws()
			if p.peek() == ',' {
				p.i++
				continue
			}
			if err := p.expect(']'); err != nil {
				return nil, false, err
			}
			es := p.elems[base:]
			arr := ast.NewArray(append([]*ast.Term(nil), es...)...) // NewArray keeps its slice
			clear(es)
			p.elems = p.elems[:base]
			return arr, false, nil
		}
	case '"':
		s, err := p.str()
		return s, false, err
	case 't':
		return ast.Boolean(true), false, p.literal("true")
	case 'f':
		return ast.Boolean(false), false, p.literal("false")
	case 'n':
		return ast.NullValue, false, p.literal("null")
	default:
		n, err := p.number()
		return n, false, err
	}
}

func (p *jsonParser) literal(word string) error {
	if !strings.HasPrefix(p.s[p.i:], word) {
		return errSyntax
	}
	p.i += len(word)
	return nil
}

func (p *jsonParser) digits() int {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() (ast.Number, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return "", errSyntax
	}
	if p.peek() == '.' {
		p.i++
		if p.digits() == 0 {
			return "", errSyntax
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if p.digits() == 0 {
			return "", errSyntax
		}
		return ast.NumberChecked(p.s[start:p.i]) // OPA refuses exponents it cannot hold
	}
	return ast.Number(p.s[start:p.i]), nil
}

// object builds an object from its members in document order. A repeated
// key keeps its last value, as encoding/json does. An object holding a
// lazy one is lazy too: building an eager object hashes its members, and
// hashing a lazy object converts all of it.
func (p *jsonParser) object(ms []member) (ast.Value, bool) {
	if slices.ContainsFunc(ms, func(m member) bool { return m.lazy }) || len(ms) >= lazyMembers && flat(ms) {
		m := make(map[string]any, len(ms))
		for _, kv := range ms {
			m[kv.k] = kv.v
		}
		return ast.LazyObject(m), true
	}
	if !p.unique(ms) {
		obj := ast.NewObjectWithCapacity(len(ms))
		for _, kv := range ms {
			obj.Insert(p.key(kv.k), p.term(kv.v))
		}
		return obj, false
	}
	kvs := p.kvs[:0]
	for _, kv := range ms {
		kvs = append(kvs, [2]*ast.Term{p.key(kv.k), p.term(kv.v)})
	}
	obj := ast.NewObject(kvs...) // copies the pairs
	clear(kvs)
	p.kvs = kvs
	return obj, false
}

// key is a member name's term: a shared one for the names of the input
// schema (read-only, like OPA's own interned terms), else a new one.
func (p *jsonParser) key(k string) *ast.Term {
	if t, ok := schemaKeys[k]; ok {
		return t
	}
	return p.term(ast.String(k))
}

// unique reports whether no key repeats.
func (p *jsonParser) unique(ms []member) bool {
	if len(ms) <= 8 {
		for i := range ms {
			for j := range i {
				if ms[i].k == ms[j].k {
					return false
				}
			}
		}
		return true
	}
	if p.seen == nil {
		p.seen = map[string]struct{}{}
	}
	clear(p.seen)
	for _, kv := range ms {
		if _, ok := p.seen[kv.k]; ok {
			return false
		}
		p.seen[kv.k] = struct{}{}
	}
	return true
}

func flat(ms []member) bool {
	for _, kv := range ms {
		switch kv.v.(type) {
		case ast.String, ast.Number, ast.Boolean, ast.Null:
		default:
			return false
		}
	}
	return true
}

// str reads a string at p.i. A string without escapes or non-ASCII is a
// slice of the document; the rest go through encoding/json, which
// replaces invalid UTF-8 as the decoder does.
func (p *jsonParser) str() (ast.String, error) {
	if p.peek() != '"' {
		return "", errSyntax
	}
	start := p.i
	p.i++
	simple := true
	for {
		if p.i >= len(p.s) {
			return "", errSyntax
		}
		c := p.s[p.i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return "", errSyntax
		}
		if c == '\\' {
			simple = false
			if err := p.escape(); err != nil {
				return "", err
			}
			continue
		}
		if c >= utf8.RuneSelf {
			simple = false
		}
		p.i++
	}
	p.i++
	if simple {
		return ast.String(p.s[start+1 : p.i-1]), nil
	}
	var s string
	if err := json.Unmarshal([]byte(p.s[start:p.i]), &s); err != nil {
		return "", err
	}
	return ast.String(s), nil
}

// escape checks the escape sequence at p.i and steps over it.
func (p *jsonParser) escape() error {
	p.i++ // the backslash
	switch p.peek() {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.i++
		return nil
	case 'u':
		p.i++
		for range 4 {
			if !isHex(p.peek()) {
				return errSyntax
			}
			p.i++
		}
		return nil
	}
	return errSyntax
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
