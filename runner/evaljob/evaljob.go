// Package evaljob runs an eval suite on an engine: it sends every item's
// samples as the release ships them (system prompt, template variables,
// safety settings), with the runner's retries for evals, records each
// generation in a resumable cache as it arrives, and scores the outputs
// with package evals. Scoring and statistics are evals'; this package is
// the I/O around them.
package evaljob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/runner"
)

// Price is a model's token price in US dollars per million tokens.
type Price struct {
	InputPerMTok  float64 `yaml:"input_per_mtok" json:"input_per_mtok"`
	OutputPerMTok float64 `yaml:"output_per_mtok" json:"output_per_mtok"`
}

// Cost is the price of a request with these token counts.
func (p Price) Cost(in, out int) float64 {
	return (float64(in)*p.InputPerMTok + float64(out)*p.OutputPerMTok) / 1e6
}

// Options are the terms of a run.
type Options struct {
	Suite   *evals.Suite
	Shipped *evals.Shipped // nil: the items' messages as they are
	// Model is the served model name requests ask for.
	Model string
	// Samples is the number of samples of items that do not set n; zero
	// means 1.
	Samples int
	// Seed makes sampling repeatable where the server honours seeds:
	// sample i of every item is sent with seed Seed+i.
	Seed        uint64
	Concurrency int
	Timeout     time.Duration
	Retry       runner.Retry
	// Judge scores rubric assertions; nil fails suites that have them.
	Judge evals.Judge
	// Price, when set, gives every sample a cost.
	Price *Price
	// Cache, when set, supplies samples generated before and records new
	// ones as they finish.
	Cache    *Cache
	Progress func(done, total int)
	Metrics  *runner.Metrics
}

// Result is a run's samples in suite order.
type Result struct {
	Samples     []evals.Sample
	Cached      int
	Start       time.Time
	Duration    time.Duration
	Interrupted bool
}

// Generation is one sample's raw result, before scoring: what the cache
// keeps.
type Generation struct {
	Item   string `json:"item"`
	Sample int    `json:"sample"`
	// Model is the served model that answered.
	Model        string  `json:"model,omitempty"`
	Output       string  `json:"output"`
	Error        string  `json:"error,omitempty"`
	ErrorClass   string  `json:"error_class,omitempty"`
	InputTokens  int     `json:"input_tokens,omitempty"`
	OutputTokens int     `json:"output_tokens,omitempty"`
	LatencyMS    float64 `json:"latency_ms"`
}

// slot is sample i of an item.
type slot struct {
	it *evals.Item
	i  int
}

type key struct {
	item   string
	sample int
}

// RequestID names sample i of an item in the runner's timelines.
func RequestID(item string, i int) string { return item + "#" + strconv.Itoa(i) }

// Requests builds the requests of the samples of it, as shipped.
func Requests(o *Options, it *evals.Item, n int) ([]runner.Request, error) {
	msgs, err := o.Suite.Messages(it, o.Shipped)
	if err != nil {
		return nil, err
	}
	rm := make([]runner.Message, len(msgs))
	for i, m := range msgs {
		rm[i] = runner.Message{Role: m.Role, Content: m.Content}
	}
	base := runner.Request{Kind: runner.Chat, Model: o.Model, Messages: rm}
	if sh := o.Shipped; sh != nil {
		l := sh.Safety.Limits
		base.MaxTokens = l.MaxOutputTokens
		base.Temperature = l.Temperature
		extra := map[string]json.RawMessage{}
		for k, v := range sh.Safety.Engine {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("safety engine.%s: %w", k, err)
			}
			extra[k] = b
		}
		if l.TopP != nil {
			extra["top_p"], _ = json.Marshal(*l.TopP)
		}
		if len(l.Stop) > 0 {
			extra["stop"], _ = json.Marshal(l.Stop)
		}
		if len(extra) > 0 {
			base.Extra = extra
		}
	}
	out := make([]runner.Request, n)
	for i := range n {
		r := base
		r.ID = RequestID(it.ID, i)
		seed := int64(o.Seed) + int64(i)
		r.Seed = &seed
		out[i] = r
	}
	return out, nil
}

// plan lists the samples of the suite in order and the requests of those
// the cache does not have.
func plan(o *Options, cached map[key]Generation) ([]slot, []runner.Request, error) {
	var order []slot
	var reqs []runner.Request
	for k := range o.Suite.Items {
		it := &o.Suite.Items[k]
		n := it.N
		if n == 0 {
			n = max(o.Samples, 1)
		}
		rs, err := Requests(o, it, n)
		if err != nil {
			return nil, nil, err
		}
		for i := range n {
			order = append(order, slot{it, i})
			if _, ok := cached[key{it.ID, i}]; !ok {
				reqs = append(reqs, rs[i])
			}
		}
	}
	return order, reqs, nil
}

// Pending is how many samples Run would have to generate: zero when the
// cache has them all, and no engine is needed. It also checks every
// item's messages (template variables).
func Pending(o Options) (int, error) {
	if o.Suite == nil {
		return 0, errors.New("evaljob: no suite")
	}
	var cached map[key]Generation
	if o.Cache != nil {
		cached = o.Cache.Generations()
	}
	_, reqs, err := plan(&o, cached)
	return len(reqs), err
}

