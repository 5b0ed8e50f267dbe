package suites

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/evals"
)

// suiteSchema compiles docs/schemas/eval-suite.v1.json.
func suiteSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../../docs/schemas/eval-suite.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("eval-suite.v1.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("eval-suite.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asJSON turns a YAML suite into the JSON value the schema validates.
func asJSON(t *testing.T, y []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// The published schema and the parser agree: what ParseSuite accepts the
// schema accepts, and each kind of mistake both reject, so the two cannot
// drift apart unnoticed.
func TestSchemaAgreesWithTheParser(t *testing.T) {
	sch := suiteSchema(t)
	good := map[string][]byte{}
	for _, n := range Names() {
		b, _ := Get(n)
		good[n] = b
	}
	for _, p := range []string{"../../examples/support-bot/evals/golden.yaml", "../../examples/demo-model/suite.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		good[p] = b
	}
	for name, b := range good {
		if _, err := evals.ParseSuite(b, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := sch.Validate(asJSON(t, b)); err != nil {
			t.Errorf("%s: the schema rejects a suite the parser accepts: %v", name, err)
		}
	}

	head := "apiVersion: airlock.dev/v1\nkind: EvalSuite\nname: bad\n"
	item := func(assert string) string {
		return head + "items:\n  - {id: a, messages: [{role: user, content: hi}], assert: [" + assert + "]}\n"
	}
	for name, y := range map[string]string{
		"unknown assertion type":       item("{type: sentiment, value: x}"),
		"contains without a value":     item("{type: contains}"),
		"refusal without expected":     item("{type: refusal}"),
		"rubric without a scale":       item("{type: rubric, rubric: be kind, threshold: 3}"),
		"weighted without a threshold": item("{type: weighted, assert: [{type: contains, value: x}]}"),
		"weighted threshold above 1":   item("{type: weighted, threshold: 2, assert: [{type: contains, value: x}]}"),
		"latency without max":          item("{type: latency}"),
		"negative max":                 item("{type: cost, max: -1}"),
		"any with nothing in it":       item("{type: any, assert: []}"),
		"nested mistake":               item("{type: all, assert: [{type: regex}]}"),
		"unknown assertion field":      item("{type: contains, value: x, caseless: true}"),
		"unknown top-level field":      "extra: 1\n" + item("{type: contains, value: x}"),
		"unknown item field":           head + "items:\n  - {id: a, prompt: hi, messages: [{role: user, content: hi}], assert: [{type: contains, value: x}]}\n",
		"wrong apiVersion":             strings.Replace(item("{type: contains, value: x}"), "airlock.dev/v1", "airlock.dev/v2", 1),
		"wrong kind":                   strings.Replace(item("{type: contains, value: x}"), "EvalSuite", "Release", 1),
		"no items":                     head + "items: []\n",
		"bad role":                     head + "items:\n  - {id: a, messages: [{role: robot, content: hi}], assert: [{type: contains, value: x}]}\n",
		"no messages":                  head + "items:\n  - {id: a, messages: [], assert: [{type: contains, value: x}]}\n",
		"no assertions":                head + "items:\n  - {id: a, messages: [{role: user, content: hi}], assert: []}\n",
		"negative n":                   head + "items:\n  - {id: a, n: -1, messages: [{role: user, content: hi}], assert: [{type: contains, value: x}]}\n",
		"item threshold above 1":       head + "items:\n  - {id: a, threshold: 1.5, messages: [{role: user, content: hi}], assert: [{type: contains, value: x}]}\n",
		"no id":                        head + "items:\n  - {messages: [{role: user, content: hi}], assert: [{type: contains, value: x}]}\n",
	} {
		if _, err := evals.ParseSuite([]byte(y), "bad"); err == nil {
			t.Errorf("%s: the parser accepts it", name)
		}
		if sch.Validate(asJSON(t, []byte(y))) == nil {
			t.Errorf("%s: the schema accepts it", name)
		}
	}
}
