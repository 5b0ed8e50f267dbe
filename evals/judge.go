package evals

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The judge model's prompts and the parsing of its answers. Asking the
// model is the caller's (the runner's); this part stays pure so that what
// counts as an answer is tested without a model.

// userText is what the user said in an item, for a judge to see.
func userText(it *Item) string {
	var q strings.Builder
	for _, m := range it.Messages {
		if m.Role == "user" {
			q.WriteString(m.Content)
			q.WriteString("\n")
		}
	}
	return strings.TrimSpace(q.String())
}

// JudgeMessages asks a judge to grade output against the assertion's
// rubric on 1..scale, answering with the number alone.
// The assertion's own prompt, when it has one, replaces the question (its
// template variables are judgeVars'); the instruction to answer with a
// number stays.
func JudgeMessages(it *Item, a *Assertion, output string) []Message {
	q := fmt.Sprintf("Rubric:\n%s\n\nThe user asked:\n%s\nThe assistant answered:\n<answer>\n%s\n</answer>\n\nScore (1-%d):", a.Rubric, userText(it), output, a.Scale)
	if a.Prompt != "" {
		// Checked when the suite was parsed: every variable has a value.
		q, _ = Render(a.Prompt, judgeVars(a.Rubric, userText(it), output, a.Scale))
	}
	return []Message{
		{Role: "system", Content: fmt.Sprintf("You grade an AI assistant's answer against a rubric. Reply with one whole number from 1 (worst) to %d (best) and nothing else.", a.Scale)},
		{Role: "user", Content: q},
	}
}

// judgeVars are the template variables of a rubric's own prompt.
func judgeVars(rubric, question, answer string, scale int) map[string]string {
	return map[string]string{"rubric": rubric, "question": question, "answer": answer, "scale": fmt.Sprint(scale)}
}

var judgeNumber = regexp.MustCompile(`^\s*(?:score\s*[:=]?\s*)?\**(\d+(?:\.\d+)?)\**\s*(?:/\s*\d+)?\s*\.?\s*$`)

// ParseJudgeScore reads a judge's answer: one number, optionally as
// "Score: 4" or "4/5". Anything else (words around it, two numbers, a
// number off the scale) is an error that quotes the answer: a judge that
// answers garbage fails the eval, never passes or skips the item.
func ParseJudgeScore(answer string, scale int) (float64, error) {
	m := judgeNumber.FindStringSubmatch(strings.ToLower(answer))
	if m == nil {
		return 0, fmt.Errorf("the judge answered %q, not a score from 1 to %d", clip(answer, 80), scale)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || v < 1 || v > float64(scale) {
		return 0, fmt.Errorf("the judge answered %q, outside the scale 1 to %d", clip(answer, 80), scale)
	}
	return v, nil
}

// PairwiseMessages asks a judge which of two answers better meets the
// rubric; the caller asks twice with the answers swapped (position bias,
// canary-evals.md §3.4).
func PairwiseMessages(it *Item, rubric, first, second string) []Message {
	return []Message{
		{Role: "system", Content: "You compare two AI assistants' answers to the same request against a rubric. Reply with exactly A, B or TIE."},
		{Role: "user", Content: fmt.Sprintf("Rubric:\n%s\n\nThe user asked:\n%s\n<answer_a>\n%s\n</answer_a>\n<answer_b>\n%s\n</answer_b>\n\nBetter answer (A, B or TIE):", rubric, userText(it), first, second)},
	}
}

// ParsePairwise reads a pairwise judge's answer: A, B or TIE.
func ParsePairwise(answer string) (string, error) {
	s := strings.ToUpper(strings.Trim(strings.TrimSpace(answer), ".*\"'"))
	switch s {
	case "A", "B", "TIE":
		return s, nil
	}
	return "", fmt.Errorf("the judge answered %q, not A, B or TIE", clip(answer, 80))
}

// SwappedOutcome combines the two orders of a pairwise judgement of the
// candidate against the baseline: first with the candidate as A, second
// with it as B. A win or loss counts only when both orders agree;
// anything else is a tie.
func SwappedOutcome(first, second string) Outcome {
	switch {
	case first == "A" && second == "B":
		return Win
	case first == "B" && second == "A":
		return Loss
	}
	return Tie
}

// Pairwise is a side-by-side judgement of a candidate's answers against a
// baseline's, each item judged in both orders.
type Pairwise struct {
	Rubric  string         `json:"rubric"`
	Judge   string         `json:"judge_model"`
	WinRate WinRate        `json:"win_rate"`
	Items   []PairwiseItem `json:"items"`
	// Skipped are items without an answer in both arms.
	Skipped []string `json:"skipped,omitempty"`
}

// PairwiseItem is one item's two judgements (A, B or TIE with the
// candidate first, then second) and their combined outcome.
type PairwiseItem struct {
	ID              string  `json:"id"`
	CandidateFirst  string  `json:"candidate_first"`
	CandidateSecond string  `json:"candidate_second"`
	Outcome         Outcome `json:"outcome"`
}

// WinRate is the side-by-side result of a candidate against a baseline:
// (wins + ties/2)/n, with a two-sided sign test on wins against losses
// (ties left out), canary-evals.md §3.4.
type WinRate struct {
	Wins   int     `json:"wins"`
	Losses int     `json:"losses"`
	Ties   int     `json:"ties"`
	Rate   float64 `json:"win_rate"`
	PValue float64 `json:"p_value"`
}

// NewWinRate counts outcomes and tests them.
func NewWinRate(outcomes []Outcome) WinRate {
	var w WinRate
	for _, o := range outcomes {
		switch o {
		case Win:
			w.Wins++
		case Loss:
			w.Losses++
		default:
			w.Ties++
		}
	}
	if n := len(outcomes); n > 0 {
		w.Rate = (float64(w.Wins) + float64(w.Ties)/2) / float64(n)
	}
	w.PValue = McNemarExact(w.Losses, w.Wins) // the same exact binomial sign test
	return w
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
