package rego

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxDepth bounds nesting in an input document.
const maxDepth = 256

// parseValue reads a JSON document straight into OPA's ast.Value, without
// the interface{} tree that decoding and then converting would build (the
// larger part of a decision's cost). It accepts exactly what
// encoding/json accepts (checked by json.Valid first) and gives the value
// util.UnmarshalJSON followed by ast.InterfaceToValue gives; the test and
// the fuzz target compare the two.
func parseValue(b []byte) (ast.Value, error) {
	if !json.Valid(b) {
		var x any
		err := json.Unmarshal(b, &x)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	}
	p := &jsonParser{b: b}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	return v, nil
}

type jsonParser struct {
	b    []byte
	i    int
	seen map[ast.String]struct{}
}

// object builds an object in one allocation (ast.NewObject) unless a key
// repeats: encoding/json keeps the last value, and so does Insert.
func (p *jsonParser) object(pairs [][2]*ast.Term) ast.Value {
	if p.seen == nil {
		p.seen = map[ast.String]struct{}{}
	}
	clear(p.seen)
	dup := false
	for _, kv := range pairs {
		k := kv[0].Value.(ast.String)
		if _, ok := p.seen[k]; ok {
			dup = true
			break
		}
		p.seen[k] = struct{}{}
	}
	if !dup {
		return ast.NewObject(pairs...)
	}
	obj := ast.NewObject()
	for _, kv := range pairs {
		obj.Insert(kv[0], kv[1])
	}
	return obj
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (ast.Value, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("input nests deeper than %d levels", maxDepth)
	}
	p.ws()
	switch p.b[p.i] {
	case '{':
		p.i++
		var pairs [][2]*ast.Term
		p.ws()
		if p.b[p.i] == '}' {
			p.i++
			return ast.NewObject(), nil
		}
		for {
			p.ws()
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			p.i++ // ':'
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, [2]*ast.Term{ast.NewTerm(k), ast.NewTerm(v)})
			p.ws()
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			p.i++ // '}'
			return p.object(pairs), nil
		}
	case '[':
		p.i++
		var elems []*ast.Term
		p.ws()
		if p.b[p.i] == ']' {
			p.i++
			return ast.NewArray(), nil
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			elems = append(elems, ast.NewTerm(v))
			p.ws()
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			p.i++ // ']'
			return ast.NewArray(elems...), nil
		}
	case '"':
		return p.str()
	case 't':
		p.i += 4
		return ast.Boolean(true), nil
	case 'f':
		p.i += 5
		return ast.Boolean(false), nil
	case 'n':
		p.i += 4
		return ast.Null{}, nil
	default:
		start := p.i
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return ast.Number(p.b[start:p.i]), nil
			}
			p.i++
		}
		return ast.Number(p.b[start:p.i]), nil
	}
}

// str reads a string at p.i (the document is valid JSON). Strings
// without escapes or non-ASCII are copied; the rest go through
// encoding/json, which replaces invalid UTF-8 as the decoder does.
func (p *jsonParser) str() (ast.String, error) {
	start := p.i
	p.i++
	simple := true
	for {
		c := p.b[p.i]
		if c == '"' {
			break
		}
		if c == '\\' {
			simple = false
			p.i += 2
			continue
		}
		if c >= utf8.RuneSelf {
			simple = false
		}
		p.i++
	}
	p.i++
	if simple {
		return ast.String(p.b[start+1 : p.i-1]), nil
	}
	var s string
	if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
		return "", err
	}
	return ast.String(s), nil
}
