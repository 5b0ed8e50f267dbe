package evals

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Imported is evidence read from another eval tool's output: per-item,
// per-sample outcomes that get Airlock's metrics and paired comparison.
type Imported struct {
	// Format is "promptfoo" or "lm-eval".
	Format string
	// Suite names what was evaluated, when the file says (promptfoo's
	// evalId, lm-eval's task).
	Suite string
	// Model is the provider or model, when the file names exactly one.
	Model   string
	Samples []Sample
	// Notes say what the import chose (which lm-eval filter, which
	// metric), for the report.
	Notes []string
}

// ImportFormats are the formats Import reads.
func ImportFormats() []string { return []string{"promptfoo", "lm-eval"} }

// ErrImport marks a file that cannot be imported; the message names the
// record.
var ErrImport = errors.New("cannot import")

// Import reads another tool's results: "promptfoo" (promptfoo eval -o
// results.json) or "lm-eval" (an lm-evaluation-harness samples_*.jsonl
// from --log_samples).
func Import(format string, data []byte) (*Imported, error) {
	var imp *Imported
	var err error
	switch format {
	case "promptfoo":
		imp, err = ImportPromptfoo(data)
	case "lm-eval":
		imp, err = ImportLMEval(data, LMEvalOptions{})
	default:
		return nil, fmt.Errorf("%w: unknown format %q (want %s)", ErrImport, format, strings.Join(ImportFormats(), " or "))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrImport, err)
	}
	return imp, nil
}

// The promptfoo results file, as `promptfoo eval -o results.json` writes it
// (promptfoo's EvaluateSummaryV3 inside an envelope: evalId, results,
// config). Only what the import uses is declared; the field names are
// promptfoo's (src/types/index.ts: EvaluateResult, GradingResult,
// ResultFailureReason), checked against the files promptfoo 0.118.0 writes
// (cmd/airlock/cli/eval_interop_test.go runs it).
type promptfooFile struct {
	EvalID  string `json:"evalId"`
	Results *struct {
		Version int               `json:"version"`
		Results []promptfooResult `json:"results"`
	} `json:"results"`
}

type promptfooResult struct {
	TestIdx   *int    `json:"testIdx"`
	PromptIdx int     `json:"promptIdx"`
	Success   *bool   `json:"success"`
	Score     float64 `json:"score"`
	Error     *string `json:"error"`
	// FailureReason is promptfoo's ResultFailureReason: 0 none, 1 an
	// assertion failed, 2 an error.
	FailureReason int      `json:"failureReason"`
	LatencyMs     float64  `json:"latencyMs"`
	Cost          *float64 `json:"cost"`
	Response      *struct {
		Output     json.RawMessage `json:"output"`
		TokenUsage *struct {
			Prompt     int `json:"prompt"`
			Completion int `json:"completion"`
		} `json:"tokenUsage"`
	} `json:"response"`
	GradingResult *struct {
		ComponentResults []struct {
			Pass      bool    `json:"pass"`
			Score     float64 `json:"score"`
			Reason    string  `json:"reason"`
			Assertion *struct {
				Type string `json:"type"`
			} `json:"assertion"`
		} `json:"componentResults"`
	} `json:"gradingResult"`
	TestCase *struct {
		Description string         `json:"description"`
		Metadata    map[string]any `json:"metadata"`
	} `json:"testCase"`
	Provider struct {
		ID    string `json:"id"`
		Label string `json:"label"`
	} `json:"provider"`
}

