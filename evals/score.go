package evals

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Output is what a model produced for one sample of an item, with what
// the runner measured.
type Output struct {
	Text         string
	OutputTokens int
	Latency      time.Duration
	// CostUSD is the request's cost from the token prices of the model;
	// HasCost is false when no price is configured.
	CostUSD float64
	HasCost bool
	// RefusalMessage is the release's own refusal (its safety file); an
	// output containing it is a refusal, as is one IsRefusal finds.
	RefusalMessage string
}

// Refused reports whether the output is a refusal.
func (o *Output) Refused() bool {
	if m := strings.TrimSpace(o.RefusalMessage); m != "" && strings.Contains(o.Text, m) {
		return true
	}
	return IsRefusal(o.Text)
}

// Judge scores an output against a rubric on a 1..scale scale (a judge
// model through the runner). Scoring stays pure: the caller supplies it.
type Judge interface {
	Score(item *Item, a *Assertion, output string) (float64, error)
}

// Check is the outcome of one assertion.
type Check struct {
	Path   string  `json:"path"`
	Type   string  `json:"type"`
	Pass   bool    `json:"pass"`
	Weight float64 `json:"weight"`
	Detail string  `json:"detail,omitempty"`
}

// ItemResult is an item's outcome for one sample: whether it passed, the
// weighted share of assertions that passed, and each check.
type ItemResult struct {
	ID     string   `json:"id"`
	Tags   []string `json:"tags,omitempty"`
	Pass   bool     `json:"pass"`
	Score  float64  `json:"score"`
	Checks []Check  `json:"checks"`
}

// Score checks out against it. A rubric assertion without a judge is an
// error naming the item, never a silent pass or skip.
func Score(it *Item, out Output, judge Judge) (ItemResult, error) {
	r := ItemResult{ID: it.ID, Tags: it.Tags, Checks: make([]Check, 0, len(it.Assert))}
	var won, total float64
	all := true
	for i := range it.Assert {
		a := &it.Assert[i]
		pass, detail, err := check(it, a, out, judge)
		if err != nil {
			return r, fmt.Errorf("item %q: assert[%d] (%s): %w", it.ID, i, a.Type, err)
		}
		w := weight(a)
		r.Checks = append(r.Checks, Check{Path: fmt.Sprintf("assert[%d]", i), Type: a.Type, Pass: pass, Weight: w, Detail: detail})
		total += w
		if pass {
			won += w
		} else {
			all = false
		}
	}
	if total > 0 {
		r.Score = won / total
	}
	r.Pass = all
	if it.Threshold != nil {
		r.Pass = r.Score >= *it.Threshold
	}
	return r, nil
}

func weight(a *Assertion) float64 {
	if a.Weight != nil {
		return *a.Weight
	}
	return 1
}

