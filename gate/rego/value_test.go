package rego

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// viaInterface is OPA's own path: decode, then convert.
func viaInterface(b []byte) (ast.Value, error) {
	var x any
	if err := util.UnmarshalJSON(b, &x); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(x)
}

func checkSame(t *testing.T, b []byte) {
	t.Helper()
	want, werr := viaInterface(b)
	got, gerr := parseValue(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: OPA's path error %v, parseValue error %v", b, werr, gerr)
	}
	if werr == nil && want.Compare(got) != 0 {
		t.Fatalf("%q:\nOPA's path %v\nparseValue %v", b, want, got)
	}
}

func TestParseValueMatchesOPA(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":1}`, ` { "a" : [ 1 , -2.5e3 , true , false , null , "x" ] } `,
		`{"a":{"b":{"c":[{}]}}}`, `{"dup":1,"dup":2}`, `"é\u00e9\n\"\\"`, `"\ud83d\ude00"`, `"\ud83d"`,
		"\"\xff\xfe bad utf-8\"", `0`, `-0`, `1e400`, `123456789012345678901234567890`,
		`{"a":1,}`, `[1,]`, `{"a"}`, `tru`, ``, `{"a":1} x`, `[`, `"`,
		`01`, `1.`, `-`, `1e`, `1e+`, `-01`, `.5`, `+1`, `1.5e-3`, `-0.0E+0`, "\"\x01\"", `"\q"`, `"\u12"`,
		`"\u12g4"`, `"\/"`, `nul`, `nulll`, `truex`, `[1 2]`, `{"a" 1}`, `{"a":1 "b":2}`, `{,}`, `[,]`, ` `,
		`{"a":1}}`, `[]]`, `{1:2}`, `{"a":}`, `[-]`, "[1,\t2 ,\n3]\r\n", `{"a":[],"b":{}}`, `1E70000`, `[1e-70000]`, `2.5e308`,
	} {
		checkSame(t, []byte(s))
	}
	deep := strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2)
	if _, err := parseValue([]byte(deep)); err == nil {
		t.Error("nesting past the limit must be refused")
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"c"}]}`, `"\u00e9"`, `[true,false,null,-1.5e-3]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if strings.Count(string(b), "[")+strings.Count(string(b), "{") > maxDepth {
			return // OPA's path has no depth limit
		}
		checkSame(t, b)
	})
}