// ImportPromptfoo reads a promptfoo results file (version 3, or 2 of the
// same shape). Each result is one sample of its test; a test's id is its
// metadata "id", else its description, else "test-N" by its index. With
// --repeat a test appears several times: its samples are numbered in file
// order. A result with an error is a failed sample with the error, never
// skipped. All results must be of one provider (one model): export one
// provider per file to compare two.
func ImportPromptfoo(data []byte) (*Imported, error) {
	var f promptfooFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("promptfoo results: %w", err)
	}
	if f.Results == nil {
		return nil, fmt.Errorf("promptfoo results: no \"results\" object; is this the file promptfoo eval -o results.json writes?")
	}
	if v := f.Results.Version; v != 3 && v != 2 {
		return nil, fmt.Errorf("promptfoo results: version %d; Airlock reads versions 2 and 3", v)
	}
	if len(f.Results.Results) == 0 {
		return nil, fmt.Errorf("promptfoo results: no results")
	}
	imp := &Imported{Format: "promptfoo", Suite: f.EvalID}
	providers := map[string]bool{}
	next := map[string]int{}
	for i, r := range f.Results.Results {
		where := fmt.Sprintf("promptfoo results[%d]", i)
		if r.Success == nil {
			return nil, fmt.Errorf("%s: no \"success\"", where)
		}
		id := ""
		if r.TestCase != nil {
			if v, ok := r.TestCase.Metadata["id"].(string); ok && v != "" {
				id = v
			} else {
				id = r.TestCase.Description
			}
		}
		if id == "" {
			if r.TestIdx == nil {
				return nil, fmt.Errorf("%s: the test has no id, description or index", where)
			}
			id = fmt.Sprintf("test-%d", *r.TestIdx)
		}
		p := r.Provider.ID
		if r.Provider.Label != "" {
			p = r.Provider.Label
		}
		providers[p] = true
		s := Sample{Index: next[id]}
		next[id]++
		s.ID = id
		s.Pass = *r.Success
		s.Score = r.Score
		s.LatencyMS = r.LatencyMs
		s.CostUSD = r.Cost
		if r.TestCase != nil {
			if tags, ok := r.TestCase.Metadata["tags"].([]any); ok {
				for _, t := range tags {
					if ts, ok := t.(string); ok {
						s.Tags = append(s.Tags, ts)
					}
				}
			}
		}
		if r.Response != nil {
			s.Output = outputText(r.Response.Output)
			if u := r.Response.TokenUsage; u != nil {
				s.InputTokens, s.OutputTokens = u.Prompt, u.Completion
			}
		}
		if r.Error != nil && *r.Error != "" {
			s.Error, s.ErrorClass, s.Pass = *r.Error, "promptfoo_error", false
		}
		s.Checks = []Check{}
		if g := r.GradingResult; g != nil {
			for k, c := range g.ComponentResults {
				typ := "assertion"
				if c.Assertion != nil {
					typ = c.Assertion.Type
				}
				s.Checks = append(s.Checks, Check{Path: fmt.Sprintf("assert[%d]", k), Type: typ, Pass: c.Pass, Weight: 1, Detail: c.Reason})
			}
		}
		s.Refused = IsRefusal(s.Output)
		imp.Samples = append(imp.Samples, s)
	}
	if len(providers) > 1 {
		names := make([]string, 0, len(providers))
		for p := range providers {
			names = append(names, p)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("promptfoo results: %d providers (%s); a paired comparison needs one model per file: run promptfoo once per provider (--filter-providers)", len(names), strings.Join(names, ", "))
	}
	for p := range providers {
		imp.Model = p
	}
	priced := 0
	for _, s := range imp.Samples {
		if s.CostUSD != nil {
			priced++
		}
	}
	if priced > 0 && priced < len(imp.Samples) {
		for i := range imp.Samples {
			imp.Samples[i].CostUSD = nil
		}
		imp.Notes = append(imp.Notes, fmt.Sprintf("promptfoo: only %d of %d results have a cost, so no cost is reported", priced, len(imp.Samples)))
	}
	return imp, nil
}

// outputText is a promptfoo output as text: a string as is, anything else
// (a structured output) as its JSON.
func outputText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// LMEvalOptions choose what an lm-evaluation-harness samples file is read
// by.
type LMEvalOptions struct {
	// Filter picks the filter's rows when a task logs several per document
	// (strict-match and flexible-extract); empty means the first seen.
	Filter string
	// Metric is the 0/1 metric a document passes by; empty means the first
	// of exact_match, acc, acc_norm, pass@1, pass_at_1 the file has.
	Metric string
	// Threshold, when set, passes a document whose metric reaches it, for
	// metrics that are not 0 or 1 (such as bleu).
	Threshold *float64
}

// lmEvalMetrics are the 0/1 metrics tried in order when none is named.
var lmEvalMetrics = []string{"exact_match", "acc", "acc_norm", "pass@1", "pass_at_1"}