// Run generates what the cache does not have and scores everything.
// Errors that are the suite's or the judge's (a template variable with no
// value, a judge answering garbage) stop the run and name the item.
func Run(ctx context.Context, eng runner.Engine, o Options) (*Result, error) {
	if o.Suite == nil {
		return nil, errors.New("evaljob: no suite")
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	var cached map[key]Generation
	if o.Cache != nil {
		cached = o.Cache.Generations()
	}
	res := &Result{Start: time.Now()}
	order, reqs, err := plan(&o, cached)
	if err != nil {
		return nil, err
	}
	res.Cached = len(order) - len(reqs)
	if len(reqs) > 0 && eng == nil {
		return nil, fmt.Errorf("evaljob: %d samples to generate and no engine", len(reqs))
	}
	gens := make(map[key]Generation, len(order))
	for k, g := range cached {
		gens[k] = g
	}
	var mu sync.Mutex
	var cacheErr error
	if len(reqs) > 0 {
		byID := make(map[string]slot, len(reqs))
		for _, s := range order {
			byID[RequestID(s.it.ID, s.i)] = s
		}
		onDone := func(tl *runner.Timeline) {
			s := byID[tl.ID]
			g := generation(s.it.ID, s.i, tl)
			g.Model = o.Model
			mu.Lock()
			defer mu.Unlock()
			gens[key{s.it.ID, s.i}] = g
			if o.Cache != nil && g.Error == "" && cacheErr == nil {
				cacheErr = o.Cache.Add(g)
			}
		}
		progress := o.Progress
		if progress != nil && res.Cached > 0 {
			total, done := len(order), res.Cached
			progress(done, total)
			progress = func(d, _ int) { o.Progress(done+d, total) }
		}
		r, err := runner.Run(ctx, eng, reqs, runner.Options{
			Load:     runner.Load{Arrival: runner.Closed, Concurrency: o.Concurrency, Requests: len(reqs)},
			Timeout:  o.Timeout,
			Retry:    o.Retry,
			Metrics:  o.Metrics,
			OnDone:   onDone,
			Progress: progress,
		})
		if err != nil {
			return nil, err
		}
		res.Interrupted = r.Interrupted
	}
	if cacheErr != nil {
		return nil, fmt.Errorf("recording results in the cache: %w", cacheErr)
	}
	if res.Interrupted {
		res.Duration = time.Since(res.Start)
		return res, fmt.Errorf("interrupted after %d of %d samples; the finished ones are cached, and the same command resumes", len(gens), len(order))
	}
	samples, err := score(ctx, &o, order, gens)
	if err != nil {
		return nil, err
	}
	res.Samples = samples
	res.Duration = time.Since(res.Start)
	return res, nil
}

func generation(item string, i int, tl *runner.Timeline) Generation {
	g := Generation{Item: item, Sample: i, Output: tl.Output}
	m := runner.Measure(tl)
	g.LatencyMS = float64(m.E2E) / float64(time.Millisecond)
	if tl.Usage != nil {
		g.InputTokens = tl.Usage.PromptTokens
	}
	if !m.TokensUnknown {
		g.OutputTokens = m.OutputTokens
	}
	if tl.Error != nil {
		g.Error = tl.Error.Message
		g.ErrorClass = string(tl.Error.Class)
		g.Output = ""
	}
	return g
}

// score turns generations into samples, in suite order. Rubrics call the
// judge, so items are scored by Concurrency workers.
func score(ctx context.Context, o *Options, order []slot, gens map[key]Generation) ([]evals.Sample, error) {
	out := make([]evals.Sample, len(order))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	next := make(chan int)
	workers := 1
	if o.Judge != nil {
		workers = o.Concurrency
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				out[k], errs[k] = scoreOne(o, order[k].it, order[k].i, gens[key{order[k].it.ID, order[k].i}])
			}
		}()
	}
	for k := range order {
		if ctx.Err() != nil {
			break
		}
		next <- k
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		if len(msgs) > 10 {
			msgs = append(msgs[:10], fmt.Sprintf("and %d more", len(msgs)-10))
		}
		return nil, fmt.Errorf("scoring failed:\n  %s", strings.Join(msgs, "\n  "))
	}
	return out, nil
}

func scoreOne(o *Options, it *evals.Item, i int, g Generation) (evals.Sample, error) {
	s := evals.Sample{Index: i, InputTokens: g.InputTokens, OutputTokens: g.OutputTokens, LatencyMS: g.LatencyMS}
	s.ID, s.Tags = it.ID, it.Tags
	if o.Price != nil {
		c := o.Price.Cost(g.InputTokens, g.OutputTokens)
		s.CostUSD = &c
	}
	if g.Error != "" {
		s.Error, s.ErrorClass = g.Error, g.ErrorClass
		s.Checks = []evals.Check{}
		return s, nil
	}
	text := g.Output
	var refusal string
	if sh := o.Shipped; sh != nil {
		text = sh.Safety.Redact(text)
		refusal = sh.Safety.Refusal.Message
	}
	out := evals.Output{Text: text, OutputTokens: g.OutputTokens, Latency: time.Duration(g.LatencyMS * float64(time.Millisecond)), RefusalMessage: refusal}
	if s.CostUSD != nil {
		out.CostUSD, out.HasCost = *s.CostUSD, true
	}
	r, err := evals.Score(it, out, o.Judge)
	if err != nil {
		return s, fmt.Errorf("sample %d: %w", i, err)
	}
	s.ItemResult = r
	s.Output = text
	s.Refused = out.Refused()
	return s, nil
}
