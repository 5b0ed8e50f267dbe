package evaljob

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/openai"
	"github.com/airlock-dev/airlock/runner/sim"
)

// recorder counts the generation requests a server got and keeps their
// bodies.
type recorder struct {
	h      http.Handler
	n      atomic.Int64
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodPost {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.n.Add(1)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
	}
	r.h.ServeHTTP(w, req)
}

// serve starts the reference model server (a simulator) playing a
// built-in version or a config.
func serve(t *testing.T, cfg sim.Config) (*openai.Engine, *recorder) {
	t.Helper()
	rec := &recorder{h: sim.New(cfg)}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	eng, err := openai.New(openai.Options{BaseURL: srv.URL, KeepOutput: true, Model: cfg.Model})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.CloseIdleConnections)
	return eng, rec
}

func version(t *testing.T, name string) sim.Config {
	t.Helper()
	cfg, _, err := sim.Version(name)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func demoSuite(t *testing.T) *evals.Suite {
	t.Helper()
	b, err := os.ReadFile("../../examples/demo-model/suite.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := evals.ParseSuite(b, "demo")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func shipped(t *testing.T) *evals.Shipped {
	t.Helper()
	sys, err := os.ReadFile("../../examples/support-bot/prompts/system.md")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../examples/support-bot/safety.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := evals.ParseSafety(b)
	if err != nil {
		t.Fatal(err)
	}
	return &evals.Shipped{System: string(sys), Safety: s}
}

var fastRetry = runner.Retry{Attempts: 6, Base: time.Millisecond, Max: 5 * time.Millisecond}

func passed(ss []evals.Sample) (ids []string) {
	for _, s := range ss {
		if s.Pass && s.Error == "" {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

func TestGoodAndRegressedAsShipped(t *testing.T) {
	suite, sh := demoSuite(t), shipped(t)
	good, rec := serve(t, version(t, "good"))
	res, err := Run(t.Context(), good, Options{Suite: suite, Shipped: sh, Model: "demo-model", Seed: 7, Concurrency: 4, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if got := passed(res.Samples); len(got) != 12 {
		t.Fatalf("good version passed %v, want all 12", got)
	}
	// On the wire: the release's system prompt with the suite's variables,
	// its limits, a seed per sample.
	var body struct {
		Messages    []runner.Message `json:"messages"`
		MaxTokens   int              `json:"max_completion_tokens"`
		Temperature float64          `json:"temperature"`
		Seed        int64            `json:"seed"`
	}
	if err := json.Unmarshal(rec.bodies[0], &body); err != nil {
		t.Fatal(err)
	}
	if body.Messages[0].Role != "system" || !strings.Contains(body.Messages[0].Content, "Customer name: Alex.") ||
		body.MaxTokens != 512 || body.Temperature != 0.2 || body.Seed != 7 {
		t.Errorf("request as sent: %s", rec.bodies[0])
	}

	bad, _ := serve(t, version(t, "regressed"))
	res, err = Run(t.Context(), bad, Options{Suite: suite, Shipped: sh, Model: "demo-model", Concurrency: 4, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(passed(res.Samples), ","); got != "capital-jp,add,subtract,opening-hours" {
		t.Errorf("regressed version passed %s", got)
	}
	for _, s := range res.Samples {
		if s.ID == "reset-password" && !s.Refused {
			t.Error("the regressed version's refusal of a benign request was not seen")
		}
	}
}

func TestCacheResumesAnInterruptedRun(t *testing.T) {
	suite := demoSuite(t)
	eng, rec := serve(t, version(t, "good"))
	dir := t.TempDir()
	key := CacheKey{Release: "sha256:aaaa", Suite: "sha256:bbbb", Engine: "openai", Model: "demo-model", Seed: 1, Samples: 1}
	c, err := OpenCache(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	_, err = Run(ctx, eng, Options{Suite: suite, Model: "demo-model", Concurrency: 1, Cache: c,
		Progress: func(done, _ int) {
			if done == 5 {
				cancel()
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted run: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	first := rec.n.Load()
	c, err = OpenCache(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	cached := c.Len()
	if cached < 5 || cached >= 12 {
		t.Fatalf("%d generations cached after the interruption", cached)
	}
	res, err := Run(t.Context(), eng, Options{Suite: suite, Model: "demo-model", Concurrency: 2, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	if sent := rec.n.Load() - first; int(sent) != 12-cached || res.Cached != cached || len(passed(res.Samples)) != 12 {
		t.Errorf("resumed: sent %d, cached %d, passed %d", sent, res.Cached, len(passed(res.Samples)))
	}
	c.Close()
	// A third run pays nothing and needs no engine; the cache knows the
	// model that answered.
	c, _ = OpenCache(dir, key)
	if n, err := Pending(Options{Suite: suite, Cache: c}); n != 0 || err != nil {
		t.Errorf("pending %d %v", n, err)
	}
	before := rec.n.Load()
	res, err = Run(t.Context(), nil, Options{Suite: suite, Model: "demo-model", Cache: c})
	if err != nil || rec.n.Load() != before || res.Cached != 12 || c.Model() != "demo-model" {
		t.Errorf("re-run: %v, sent %d, cached %d, model %q", err, rec.n.Load()-before, res.Cached, c.Model())
	}
	c.Close()
	if n, _ := Pending(Options{Suite: suite, Samples: 2}); n != 24 {
		t.Errorf("pending without a cache, two samples: %d", n)
	}
	if _, err := Run(t.Context(), nil, Options{Suite: suite}); err == nil || !strings.Contains(err.Error(), "no engine") {
		t.Errorf("nothing cached, no engine: %v", err)
	}

	// A torn last line is dropped and asked again; another key's file is
	// refused.
	path := filepath.Join(dir, key.ID()+".jsonl")
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString(`{"item":"capital-fr","sam`)
	f.Close()
	c, err = OpenCache(dir, key)
	if err != nil || c.Dropped != 1 || c.Len() != 12 {
		t.Fatalf("torn line: %v, dropped %d, len %d", err, c.Dropped, c.Len())
	}
	c.Close()
	if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(`"sam`+"\n")) || !bytes.HasSuffix(b, []byte("}\n")) {
		t.Errorf("the torn line is still there")
	}
	other := key
	other.Seed = 2
	if err := os.Rename(path, filepath.Join(dir, other.ID()+".jsonl")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCache(dir, other); err == nil {
		t.Error("a cache file of another key was used")
	}
	if _, err := OpenCache(dir, CacheKey{Suite: "x"}); err == nil {
		t.Error("a cache without a release digest")
	}
}

func TestErrorsAreFailuresAndNotCached(t *testing.T) {
	cfg := version(t, "good")
	cfg.ErrorRate = 1
	eng, _ := serve(t, cfg)
	dir := t.TempDir()
	c, err := OpenCache(dir, CacheKey{Release: "sha256:a", Suite: "sha256:b"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := Run(t.Context(), eng, Options{Suite: demoSuite(t), Model: "demo-model", Concurrency: 4, Cache: c,
		Retry: runner.Retry{Attempts: 2, Base: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Samples {
		if s.Pass || s.Error == "" || s.ErrorClass != string(runner.ClassHTTP5xx) {
			t.Fatalf("%+v", s)
		}
	}
	if c.Len() != 0 {
		t.Errorf("%d failed generations cached", c.Len())
	}
}

func judgeSuite(t *testing.T) *evals.Suite {
	t.Helper()
	s, err := evals.ParseSuite([]byte(`apiVersion: airlock.dev/v1
kind: EvalSuite
name: judged
items:
  - id: polite-hours
    messages: [{role: user, content: "What are your opening hours?"}]
    assert: [{type: rubric, rubric: "Polite and gives the hours", scale: 5, threshold: 4}]
`), "judged")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRubricJudge(t *testing.T) {
	model, _ := serve(t, version(t, "good"))
	for _, tc := range []struct {
		answer string
		pass   bool
		err    string
	}{{"4", true, ""}, {"Score: 2", false, ""}, {"banana", false, `item "polite-hours"`}, {"9", false, "outside the scale"}} {
		jeng, jrec := serve(t, sim.Config{Model: "judge", Default: tc.answer})
		j := &Judge{Engine: jeng, Model: "judge", Retry: fastRetry}
		res, err := Run(t.Context(), model, Options{Suite: judgeSuite(t), Model: "demo-model", Judge: j})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.answer) {
				t.Errorf("judge answering %q: %v", tc.answer, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.Samples[0].Pass != tc.pass {
			t.Errorf("judge answering %q: pass %v", tc.answer, res.Samples[0].Pass)
		}
		// The judge saw the rubric and the model's answer.
		if b := string(jrec.bodies[0]); !strings.Contains(b, "Polite and gives the hours") || !strings.Contains(b, "Monday to Friday") {
			t.Errorf("judge prompt %s", b)
		}
	}
	// With a cache, a second run does not ask the judge again.
	jeng, jrec := serve(t, sim.Config{Model: "judge", Default: "5"})
	dir := t.TempDir()
	for run := range 2 {
		jc, err := OpenJudgeCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		j := &Judge{Engine: jeng, Model: "judge", Retry: fastRetry, Cache: jc}
		res, err := Run(t.Context(), model, Options{Suite: judgeSuite(t), Model: "demo-model", Judge: j})
		if err != nil || !res.Samples[0].Pass {
			t.Fatalf("run %d: %v", run, err)
		}
		if want := int64(1 - run); j.Asked.Load() != want || jrec.n.Load() != 1 || jc.Len() != 1 {
			t.Errorf("run %d: asked the judge %d times (want %d), %d requests in all", run, j.Asked.Load(), want, jrec.n.Load())
		}
		if err := jc.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// No judge: an error naming the item, not a skip.
	_, err := Run(t.Context(), model, Options{Suite: judgeSuite(t), Model: "demo-model"})
	if err == nil || !strings.Contains(err.Error(), "polite-hours") {
		t.Errorf("no judge: %v", err)
	}
}

func TestRequestsCarrySafetySettings(t *testing.T) {
	sh := shipped(t)
	top := 0.9
	sh.Safety.Limits.TopP = &top
	sh.Safety.Limits.Stop = []string{"END"}
	sh.Safety.Engine = map[string]any{"guardrails": map[string]any{"enabled": true}}
	it := &demoSuite(t).Items[0]
	rs, err := Requests(&Options{Suite: demoSuite(t), Shipped: sh, Seed: 10}, it, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || *rs[2].Seed != 12 || rs[2].ID != "capital-fr#2" || rs[0].MaxTokens != 512 {
		t.Fatalf("%+v", rs)
	}
	if string(rs[0].Extra["top_p"]) != "0.9" || string(rs[0].Extra["stop"]) != `["END"]` || string(rs[0].Extra["guardrails"]) != `{"enabled":true}` {
		t.Errorf("extra %s", rs[0].Extra)
	}
	if err := rs[0].Validate(); err != nil {
		t.Error(err)
	}
	// A template variable with no value stops before anything is sent.
	if _, err := Requests(&Options{Suite: &evals.Suite{}, Shipped: sh}, it, 1); err == nil || !strings.Contains(err.Error(), "customer_name") {
		t.Errorf("missing variable: %v", err)
	}
}

// A side-by-side judge that prefers Paris, wherever it is: the good
// version's answer wins in both orders, so it counts; a judge that always
// says A agrees with neither order, so every item is a tie.
func TestPairwiseOrderSwapped(t *testing.T) {
	suite := demoSuite(t)
	good, _ := serve(t, version(t, "good"))
	bad, _ := serve(t, version(t, "regressed"))
	cand, err := Run(t.Context(), good, Options{Suite: suite, Model: "demo-model", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	base, err := Run(t.Context(), bad, Options{Suite: suite, Model: "demo-model", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	prefersParis, _ := serve(t, sim.Config{Model: "judge", Default: "TIE", Answers: []sim.Answer{
		{Regex: `(?s)<answer_a>\s*The capital of France is Paris`, Text: "A"},
		{Regex: `(?s)<answer_b>\s*The capital of France is Paris`, Text: "B"},
	}})
	j := &Judge{Engine: prefersParis, Model: "judge", Retry: fastRetry}
	p, err := j.Pairwise(suite, "Which answer is correct?", base.Samples, cand.Samples)
	if err != nil {
		t.Fatal(err)
	}
	if p.WinRate.Wins != 1 || p.WinRate.Losses != 0 || p.Items[0].ID != "capital-fr" || p.Items[0].Outcome != evals.Win ||
		p.Items[0].CandidateFirst != "A" || p.Items[0].CandidateSecond != "B" || p.WinRate.Ties != len(p.Items)-1 {
		t.Errorf("%+v", p)
	}
	alwaysA, _ := serve(t, sim.Config{Model: "judge", Default: "A"})
	j = &Judge{Engine: alwaysA, Model: "judge", Retry: fastRetry}
	if p, err = j.Pairwise(suite, "r", base.Samples, cand.Samples); err != nil || p.WinRate.Ties != 12 {
		t.Errorf("a judge with position bias: %v %+v", err, p.WinRate)
	}
	garbage, _ := serve(t, sim.Config{Model: "judge", Default: "the first one"})
	j = &Judge{Engine: garbage, Model: "judge", Retry: fastRetry}
	if _, err := j.Pairwise(suite, "r", base.Samples, cand.Samples); err == nil || !strings.Contains(err.Error(), `item "capital-fr"`) {
		t.Errorf("garbage: %v", err)
	}
}
