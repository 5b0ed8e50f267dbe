package evals

import (
	"strings"
	"testing"
)

func TestParseJudgeScore(t *testing.T) {
	for in, want := range map[string]float64{"4": 4, " 5\n": 5, "Score: 3": 3, "score=2": 2, "4/5": 4, "**5**": 5, "1.": 1, "3.5": 3.5} {
		got, err := ParseJudgeScore(in, 5)
		if err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"banana", "", "4 or 5", "I would say 4", "6", "0", "-1", "4/5 and 3/5"} {
		if _, err := ParseJudgeScore(in, 5); err == nil || !strings.Contains(err.Error(), "judge answered") {
			t.Errorf("%q accepted (%v)", in, err)
		}
	}
}

func TestPairwise(t *testing.T) {
	for in, want := range map[string]string{"A": "A", "b.": "B", " tie ": "TIE", `"A"`: "A"} {
		if got, err := ParsePairwise(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParsePairwise("A is better"); err == nil {
		t.Error("prose accepted")
	}
	// The candidate is A first, then B: a win needs both orders to agree.
	cases := []struct {
		first, second string
		want          Outcome
	}{{"A", "B", Win}, {"B", "A", Loss}, {"A", "A", Tie}, {"B", "B", Tie}, {"TIE", "B", Tie}}
	for _, c := range cases {
		if got := SwappedOutcome(c.first, c.second); got != c.want {
			t.Errorf("%s then %s: %s, want %s", c.first, c.second, got, c.want)
		}
	}
	w := NewWinRate([]Outcome{Win, Win, Win, Win, Win, Win, Win, Loss, Tie, Tie})
	near(t, "win rate", w.Rate, 8.0/10, 1e-12)
	// Sign test on 7 wins against 1 loss: 2·P(X ≤ 1), X ~ Bin(8, ½) = 18/256.
	near(t, "p", w.PValue, 18.0/256, 1e-12)
	msgs := PairwiseMessages(&Item{Messages: []Message{{Role: "user", Content: "Q?"}}}, "be right", "one", "two")
	if !strings.Contains(msgs[1].Content, "<answer_a>\none\n</answer_a>") || !strings.Contains(msgs[1].Content, "Q?") {
		t.Errorf("pairwise prompt %q", msgs[1].Content)
	}
}

func TestRubricPrompt(t *testing.T) {
	y := `apiVersion: airlock.dev/v1
kind: EvalSuite
name: p
items:
  - id: own
    messages: [{role: user, content: "Say hi"}]
    assert:
      - {type: rubric, rubric: friendly, scale: 5, threshold: 4, prompt: "Grade {{answer}} for {{rubric}} (1-{{scale}}); the user said {{question}}."}
`
	s, err := ParseSuite([]byte(y), "p")
	if err != nil {
		t.Fatal(err)
	}
	msgs := JudgeMessages(&s.Items[0], &s.Items[0].Assert[0], "hello there")
	if msgs[1].Content != "Grade hello there for friendly (1-5); the user said Say hi." || !strings.Contains(msgs[0].Content, "1 (worst) to 5") {
		t.Errorf("%q", msgs)
	}
	for bad, want := range map[string]string{
		"Grade {{answer}} by {{mood}}": "template variables with no value: mood",
		"Grade it":                     "never shows the judge the {{answer}}",
	} {
		_, err := ParseSuite([]byte(strings.Replace(y, "Grade {{answer}} for {{rubric}} (1-{{scale}}); the user said {{question}}.", bad, 1)), "p")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `item "own": assert[0] (rubric): prompt`) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
