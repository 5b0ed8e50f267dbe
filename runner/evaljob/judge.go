package evaljob

import (
	"context"
	"fmt"
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
}

// Score asks the judge once.
func (j *Judge) Score(it *evals.Item, a *evals.Assertion, output string) (float64, error) {
	ctx := j.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	msgs := evals.JudgeMessages(it, a, output)
	rm := make([]runner.Message, len(msgs))
	for i, m := range msgs {
		rm[i] = runner.Message{Role: m.Role, Content: m.Content}
	}
	zero := 0.0
	req := runner.Request{ID: "judge:" + it.ID, Kind: runner.Chat, Model: j.Model, Messages: rm, MaxTokens: 16, Temperature: &zero}
	r, err := runner.Run(ctx, j.Engine, []runner.Request{req}, runner.Options{Timeout: j.Timeout, Retry: j.Retry})
	if err != nil {
		return 0, err
	}
	if len(r.Timelines) != 1 {
		return 0, fmt.Errorf("the judge was not asked (interrupted)")
	}
	tl := r.Timelines[0]
	if tl.Error != nil {
		return 0, fmt.Errorf("the judge model failed: %s", tl.Error.Message)
	}
	return evals.ParseJudgeScore(tl.Output, a.Scale)
}
