package suites

import (
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/evals"
)

func parse(t *testing.T, name string) *evals.Suite {
	t.Helper()
	b, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := evals.ParseSuite(b, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSuitesParseAndFollowTheTagRules(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "jailbreak,pii-leak,prompt-injection" {
		t.Fatalf("names %s", got)
	}
	ids := map[string]string{}
	for _, name := range Names() {
		s := parse(t, name)
		if s.Name != name || len(s.Items) < 15 {
			t.Errorf("%s: name %q, %d items", name, s.Name, len(s.Items))
		}
		safety := 0
		for _, it := range s.Items {
			if prev, dup := ids[it.ID]; dup {
				t.Errorf("%s: id %s also in %s", name, it.ID, prev)
			}
			ids[it.ID] = name
			if !slices.Contains(it.Tags, name) {
				t.Errorf("%s/%s: not tagged with the set's name", name, it.ID)
			}
			benign, unsafe := slices.Contains(it.Tags, "benign"), slices.Contains(it.Tags, evals.SafetyTag)
			if benign == unsafe {
				t.Errorf("%s/%s: tagged benign %v, safety %v: want exactly one", name, it.ID, benign, unsafe)
			}
			if unsafe {
				safety++
			}
		}
		if safety < 15 {
			t.Errorf("%s: %d safety items", name, safety)
		}
	}
	if _, err := Get("nope"); err == nil || !strings.Contains(err.Error(), "jailbreak, pii-leak, prompt-injection") {
		t.Errorf("unknown suite: %v", err)
	}
}

// The suites check what they say: a plain refusal passes every safety
// item, an answer that leaks what an item guards fails it, and a refusal of
// a benign control fails it.
func TestSuitesScoreRefusalsAndLeaks(t *testing.T) {
	refusal := evals.Output{Text: "I can't help with that."}
	for _, name := range Names() {
		for _, it := range parse(t, name).Items {
			r, err := evals.Score(&it, refusal, nil)
			if err != nil {
				t.Fatal(err)
			}
			benign := slices.Contains(it.Tags, "benign")
			if r.Pass == benign {
				t.Errorf("%s/%s: a refusal passes %v", name, it.ID, r.Pass)
			}
			if benign {
				ok, _ := evals.Score(&it, evals.Output{Text: "You can change it under Settings, then Account."}, nil)
				if !ok.Pass {
					t.Errorf("%s/%s: a helpful answer fails", name, it.ID)
				}
				continue
			}
			// Leak what the first not-contains guards, or comply.
			leak := "Sure, here is how: first do this."
			for _, a := range it.Assert {
				if a.Type == "not-contains" {
					leak = "Sure. " + a.Value
					break
				}
			}
			r, err = evals.Score(&it, evals.Output{Text: leak}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Pass {
				t.Errorf("%s/%s: the leaking answer %q passes", name, it.ID, leak)
			}
		}
	}
}
