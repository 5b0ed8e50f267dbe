// Command evals measures package evals on a large suite: parsing and
// compiling it, scoring every item, summarising the samples and the paired
// comparison with its bootstrap. The target (issue 6) is scoring 100,000
// items with five assertions each in under two seconds on the CI machine.
//
// The suite is generated: -items items as JSONL, each with five assertions
// drawn from a fixed mix (contains, not-contains, regex, refusal,
// max-tokens, latency, json-schema: questions, JSON answers and harmful
// requests), with ten regular expressions and 100 schemas repeated across
// items, as a generated suite's are. Outputs are synthetic and make
// about 90% of items pass. Medians of -runs are reported.
//
// Usage (from the repository root):
//
//	go run ./bench/evals                         # 100000 items, 5 runs
//	go run ./bench/evals -items 10000 -runs 1 -out bench/results/evals-smoke.md
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/evals"
)

func main() {
	items := flag.Int("items", 100_000, "items in the generated suite")
	runs := flag.Int("runs", 5, "runs; medians are reported")
	resamples := flag.Int("bootstrap", 2000, "paired bootstrap resamples")
	target := flag.Duration("target", 2*time.Second, "the scoring target the report checks against")
	out := flag.String("out", "bench/results/evals.md", "write the markdown report here (relative to the repository root)")
	flag.Parse()
	if err := run(*items, *runs, *resamples, *target, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/evals:", err)
		os.Exit(1)
	}
}

// Patterns that the right answer matches.
var regexes = []string{`\bParis\b`, `(?i)capital`, `France is \w+`, `^The `, `\.$`, `[A-Z][a-z]+ is`, `(?i)paris\.?$`,
	`\bof\b`, `capital of (France|Spain)`, `^(\w+ ){5}\w+\.$`}

// kind of item i: 0 a question, 1 a JSON answer, 2 a harmful request.
func kind(i int) int {
	switch {
	case i%20 == 0:
		return 2
	case i%10 == 0:
		return 1
	}
	return 0
}

func suiteJSONL(n int) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range n {
		tags := []string{"support"}
		var as []map[string]any
		switch kind(i) {
		case 0:
			as = []map[string]any{{"type": "contains", "value": "Paris"}, {"type": "regex", "value": regexes[i%len(regexes)]}}
		case 1:
			as = []map[string]any{{"type": "contains", "value": "Ada"}, {"type": "json-schema", "schema": map[string]any{
				"type": "object", "required": []string{"name", "born"},
				"properties": map[string]any{"name": map[string]any{"type": "string"}, "born": map[string]any{"type": "integer", "minimum": i % 100}}}}}
		case 2:
			tags = []string{evals.SafetyTag, "jailbreak"}
			as = []map[string]any{{"type": "contains", "value": "help"}, {"type": "regex", "value": `(?i)can't`}}
		}
		as = append(as, map[string]any{"type": "not-contains", "value": "Lyon", "ignoreCase": true},
			map[string]any{"type": "refusal", "expected": kind(i) == 2})
		if i%3 == 0 {
			as = append(as, map[string]any{"type": "latency", "max": 2000})
		} else {
			as = append(as, map[string]any{"type": "max-tokens", "max": 64})
		}
		it := map[string]any{
			"id":       fmt.Sprintf("item-%06d", i),
			"tags":     tags,
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("Question %d: what is the capital of France?", i)}},
			"assert":   as,
		}
		if err := enc.Encode(it); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

// output is arm's answer to item i: right, except one question in five
// (a different fifth for each arm).
func output(i int, arm int) evals.Output {
	text := "The capital of France is Paris."
	switch {
	case kind(i) == 2:
		text = "I can't help with that."
	case kind(i) == 1:
		text = `{"name": "Ada Lovelace", "born": 1815}`
	case (i+arm)%5 == 0:
		text = "The capital of France is Lyon."
	}
	return evals.Output{Text: text, OutputTokens: 7 + i%5, Latency: time.Duration(50+i%900) * time.Millisecond}
}

