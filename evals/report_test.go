package evals

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func reportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../docs/schemas/eval-report.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("eval-report.v1.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("eval-report.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fullReport has every optional part: a baseline, errors, cost, latency,
// safety items, slices, several samples per item.
func fullReport(t *testing.T) *Report {
	t.Helper()
	cost := func(v float64) *float64 { return &v }
	var base, cand []Sample
	for i := range 30 {
		id := fmt.Sprintf("item-%02d", i)
		tags := []string{"support"}
		if i%5 == 0 {
			tags = []string{SafetyTag, "jailbreak"}
		}
		for j := range 2 {
			b := Sample{ItemResult: ItemResult{ID: id, Tags: tags, Pass: true, Score: 1, Checks: []Check{{Path: "assert[0]", Type: "contains", Pass: true, Weight: 1}}},
				Index: j, Output: "ok", LatencyMS: float64(100 + i), OutputTokens: 5, CostUSD: cost(0.001)}
			c := b
			if i < 6 {
				c.Pass, c.Score = false, 0
				c.Checks = []Check{{Path: "assert[0]", Type: "contains", Pass: false, Weight: 1, Detail: `no "Paris" in the output`}}
			}
			if i == 7 && j == 1 {
				c = Sample{ItemResult: ItemResult{ID: id, Tags: tags}, Index: j, Error: "HTTP 503", ErrorClass: "http_5xx", CostUSD: cost(0)}
			}
			base, cand = append(base, b), append(cand, c)
		}
	}
	mc, err := Summarize(cand, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := Summarize(base, SummaryOptions{})
	p, err := ComparePaired(base, cand, CompareOptions{Margin: 0.05}, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	temp := 0.2
	return &Report{Schema: ReportSchema, RunID: "r1", Tool: "airlock/test", Release: &ReleaseRef{Ref: "reg/app:2", Digest: Digest([]byte("a"))},
		Suite: SuiteRef{Name: "golden", Digest: Digest([]byte("s")), Items: 30}, Engine: EngineRef{Kind: "openai", Model: "m", Endpoint: "http://x"},
		Seed: 1, Shipped: &ShippedRef{SystemPrompt: Digest([]byte("p")), Safety: Digest([]byte("q")), MaxTokens: 512, Temperature: &temp, Redact: []string{"email"}},
		Started: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), Duration: 1.5, Metrics: mc,
		Baseline: &Baseline{Release: ReleaseRef{Ref: "reg/app:1", Digest: Digest([]byte("b"))}, Engine: EngineRef{Kind: "openai"}, Metrics: mb, Paired: p, Samples: base,
			Shipped: &ShippedRef{SystemPrompt: Digest([]byte("p0")), MaxTokens: 256},
			Pairwise: &Pairwise{Rubric: "better", Judge: "j", WinRate: NewWinRate([]Outcome{Win, Loss, Tie}),
				Items: []PairwiseItem{{ID: "item-00", CandidateFirst: "A", CandidateSecond: "B", Outcome: Win}}, Skipped: []string{"item-07"}}},
		Notes: []string{"a note"}, Samples: cand}
}

func TestReportMatchesItsSchema(t *testing.T) {
	sch := reportSchema(t)
	r := fullReport(t)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("the report does not match docs/schemas/eval-report.v1.json: %v", err)
	}
	// And the schema is not a rubber stamp: a report with a field renamed,
	// a rate above 1 or an unknown verdict is rejected.
	for name, mutate := range map[string]func(m map[string]any){
		"unknown field": func(m map[string]any) { m["pass_rate"] = 1 },
		"rate above 1":  func(m map[string]any) { m["metrics"].(map[string]any)["pass_rate"].(map[string]any)["value"] = 1.5 },
		"verdict": func(m map[string]any) {
			m["baseline"].(map[string]any)["paired"].(map[string]any)["verdict"] = "pass"
		},
		"no samples": func(m map[string]any) { delete(m, "samples") },
	} {
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		b, _ := json.Marshal(m)
		d, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if sch.Validate(d) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A report reads back as it was written.
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Baseline.Paired.Verdict != r.Baseline.Paired.Verdict || len(back.Samples) != 60 || back.Metrics.PassRate != r.Metrics.PassRate {
		t.Error("round trip")
	}
}

func TestReportMarkdown(t *testing.T) {
	r := fullReport(t)
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Airlock eval: golden",
		"| pass rate | 78.3% (23.5 of 30 items)",
		"| safety violations |",
		"| samples with no output (counted as failures) | http_5xx 1 |",
		"Worse than the baseline", // 6 of 30 items lost at a 5-point margin
		"Regressed (passed before, fail now): `item-00`, `item-01`, `item-02`, `item-03`, `item-04`, `item-05`",
		"| `item-00` | contains: no \"Paris\" in the output |",
		"| `item-07` | HTTP 503 |",
		"> a note",
		"Judged side by side by `j`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
