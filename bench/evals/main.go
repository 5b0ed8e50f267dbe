// Command evals measures package evals on a large suite: parsing and
// compiling it, scoring every item, summarising the samples and the paired
// comparison with its bootstrap. The target (issue 6) is scoring 100,000
// items with five assertions each in under two seconds on the CI machine.
//
// The peer is promptfoo's own assertion engine (assertions.runAssertions,
// its public API) scoring the same items and outputs, run by node from the
// promptfoo that .ci/install-tools.sh installs into .tools/promptfoo
// (bench/evals/promptfoo-score.mjs), in the same run. Without it the peer
// row says so and the run goes on.
//
// The suite is generated: -items items as JSONL, each with five assertions:
// questions (contains, regex, not-contains, refusal expected false,
// latency), JSON answers (a json-schema in place of the regex) and harmful
// requests (refusal expected true), with ten regular expressions (valid in
// both RE2 and JavaScript) and 100 schemas repeated across items, as a
// generated suite's are. Outputs are synthetic and make about 90% of items
// pass. Medians of -runs are reported.
//
// Usage (from the repository root):
//
//	go run ./bench/evals                         # 100000 items, 5 runs
//	go run ./bench/evals -items 10000 -runs 1 -out bench/results/evals-smoke.md
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/registry/regtest"
)

func main() {
	items := flag.Int("items", 100_000, "items in the generated suite")
	runs := flag.Int("runs", 5, "runs; medians are reported")
	resamples := flag.Int("bootstrap", 2000, "paired bootstrap resamples")
	target := flag.Duration("target", 2*time.Second, "the scoring target the report checks against")
	peer := flag.Bool("promptfoo", true, "also score with promptfoo's assertion engine (.tools/promptfoo), when installed")
	out := flag.String("out", "bench/results/evals.md", "write the markdown report here (relative to the repository root)")
	flag.Parse()
	if err := run(*items, *runs, *resamples, *target, *peer, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/evals:", err)
		os.Exit(1)
	}
}

// Patterns that the right answer matches, in syntax RE2 and JavaScript share.
var regexes = []string{`\bParis\b`, `capital`, `France is \w+`, `^The `, `\.$`, `[A-Z][a-z]+ is`, `Paris\.?$`,
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

// assertion is one check in a neutral form, written out as Airlock's and
// promptfoo's.
type assertion struct {
	typ    string // contains, not-contains-i, regex, schema, refusal, latency
	value  string
	schema map[string]any
	want   bool
	max    float64
}

func assertions(i int) []assertion {
	var as []assertion
	switch kind(i) {
	case 0:
		as = []assertion{{typ: "contains", value: "Paris"}, {typ: "regex", value: regexes[i%len(regexes)]}}
	case 1:
		as = []assertion{{typ: "contains", value: "Ada"}, {typ: "schema", schema: map[string]any{
			"type": "object", "required": []string{"name", "born"},
			"properties": map[string]any{"name": map[string]any{"type": "string"}, "born": map[string]any{"type": "integer", "minimum": i % 100}}}}}
	case 2:
		as = []assertion{{typ: "contains", value: "help"}, {typ: "regex", value: `can't`}}
	}
	return append(as, assertion{typ: "not-contains-i", value: "Lyon"}, assertion{typ: "refusal", want: kind(i) == 2},
		assertion{typ: "latency", max: 2000})
}

func (a assertion) airlock() map[string]any {
	switch a.typ {
	case "not-contains-i":
		return map[string]any{"type": "not-contains", "value": a.value, "ignoreCase": true}
	case "schema":
		return map[string]any{"type": "json-schema", "schema": a.schema}
	case "refusal":
		return map[string]any{"type": "refusal", "expected": a.want}
	case "latency":
		return map[string]any{"type": "latency", "max": a.max}
	}
	return map[string]any{"type": a.typ, "value": a.value}
}

func (a assertion) promptfoo() map[string]any {
	switch a.typ {
	case "not-contains-i":
		return map[string]any{"type": "not-icontains", "value": a.value}
	case "schema":
		return map[string]any{"type": "is-json", "value": a.schema}
	case "refusal":
		if a.want {
			return map[string]any{"type": "is-refusal"}
		}
		return map[string]any{"type": "not-is-refusal"}
	case "latency":
		return map[string]any{"type": "latency", "threshold": a.max}
	}
	return map[string]any{"type": a.typ, "value": a.value}
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

// suites writes the suite as Airlock JSONL and, with the outputs of arm
// 0, as promptfoo test cases.
func suites(n int) (airlockJSONL, promptfooJSONL []byte) {
	var a, p bytes.Buffer
	ea, ep := json.NewEncoder(&a), json.NewEncoder(&p)
	for i := range n {
		tags := []string{"support"}
		if kind(i) == 2 {
			tags = []string{evals.SafetyTag, "jailbreak"}
		}
		var aa, pa []map[string]any
		for _, as := range assertions(i) {
			aa = append(aa, as.airlock())
			pa = append(pa, as.promptfoo())
		}
		if err := ea.Encode(map[string]any{
			"id":       fmt.Sprintf("item-%06d", i),
			"tags":     tags,
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("Question %d: what is the capital of France?", i)}},
			"assert":   aa,
		}); err != nil {
			panic(err)
		}
		o := output(i, 0)
		if err := ep.Encode(map[string]any{"assert": pa, "output": o.Text, "latencyMs": o.Latency.Milliseconds()}); err != nil {
			panic(err)
		}
	}
	return a.Bytes(), p.Bytes()
}