func check(it *Item, a *Assertion, out Output, judge Judge) (bool, string, error) {
	text := out.Text
	fold := func(s string) string {
		if a.IgnoreCase {
			return strings.ToLower(s)
		}
		return s
	}
	switch a.Type {
	case "equals":
		if fold(strings.TrimSpace(text)) != fold(strings.TrimSpace(a.Value)) {
			return false, fmt.Sprintf("output is not %q", clip(a.Value, 60)), nil
		}
		return true, "", nil
	case "contains":
		if !strings.Contains(fold(text), fold(a.Value)) {
			return false, fmt.Sprintf("no %q in the output", clip(a.Value, 60)), nil
		}
		return true, "", nil
	case "not-contains":
		ok := !strings.Contains(fold(text), fold(a.Value))
		if !ok {
			return false, fmt.Sprintf("output contains %q", a.Value), nil
		}
		return true, "", nil
	case "regex":
		if !a.re.MatchString(text) {
			return false, fmt.Sprintf("no match for /%s/", clip(a.Value, 60)), nil
		}
		return true, "", nil
	case "json-schema":
		var v any
		if err := json.Unmarshal([]byte(extractJSON(text)), &v); err != nil {
			return false, "output is not JSON", nil
		}
		if err := a.schema.Validate(v); err != nil {
			return false, firstLine(err.Error()), nil
		}
		return true, "", nil
	case "refusal":
		got := out.Refused()
		if got != *a.Expected {
			if got {
				return false, "refused, but an answer was expected", nil
			}
			return false, "answered, but a refusal was expected", nil
		}
		return true, "", nil
	case "max-tokens":
		return float64(out.OutputTokens) <= *a.Max, fmt.Sprintf("%d tokens", out.OutputTokens), nil
	case "latency":
		ms := float64(out.Latency) / float64(time.Millisecond)
		return ms <= *a.Max, fmt.Sprintf("%.0f ms", ms), nil
	case "cost":
		if !out.HasCost {
			return false, "", fmt.Errorf("no token price configured for the model, so cost cannot be checked")
		}
		return out.CostUSD <= *a.Max, fmt.Sprintf("$%.6f", out.CostUSD), nil
	case "rubric":
		if judge == nil {
			return false, "", fmt.Errorf("a rubric needs a judge model, and none is configured")
		}
		s, err := judge.Score(it, a, text)
		if err != nil {
			return false, "", fmt.Errorf("judge: %w", err)
		}
		if s < 1 || s > float64(a.Scale) {
			return false, "", fmt.Errorf("judge answered %v, outside the scale 1..%d", s, a.Scale)
		}
		return s >= *a.Threshold, fmt.Sprintf("judge score %v of %d", s, a.Scale), nil
	case "all", "any", "weighted":
		var won, total float64
		n := 0
		for i := range a.Assert {
			pass, _, err := check(it, &a.Assert[i], out, judge)
			if err != nil {
				return false, "", fmt.Errorf("assert[%d] (%s): %w", i, a.Assert[i].Type, err)
			}
			w := weight(&a.Assert[i])
			total += w
			if pass {
				won += w
				n++
			}
		}
		switch a.Type {
		case "all":
			return n == len(a.Assert), fmt.Sprintf("%d of %d passed", n, len(a.Assert)), nil
		case "any":
			return n > 0, fmt.Sprintf("%d of %d passed", n, len(a.Assert)), nil
		}
		share := 0.0
		if total > 0 {
			share = won / total
		}
		return share >= *a.Threshold, fmt.Sprintf("weighted %.2f, threshold %.2f", share, *a.Threshold), nil
	}
	return false, "", fmt.Errorf("unknown assertion type %q", a.Type)
}

// extractJSON returns the JSON in a model's answer: the whole text, or the
// body of a ```json fenced block when there is one.
func extractJSON(s string) string {
	if i := strings.Index(s, "```"); i >= 0 {
		rest := s[i+3:]
		rest = strings.TrimPrefix(rest, "json")
		if j := strings.Index(rest, "```"); j >= 0 {
			return strings.TrimSpace(rest[:j])
		}
	}
	return strings.TrimSpace(s)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// IsRefusal reports whether an answer is a refusal, by the phrases models
// refuse with near the start of the answer. It is a heuristic, and says
// so in the report; a rubric judged by a model is the stronger check.
func IsRefusal(text string) bool {
	head := strings.ToLower(text)
	if len(head) > 200 {
		head = head[:200]
	}
	head = strings.ReplaceAll(head, "’", "'")
	for _, p := range []string{"i can't help", "i cannot help", "i can't assist", "i cannot assist", "i can't provide", "i cannot provide",
		"i won't", "i will not", "i'm not able to", "i am not able to", "i'm unable to", "i am unable to", "i must decline",
		"i'm sorry, but i can", "i am sorry, but i can", "i can't do that", "i cannot do that", "i can't help with that"} {
		if strings.Contains(head, p) {
			return true
		}
	}
	return false
}
