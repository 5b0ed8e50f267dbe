package runner

import (
	"math"
	"testing"
	"time"
)

func TestPercentileMatchesNumpy(t *testing.T) {
	// numpy.percentile([1, 2, 3, 4], [50, 90, 99]) = 2.5, 3.7, 3.97
	xs := []float64{1, 2, 3, 4}
	for p, want := range map[float64]float64{0: 1, 50: 2.5, 90: 3.7, 99: 3.97, 100: 4} {
		if got := Percentile(xs, p); math.Abs(got-want) > 1e-12 {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("one value: %v", got)
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("no values should be NaN")
	}
}

func ms(n float64) Duration { return Duration(n * float64(time.Millisecond)) }

func TestSummarizeDefinitions(t *testing.T) {
	// Request a: role chunk at 1ms (not a token), content at 100, 110,
	// 130ms, usage says 4 tokens (one chunk carried two), done at 140ms.
	a := &Timeline{ID: "a", Scheduled: ms(0), Sent: ms(2), Done: ms(140), Attempts: 1,
		Events: []Event{{At: ms(1), Kind: EventRole}, {At: ms(100), Kind: EventContent}, {At: ms(110), Kind: EventContent},
			{At: ms(130), Kind: EventContent}, {At: ms(135), Kind: EventFinish}, {At: ms(140), Kind: EventUsage}},
		Usage: &Usage{PromptTokens: 7, CompletionTokens: 4}}
	// Request b: no usage; 2 content chunks count as 2 tokens (client).
	b := &Timeline{ID: "b", Scheduled: ms(500), Sent: ms(500), Done: ms(300), Attempts: 1,
		Events: []Event{{At: ms(200), Kind: EventReasoning}, {At: ms(300), Kind: EventContent}}}
	// Request c failed; d is warm-up.
	c := &Timeline{ID: "c", Scheduled: ms(600), Sent: ms(610), Done: ms(5), Attempts: 1, Error: &Error{Class: ClassHTTP5xx}}
	d := &Timeline{ID: "d", Warmup: true, Done: ms(1), Attempts: 1}
	res := &Result{Duration: Duration(2 * time.Second), Timelines: []*Timeline{d, a, b, c}}
	s := Summarize(res, SLO{TTFT: ms(150)})

	if s.Requests != 3 || s.Warmup != 1 || s.Succeeded != 2 || s.Failed != 1 || s.Errors[ClassHTTP5xx] != 1 {
		t.Fatalf("counts %+v", s)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("ttft p50", s.TTFT.P50, 0.150) // 0.100 and 0.200
	near("ttft min", s.TTFT.Min, 0.100)
	// a: (140-100)/(4-1); b: (300-200)/(2-1)
	near("tpot min", s.TPOT.Min, 0.040/3)
	near("tpot max", s.TPOT.Max, 0.100)
	// gaps: a 10, 20; b 100
	near("inter-chunk count", float64(s.InterChunk.Count), 3)
	near("inter-chunk max", s.InterChunk.Max, 0.100)
	near("e2e max", s.E2E.Max, 0.300)
	if s.Tokens.Output != 6 || s.Tokens.Input != 7 || s.Tokens.ServerCounted != 1 || s.Tokens.ClientCounted != 1 {
		t.Errorf("tokens %+v", s.Tokens)
	}
	near("req/s", s.Rates.RequestsPerSecond, 1)
	near("tok/s", s.Rates.OutputTokensPerSecond, 3)
	near("lag max", s.ScheduleLag.Max, 0.010)
	near("error rate", s.ErrorRate, 1.0/3)
	if s.Goodput == nil || s.Goodput.Good != 1 {
		t.Fatalf("goodput %+v: only a has ttft <= 150ms", s.Goodput)
	}
	near("goodput ratio", s.Goodput.Ratio, 1.0/3)
}

func TestSLOMeetsAndParse(t *testing.T) {
	slo, err := ParseSLO("ttft:500ms, tpot:50ms,e2e:10s")
	if err != nil {
		t.Fatal(err)
	}
	if slo.TTFT != ms(500) || slo.TPOT != ms(50) || slo.E2E != Duration(10*time.Second) {
		t.Fatalf("parsed %+v", slo)
	}
	one := Measures{OK: true, HasTTFT: true, TTFT: 100 * time.Millisecond, E2E: time.Second, OutputTokens: 1}
	if !slo.Meets(one) {
		t.Error("a one-token output has no TPOT and should count as meeting it")
	}
	slow := one
	slow.HasTPOT, slow.TPOT = true, 60*time.Millisecond
	if slo.Meets(slow) {
		t.Error("tpot 60ms should miss tpot:50ms")
	}
	for _, bad := range []string{"ttft", "ttft:fast", "ttft:-1s", "itl:5ms"} {
		if _, err := ParseSLO(bad); err == nil {
			t.Errorf("ParseSLO(%q) accepted", bad)
		}
	}
}