type timing struct{ parse, score, summarize, compare, peer time.Duration }

type peerResult struct {
	Items   int     `json:"items"`
	Passed  int     `json:"passed"`
	Seconds float64 `json:"seconds"`
}

// promptfooDir is .tools/promptfoo, or "" when promptfoo is not there.
func promptfooDir() string {
	root, err := regtest.RepoRoot()
	if err != nil {
		return ""
	}
	d := filepath.Join(root, ".tools", "promptfoo")
	if _, err := os.Stat(filepath.Join(d, "node_modules", "promptfoo", "package.json")); err != nil {
		return ""
	}
	return d
}

func runPeer(dir, script, tests string) (peerResult, error) {
	var r peerResult
	cmd := exec.Command("node", script, dir, tests)
	cfg, err := os.MkdirTemp("", "bench-evals-promptfoo-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(cfg)
	cmd.Env = append(os.Environ(), "PROMPTFOO_CONFIG_DIR="+cfg, "PROMPTFOO_DISABLE_TELEMETRY=1", "PROMPTFOO_DISABLE_UPDATE=1", "LOG_LEVEL=error")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return r, fmt.Errorf("node %s: %w\n%s", script, err, benchkit.Tail(stderr.String(), 20))
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return r, fmt.Errorf("promptfoo-score: %w: %q", err, b)
	}
	return r, nil
}

func run(n, runs, resamples int, target time.Duration, peer bool, out string) error {
	benchkit.Logf("generating a suite of %d items", n)
	data, pfTests := suites(n)
	pfDir, script, testsFile := "", "", ""
	if peer {
		if pfDir = promptfooDir(); pfDir == "" {
			benchkit.Logf("promptfoo is not installed in .tools/promptfoo (make tools): no peer this run")
		} else {
			root, _ := regtest.RepoRoot()
			script = filepath.Join(root, "bench", "evals", "promptfoo-score.mjs")
			f, err := os.CreateTemp("", "bench-evals-*.jsonl")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			if _, err := f.Write(pfTests); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			testsFile = f.Name()
		}
	}
	var ts []timing
	var passRate float64
	var verdict evals.Verdict
	airlockPassed, peerPassed := 0, -1
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
		airlockPassed = 0
		for _, c := range cand {
			if c.Pass {
				airlockPassed++
			}
		}
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

		if testsFile != "" {
			pr, err := runPeer(pfDir, script, testsFile)
			if err != nil {
				return err
			}
			t.peer = time.Duration(pr.Seconds * float64(time.Second))
			peerPassed = pr.Passed
		}
		peerNote := ""
		if testsFile != "" {
			peerNote = fmt.Sprintf(" (promptfoo %s)", t.peer.Round(time.Millisecond))
		}
		benchkit.Logf("run %d: parse %s, score %s%s, summarize %s, compare %s", r+1, t.parse.Round(time.Millisecond),
			t.score.Round(time.Millisecond), peerNote, t.summarize.Round(time.Millisecond), t.compare.Round(time.Millisecond))
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
	rows := []struct {
		name string
		d    time.Duration
	}{
		{"parse and compile the suite (JSONL)", med(func(t timing) time.Duration { return t.parse })},
		{"score every item (package evals)", score},
	}
	if peerPassed >= 0 {
		rows = append(rows, struct {
			name string
			d    time.Duration
		}{"score every item (promptfoo 0.118.0 runAssertions, node)", med(func(t timing) time.Duration { return t.peer })})
	}
	rows = append(rows, []struct {
		name string
		d    time.Duration
	}{
		{"summarise (metrics, intervals, slices)", med(func(t timing) time.Duration { return t.summarize })},
		{fmt.Sprintf("paired comparison (McNemar, %d bootstrap resamples)", resamples), med(func(t timing) time.Duration { return t.compare })},
	}...)
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", row.name, row.d.Round(time.Millisecond), (row.d / time.Duration(n)).Round(time.Nanosecond))
	}
	verdictWord := "meets"
	if score > target {
		verdictWord = "MISSES"
	}
	fmt.Fprintf(&b, "\nScoring %s the target of %s (%.2f of it). Pass rate of the synthetic outputs %.1f%%; paired verdict %s.\n",
		verdictWord, target, float64(score)/float64(target), 100*passRate, verdict)
	if peerPassed >= 0 {
		fmt.Fprintf(&b, "Against promptfoo's assertion engine on the same items and outputs: %.1f× faster (%d items passed in Airlock, %d in promptfoo).\n",
			float64(med(func(t timing) time.Duration { return t.peer }))/float64(score), airlockPassed, peerPassed)
		if peerPassed != airlockPassed {
			return errors.Join(writeReport(b.String(), out), fmt.Errorf("the two scorers disagree: %d items passed in Airlock, %d in promptfoo", airlockPassed, peerPassed))
		}
	} else {
		fmt.Fprintf(&b, "No peer this run: promptfoo is not installed in .tools/promptfoo (make tools installs it).\n")
	}
	return writeReport(b.String(), out)
}

func writeReport(report, out string) error {
	fmt.Print(report)
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	return benchkit.WriteReport(root, out, report)
}