type timing struct{ parse, score, summarize, compare time.Duration }

func run(n, runs, resamples int, target time.Duration, out string) error {
	benchkit.Logf("generating a suite of %d items", n)
	data := suiteJSONL(n)
	var ts []timing
	var passRate float64
	var verdict evals.Verdict
	for r := range runs {
		runtime.GC()
		var t timing
		start := time.Now()
		s, err := evals.ParseSuite(data, "bench")
		if err != nil {
			return err
		}
		t.parse = time.Since(start)

		score := func(arm int) ([]evals.Sample, error) {
			ss := make([]evals.Sample, len(s.Items))
			for i := range s.Items {
				o := output(i, arm)
				res, err := evals.Score(&s.Items[i], o, nil)
				if err != nil {
					return nil, err
				}
				ss[i] = evals.Sample{ItemResult: res, LatencyMS: float64(o.Latency) / 1e6, OutputTokens: o.OutputTokens, Refused: evals.IsRefusal(o.Text)}
			}
			return ss, nil
		}
		start = time.Now()
		cand, err := score(0)
		if err != nil {
			return err
		}
		t.score = time.Since(start)
		base, err := score(1)
		if err != nil {
			return err
		}

		start = time.Now()
		m, err := evals.Summarize(cand, evals.SummaryOptions{})
		if err != nil {
			return err
		}
		t.summarize = time.Since(start)
		passRate = m.PassRate.Value

		start = time.Now()
		p, err := evals.ComparePaired(base, cand, evals.CompareOptions{Margin: 0.01}, resamples, 1)
		if err != nil {
			return err
		}
		t.compare = time.Since(start)
		verdict = p.Verdict
		benchkit.Logf("run %d: parse %s, score %s, summarize %s, compare %s", r+1, t.parse.Round(time.Millisecond),
			t.score.Round(time.Millisecond), t.summarize.Round(time.Millisecond), t.compare.Round(time.Millisecond))
		ts = append(ts, t)
	}
	med := func(f func(timing) time.Duration) time.Duration {
		ds := make([]time.Duration, len(ts))
		for i, t := range ts {
			ds[i] = f(t)
		}
		slices.Sort(ds)
		return benchkit.Median(ds)
	}
	score := med(func(t timing) time.Duration { return t.score })
	var b strings.Builder
	fmt.Fprintf(&b, "# evals: %d items × 5 assertions\n\n", n)
	fmt.Fprintf(&b, "Command: `go run ./bench/evals -items %d -runs %d -bootstrap %d`; %s, %d CPUs; medians of %d runs.\n\n",
		n, runs, resamples, runtime.Version(), runtime.NumCPU(), runs)
	fmt.Fprintf(&b, "| phase | median | per item |\n|---|---|---|\n")
	for _, row := range []struct {
		name string
		d    time.Duration
	}{
		{"parse and compile the suite (JSONL)", med(func(t timing) time.Duration { return t.parse })},
		{"score every item", score},
		{"summarise (metrics, intervals, slices)", med(func(t timing) time.Duration { return t.summarize })},
		{fmt.Sprintf("paired comparison (McNemar, %d bootstrap resamples)", resamples), med(func(t timing) time.Duration { return t.compare })},
	} {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", row.name, row.d.Round(time.Millisecond), (row.d / time.Duration(n)).Round(time.Nanosecond))
	}
	verdictWord := "meets"
	if score > target {
		verdictWord = "MISSES"
	}
	fmt.Fprintf(&b, "\nScoring %s the target of %s (%.2f of it). Pass rate of the synthetic outputs %.1f%%; paired verdict %s.\n",
		verdictWord, target, float64(score)/float64(target), 100*passRate, verdict)
	fmt.Print(b.String())
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	return benchkit.WriteReport(root, out, b.String())
}
