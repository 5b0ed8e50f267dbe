package evals

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A promptfoo results file in the shape promptfoo eval -o writes (version
// 3): two tests, the first repeated, one result an API error. Written for
// this test; the interop test in cmd/airlock/cli runs the real promptfoo.
const promptfooResults = `{
  "evalId": "eval-abc",
  "results": {
    "version": 3,
    "timestamp": "2026-11-22T00:00:00.000Z",
    "results": [
      {"testIdx": 0, "promptIdx": 0, "success": true, "score": 1, "latencyMs": 120, "cost": 0.002, "failureReason": 0,
       "response": {"output": "Paris.", "tokenUsage": {"total": 9, "prompt": 7, "completion": 2}},
       "gradingResult": {"pass": true, "score": 1, "componentResults": [{"pass": true, "score": 1, "reason": "Assertion passed", "assertion": {"type": "contains", "value": "Paris"}}]},
       "testCase": {"description": "capital-fr", "vars": {"q": "x"}, "metadata": {"tags": ["facts"]}},
       "provider": {"id": "openai:chat:m", "label": ""}},
      {"testIdx": 1, "promptIdx": 0, "success": false, "score": 0, "latencyMs": 4, "cost": 0, "failureReason": 2,
       "error": "API error: 503 Service Unavailable", "response": {"error": "API error: 503 Service Unavailable"},
       "testCase": {"description": "capital-fr", "vars": {"q": "x"}},
       "provider": {"id": "openai:chat:m", "label": ""}},
      {"testIdx": 2, "promptIdx": 0, "success": false, "score": 0, "latencyMs": 90, "cost": 0.001, "failureReason": 1,
       "response": {"output": {"name": "Ada"}, "tokenUsage": {"prompt": 5, "completion": 3}},
       "gradingResult": {"pass": false, "score": 0, "componentResults": [{"pass": false, "score": 0, "reason": "Expected output to be valid JSON", "assertion": {"type": "is-json"}}]},
       "testCase": {"metadata": {"id": "json-1"}},
       "provider": {"id": "openai:chat:m", "label": ""}}
    ],
    "stats": {"successes": 1, "failures": 1, "errors": 1}
  },
  "config": {}
}`

func TestImportPromptfoo(t *testing.T) {
	imp, err := Import("promptfoo", []byte(promptfooResults))
	if err != nil {
		t.Fatal(err)
	}
	if imp.Model != "openai:chat:m" || imp.Suite != "eval-abc" || len(imp.Samples) != 3 {
		t.Fatalf("%+v", imp)
	}
	a, b, c := imp.Samples[0], imp.Samples[1], imp.Samples[2]
	if a.ID != "capital-fr" || a.Index != 0 || !a.Pass || a.Output != "Paris." || a.InputTokens != 7 || a.OutputTokens != 2 ||
		a.LatencyMS != 120 || a.CostUSD == nil || *a.CostUSD != 0.002 || a.Tags[0] != "facts" || a.Checks[0].Type != "contains" {
		t.Errorf("first %+v", a)
	}
	// The repeat is sample 1 of the same test; its error makes it a failure.
	if b.ID != "capital-fr" || b.Index != 1 || b.Pass || !strings.Contains(b.Error, "503") {
		t.Errorf("repeat %+v", b)
	}
	// metadata.id names a test; a structured output is kept as JSON.
	if c.ID != "json-1" || c.Output != `{"name": "Ada"}` || c.Pass || c.Checks[0].Detail != "Expected output to be valid JSON" {
		t.Errorf("third %+v", c)
	}
	m, err := Summarize(imp.Samples, SummaryOptions{})
	if err != nil || m.Items != 2 || m.Errors["promptfoo_error"] != 1 || m.Cost == nil || *m.Cost.CostPerSuccess != 0.003 {
		t.Errorf("summary %+v %v", m, err)
	}
	// A cost on some results only is no cost at all, and a note says so.
	partial := strings.Replace(promptfooResults, `"cost": 0, `, "", 1)
	imp, err = Import("promptfoo", []byte(partial))
	if err != nil || imp.Samples[0].CostUSD != nil || !strings.Contains(strings.Join(imp.Notes, ""), "only 2 of 3 results have a cost") {
		t.Errorf("partial costs: %v %v", err, imp.Notes)
	}
}

func TestImportPromptfooRejects(t *testing.T) {
	two := strings.Replace(promptfooResults, `"provider": {"id": "openai:chat:m", "label": ""}},
      {"testIdx": 2`, `"provider": {"id": "openai:chat:other", "label": ""}},
      {"testIdx": 2`, 1)
	for name, tc := range map[string]struct{ data, want string }{
		"two providers": {two, "2 providers (openai:chat:m, openai:chat:other)"},
		"not JSON":      {"{results", "promptfoo results"},
		"no results":    {`{"evalId": "x"}`, `no "results" object`},
		"version 4":     {`{"results": {"version": 4, "results": []}}`, "version 4"},
		"empty":         {`{"results": {"version": 3, "results": []}}`, "no results"},
		"no success":    {`{"results": {"version": 3, "results": [{"testIdx": 0, "testCase": {"description": "a"}}]}}`, `results[0]: no "success"`},
		"no name":       {`{"results": {"version": 3, "results": [{"success": true}]}}`, "results[0]: the test has no id"},
	} {
		_, err := Import("promptfoo", []byte(tc.data))
		if !errors.Is(err, ErrImport) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := Import("inspect", nil); err == nil || !strings.Contains(err.Error(), "promptfoo or lm-eval") {
		t.Errorf("unknown format: %v", err)
	}
}

// lm-evaluation-harness --log_samples lines, in the shape its evaluator
// writes, for a generate_until task with two filters per document.
func lmEvalLine(doc int, filter string, em any, resp string) string {
	return fmt.Sprintf(`{"doc_id": %d, "doc": {"question": "q%d"}, "target": "4", "arguments": [["q%d", {"until": ["\n"]}]], "resps": [["%s"]], "filtered_resps": ["%s"], "filter": %q, "metrics": ["exact_match"], "doc_hash": "h%d", "prompt_hash": "p", "target_hash": "t", "exact_match": %v}`,
		doc, doc, doc, resp, resp, filter, doc, em)
}

func TestImportLMEval(t *testing.T) {
	data := strings.Join([]string{
		lmEvalLine(0, "strict-match", 1.0, "4"),
		lmEvalLine(0, "flexible-extract", 1.0, "4"),
		lmEvalLine(1, "strict-match", 0.0, "I can't help with that."),
		lmEvalLine(1, "flexible-extract", 1.0, "4"),
		"",
		lmEvalLine(2, "strict-match", "true", "4"),
	}, "\n")
	imp, err := Import("lm-eval", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Samples) != 3 || imp.Samples[0].ID != "doc-0" || !imp.Samples[0].Pass || imp.Samples[1].Pass || !imp.Samples[1].Refused || !imp.Samples[2].Pass {
		t.Fatalf("%+v", imp.Samples)
	}
	if imp.Samples[0].Checks[0].Detail != "doc_hash h0" || !strings.Contains(strings.Join(imp.Notes, "\n"), `2 rows of filter "flexible-extract" left out`) {
		t.Errorf("checks %+v notes %v", imp.Samples[0].Checks, imp.Notes)
	}
	// The other filter, by name.
	imp, err = ImportLMEval([]byte(data), LMEvalOptions{Filter: "flexible-extract"})
	if err != nil || len(imp.Samples) != 2 || !imp.Samples[1].Pass {
		t.Errorf("flexible-extract: %v %+v", err, imp)
	}
	if f, _ := DetectImportFormat([]byte(data)); f != "lm-eval" {
		t.Errorf("detected %q", f)
	}
	if f, _ := DetectImportFormat([]byte(promptfooResults)); f != "promptfoo" {
		t.Errorf("detected %q", f)
	}
	if _, err := DetectImportFormat([]byte("hello")); err == nil {
		t.Error("detected a format in plain text")
	}

	// A metric that is not 0/1 needs a threshold.
	bleu := `{"doc_id": 0, "filter": "none", "metrics": ["bleu"], "bleu": 0.37, "filtered_resps": ["x"]}`
	if _, err := ImportLMEval([]byte(bleu), LMEvalOptions{Metric: "bleu"}); err == nil || !strings.Contains(err.Error(), "bleu is 0.37, not 0 or 1") {
		t.Errorf("bleu without a threshold: %v", err)
	}
	th := 0.3
	if imp, err := ImportLMEval([]byte(bleu), LMEvalOptions{Metric: "bleu", Threshold: &th}); err != nil || !imp.Samples[0].Pass {
		t.Errorf("bleu with a threshold: %v", err)
	}
}

func TestImportLMEvalRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		data string
		o    LMEvalOptions
		want string
	}{
		"malformed line":   {lmEvalLine(0, "none", 1, "4") + "\n{oops", LMEvalOptions{}, "line 2"},
		"no doc_id":        {`{"filter": "none", "exact_match": 1}`, LMEvalOptions{}, "line 1: no doc_id"},
		"twice":            {lmEvalLine(3, "none", 1, "4") + "\n" + lmEvalLine(3, "none", 0, "5"), LMEvalOptions{}, "doc 3 appears twice"},
		"no known metric":  {`{"doc_id": 0, "filter": "none", "metrics": ["f1"], "f1": 0.5}`, LMEvalOptions{}, "none of exact_match"},
		"absent metric":    {lmEvalLine(0, "none", 1, "4"), LMEvalOptions{Metric: "acc"}, `no "acc" metric`},
		"absent filter":    {lmEvalLine(0, "none", 1, "4"), LMEvalOptions{Filter: "strict-match"}, `no rows for filter "strict-match" (the file has none)`},
		"metric not a num": {`{"doc_id": 0, "filter": "none", "exact_match": "yes"}`, LMEvalOptions{}, `exact_match is "yes", not a number`},
		"empty":            {"\n\n", LMEvalOptions{}, "no records"},
	} {
		_, err := ImportLMEval([]byte(tc.data), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