// ImportLMEval reads an lm-evaluation-harness samples file: JSON Lines, one
// record per document and filter, as --log_samples writes it
// (lm_eval/evaluator.py: doc_id, doc, target, arguments, resps,
// filtered_resps, filter, metrics, doc_hash, prompt_hash, target_hash, and
// each metric's value under its own name). A document is item "doc-N"; it
// passes by a 0/1 metric. Every record of the chosen filter is a sample;
// nothing is skipped silently: another filter's rows are counted in a note.
func ImportLMEval(data []byte, o LMEvalOptions) (*Imported, error) {
	imp := &Imported{Format: "lm-eval"}
	filter, metric := o.Filter, o.Metric
	otherFilters := map[string]int{}
	seen := map[int]bool{}
	for line, b := range jsonLines(data) {
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("lm-eval samples line %d: %w", line, err)
		}
		var docID *int
		if raw, ok := rec["doc_id"]; ok {
			var d int
			if err := json.Unmarshal(raw, &d); err != nil {
				return nil, fmt.Errorf("lm-eval samples line %d: doc_id %s is not a whole number", line, raw)
			}
			docID = &d
		}
		if docID == nil {
			return nil, fmt.Errorf("lm-eval samples line %d: no doc_id; is this a samples_*.jsonl file from --log_samples?", line)
		}
		where := fmt.Sprintf("lm-eval samples line %d (doc %d)", line, *docID)
		f := ""
		if raw, ok := rec["filter"]; ok {
			if err := json.Unmarshal(raw, &f); err != nil {
				return nil, fmt.Errorf("%s: filter: %w", where, err)
			}
		}
		if filter == "" {
			filter = f
		}
		if f != filter {
			otherFilters[f]++
			continue
		}
		if seen[*docID] {
			return nil, fmt.Errorf("%s: doc %d appears twice for filter %q", where, *docID, filter)
		}
		seen[*docID] = true
		if metric == "" {
			for _, m := range lmEvalMetrics {
				if _, ok := rec[m]; ok {
					metric = m
					break
				}
			}
			if metric == "" {
				var names []string
				_ = json.Unmarshal(rec["metrics"], &names)
				return nil, fmt.Errorf("%s: none of %s is logged (the record has %v): name the metric to pass by", where, strings.Join(lmEvalMetrics, ", "), names)
			}
		}
		raw, ok := rec[metric]
		if !ok {
			return nil, fmt.Errorf("%s: no %q metric", where, metric)
		}
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil {
			var bv bool
			if err2 := json.Unmarshal(raw, &bv); err2 != nil {
				return nil, fmt.Errorf("%s: %s is %s, not a number", where, metric, raw)
			}
			if bv {
				v = 1
			}
		}
		s := Sample{}
		s.ID = fmt.Sprintf("doc-%d", *docID)
		switch {
		case o.Threshold != nil:
			s.Pass = v >= *o.Threshold
		case v == 0 || v == 1:
			s.Pass = v == 1
		default:
			return nil, fmt.Errorf("%s: %s is %v, not 0 or 1: give a threshold to pass by", where, metric, v)
		}
		if math.IsNaN(v) {
			return nil, fmt.Errorf("%s: %s is NaN", where, metric)
		}
		s.Score = v
		s.Output = firstResponse(rec["filtered_resps"])
		s.Refused = IsRefusal(s.Output)
		detail := ""
		if raw, ok := rec["doc_hash"]; ok {
			var h string
			if json.Unmarshal(raw, &h) == nil && h != "" {
				detail = "doc_hash " + h
			}
		}
		s.Checks = []Check{{Path: metric, Type: "lm-eval:" + metric, Pass: s.Pass, Weight: 1, Detail: detail}}
		imp.Samples = append(imp.Samples, s)
	}
	if len(imp.Samples) == 0 {
		if o.Filter != "" && len(otherFilters) > 0 {
			return nil, fmt.Errorf("lm-eval samples: no rows for filter %q (the file has %s)", o.Filter, strings.Join(sortedKeys(otherFilters), ", "))
		}
		return nil, fmt.Errorf("lm-eval samples: no records")
	}
	imp.Notes = append(imp.Notes, fmt.Sprintf("lm-eval: %d documents, passing by %s, filter %q", len(imp.Samples), metric, filter))
	if len(otherFilters) > 0 {
		for _, k := range sortedKeys(otherFilters) {
			imp.Notes = append(imp.Notes, fmt.Sprintf("lm-eval: %d rows of filter %q left out (one filter is read)", otherFilters[k], k))
		}
	}
	return imp, nil
}

// firstResponse is the first filtered response as text: a string, the
// first string of a nested list, or the JSON of anything else (a
// loglikelihood pair).
func firstResponse(raw json.RawMessage) string {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(list[0], &s) == nil {
		return s
	}
	var inner []string
	if json.Unmarshal(list[0], &inner) == nil && len(inner) > 0 {
		return inner[0]
	}
	return string(list[0])
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// DetectImportFormat tells a promptfoo results file (one JSON object with
// "results") from an lm-eval samples file (JSON Lines with doc_id).
func DetectImportFormat(data []byte) (string, error) {
	b := bytes.TrimSpace(data)
	first := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		first = b[:i]
	}
	var rec map[string]json.RawMessage
	if json.Unmarshal(first, &rec) == nil {
		if _, ok := rec["doc_id"]; ok {
			return "lm-eval", nil
		}
	}
	if json.Unmarshal(b, &rec) == nil {
		if _, ok := rec["results"]; ok {
			return "promptfoo", nil
		}
	}
	return "", fmt.Errorf("%w: neither a promptfoo results file nor an lm-eval samples file", ErrImport)
}
