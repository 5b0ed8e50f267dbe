package evaljob

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/runner"
)

// Judge scores rubric assertions with a judge model through the runner:
// the prompt is evals.JudgeMessages, at temperature 0, with the eval's
// retries; the answer must be a score on the scale (evals.ParseJudgeScore)
// or the item fails to score, with the answer quoted.
type Judge struct {
	// Engine must keep outputs (openai.Options.KeepOutput).
	Engine  runner.Engine
	Model   string
	Timeout time.Duration
	Retry   runner.Retry
	// Ctx bounds every judge call; nil means context.Background.
	Ctx context.Context
	// Cache, when set, answers questions asked before (the judge runs at
	// temperature 0) and keeps new answers. Answers the parser rejects are
	// kept too: they fail the same way again.
	Cache *JudgeCache
	// Asked counts the questions sent to the judge model (not answered by
	// the cache).
	Asked atomic.Int64
}

// Score asks the judge once.
func (j *Judge) Score(it *evals.Item, a *evals.Assertion, output string) (float64, error) {
	ans, err := j.ask("judge:"+it.ID, evals.JudgeMessages(it, a, output), 16)
	if err != nil {
		return 0, err
	}
	return evals.ParseJudgeScore(ans, a.Scale)
}

// ask sends msgs to the judge and returns its answer.
func (j *Judge) ask(id string, msgs []evals.Message, maxTokens int) (string, error) {
	var key string
	if j.Cache != nil {
		key = judgeKey(j.Model, msgs)
		if a, ok := j.Cache.get(key); ok {
			return a, nil
		}
	}
	a, err := j.send(id, msgs, maxTokens)
	if err != nil {
		return "", err
	}
	if j.Cache != nil {
		if err := j.Cache.add(key, a); err != nil {
			return "", fmt.Errorf("the judge cache: %w", err)
		}
	}
	return a, nil
}

// send asks the judge model.
func (j *Judge) send(id string, msgs []evals.Message, maxTokens int) (string, error) {
	j.Asked.Add(1)
	ctx := j.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	rm := make([]runner.Message, len(msgs))
	for i, m := range msgs {
		rm[i] = runner.Message{Role: m.Role, Content: m.Content}
	}
	zero := 0.0
	req := runner.Request{ID: id, Kind: runner.Chat, Model: j.Model, Messages: rm, MaxTokens: maxTokens, Temperature: &zero}
	r, err := runner.Run(ctx, j.Engine, []runner.Request{req}, runner.Options{Timeout: j.Timeout, Retry: j.Retry})
	if err != nil {
		return "", err
	}
	if len(r.Timelines) != 1 || r.Interrupted {
		return "", fmt.Errorf("the judge was not asked (interrupted)")
	}
	tl := r.Timelines[0]
	if tl.Error != nil {
		return "", fmt.Errorf("the judge model failed: %s", tl.Error.Message)
	}
	return tl.Output, nil
}

// Pairwise judges the candidate's answer to each item against the
// baseline's with the rubric, twice with the order swapped (the candidate
// first as A, then as B); a win or loss counts only when both orders
// agree (evals.SwappedOutcome). Items are paired by id, sample 0 of each;
// items either arm has no answer for are left out and listed.
func (j *Judge) Pairwise(s *evals.Suite, rubric string, baseline, candidate []evals.Sample) (*evals.Pairwise, error) {
	first := func(ss []evals.Sample) map[string]*evals.Sample {
		m := map[string]*evals.Sample{}
		for i := range ss {
			if ss[i].Index == 0 {
				m[ss[i].ID] = &ss[i]
			}
		}
		return m
	}
	bs, cs := first(baseline), first(candidate)
	p := &evals.Pairwise{Rubric: rubric, Judge: j.Model}
	var outcomes []evals.Outcome
	for k := range s.Items {
		it := &s.Items[k]
		b, c := bs[it.ID], cs[it.ID]
		if b == nil || c == nil || b.Error != "" || c.Error != "" {
			p.Skipped = append(p.Skipped, it.ID)
			continue
		}
		var ans [2]string
		for o, pair := range [2][2]string{{c.Output, b.Output}, {b.Output, c.Output}} {
			a, err := j.ask("pairwise:"+it.ID, evals.PairwiseMessages(it, rubric, pair[0], pair[1]), 8)
			if err != nil {
				return nil, fmt.Errorf("item %q: pairwise judge: %w", it.ID, err)
			}
			if ans[o], err = evals.ParsePairwise(a); err != nil {
				return nil, fmt.Errorf("item %q: %w", it.ID, err)
			}
		}
		out := evals.SwappedOutcome(ans[0], ans[1])
		p.Items = append(p.Items, evals.PairwiseItem{ID: it.ID, CandidateFirst: ans[0], CandidateSecond: ans[1], Outcome: out})
		outcomes = append(outcomes, out)
	}
	p.WinRate = evals.NewWinRate(outcomes)
	return p, nil
}
