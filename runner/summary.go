package runner

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Definitions are the pinned metric definitions (DESIGN.md §4), written
// into every report so that nobody compares one tool's "ITL" with
// another's (runner.md (a)).
var Definitions = map[string]string{
	"ttft":           "time to first token: first stream event carrying generated output (content, reasoning or tool call; not the role-only chunk, not the usage chunk) minus the actual send time",
	"tpot":           "time per output token: (e2e - ttft) / (output_tokens - 1), for successful streamed requests with at least 2 output tokens (vLLM's TPOT; GuideLLM and AIPerf call it ITL)",
	"inter_chunk":    "gaps between consecutive generated stream events of a request, pooled over requests (vLLM's ITL, AIPerf's ICL); one event may carry several tokens",
	"e2e":            "end-to-end latency: end of the response ([DONE], or the last byte) minus the actual send time",
	"output_tokens":  "the server's usage.completion_tokens when it sent usage (source server); otherwise the number of generated stream events (source client); unknown for a whole response without usage, such as a request of a batch, whose usage the server reports for the batch only",
	"schedule_lag":   "actual send time minus scheduled send time; large values mean the client, not the server, limited the rate",
	"throughput":     "measured (non-warm-up) successful requests and their output tokens, divided by the measured duration: from the start of the measured phase to the end of its last response",
	"goodput":        "successful measured requests meeting every SLO given (ttft, tpot with 0 for single-token outputs, e2e; value <= limit) per second of measured duration",
	"percentiles":    "linear interpolation between closest ranks (numpy's default, as vLLM reports)",
	"errors":         "failed measured requests by class; failed requests are excluded from latency statistics",
	"energy_per_tok": "GPU energy between the first and last sample of the run, summed over GPUs, divided by measured output tokens",
}

// SLO are per-request limits for goodput; a zero field is not checked.
type SLO struct {
	TTFT Duration `json:"ttft,omitempty"`
	TPOT Duration `json:"tpot,omitempty"`
	E2E  Duration `json:"e2e,omitempty"`
}

// IsZero reports an SLO that checks nothing.
func (s SLO) IsZero() bool { return s == SLO{} }

func (s SLO) String() string {
	var parts []string
	for _, p := range []struct {
		name string
		d    Duration
	}{{"ttft", s.TTFT}, {"tpot", s.TPOT}, {"e2e", s.E2E}} {
		if p.d > 0 {
			parts = append(parts, p.name+"<="+time.Duration(p.d).String())
		}
	}
	return strings.Join(parts, ",")
}

// ParseSLO reads "ttft:500ms,tpot:50ms,e2e:10s" (vLLM's --goodput names,
// with units).
func ParseSLO(s string) (SLO, error) {
	var slo SLO
	if strings.TrimSpace(s) == "" {
		return slo, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), ":")
		if !ok {
			return slo, fmt.Errorf("SLO %q: want name:duration, such as ttft:500ms", kv)
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return slo, fmt.Errorf("SLO %q: %q is not a positive duration such as 500ms", kv, v)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "ttft":
			slo.TTFT = Duration(d)
		case "tpot":
			slo.TPOT = Duration(d)
		case "e2e", "e2el":
			slo.E2E = Duration(d)
		default:
			return slo, fmt.Errorf("SLO %q: unknown metric %q (want ttft, tpot or e2e)", kv, k)
		}
	}
	return slo, nil
}

// Stats are the distribution of one metric, in seconds (or tokens/s).
type Stats struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// NewStats summarises xs; it sorts xs in place.
func NewStats(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	slices.Sort(xs)
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return Stats{Count: len(xs), Mean: sum / float64(len(xs)), Min: xs[0], Max: xs[len(xs)-1],
		P50: Percentile(xs, 50), P90: Percentile(xs, 90), P95: Percentile(xs, 95), P99: Percentile(xs, 99)}
}

// Percentile is the p-th percentile of sorted xs by linear interpolation
// between closest ranks (numpy's default method).
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	h := (float64(len(sorted)) - 1) * p / 100
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-lo)*(sorted[i+1]-sorted[i])
}

// Summary is a run's metrics, computed from its timelines.
type Summary struct {
	// Requests counts measured requests sent; Warmup those excluded.
	Requests   int           `json:"requests"`
	Warmup     int           `json:"warmup"`
	Succeeded  int           `json:"succeeded"`
	Failed     int           `json:"failed"`
	Errors     map[Class]int `json:"errors"`
	ErrorRate  float64       `json:"error_rate"`
	Duration   Duration      `json:"duration"`
	Tokens     TokenCounts   `json:"tokens"`
	Rates      Rates         `json:"rates"`
	TTFT       Stats         `json:"ttft"`
	TPOT       Stats         `json:"tpot"`
	InterChunk Stats         `json:"inter_chunk"`
	E2E        Stats         `json:"e2e"`
	// OutputTokensPerRequest is the distribution of output tokens.
	OutputTokensPerRequest Stats    `json:"output_tokens_per_request"`
	ScheduleLag            Stats    `json:"schedule_lag"`
	Goodput                *Goodput `json:"goodput,omitempty"`
	// Retried counts measured requests sent more than once.
	Retried int `json:"retried,omitempty"`
	// Batched counts requests sent in batches, and the mean batch size.
	Batched       int     `json:"batched,omitempty"`
	MeanBatchSize float64 `json:"mean_batch_size,omitempty"`
}

// TokenCounts are the tokens of successful measured requests and where
// their counts came from.
type TokenCounts struct {
	Input  int `json:"input"`
	Output int `json:"output"`
	// ServerCounted and ClientCounted count requests whose output tokens
	// came from the server's usage or from counting stream events.
	ServerCounted int `json:"server_counted"`
	ClientCounted int `json:"client_counted"`
	// Unknown counts requests with no count at all: whole responses
	// without usage (batched requests), left out of Output.
	Unknown int `json:"unknown,omitempty"`
}

// Rates are per second of measured duration.
type Rates struct {
	RequestsPerSecond     float64 `json:"requests_per_second"`
	OutputTokensPerSecond float64 `json:"output_tokens_per_second"`
	// PeakOutputTokensPerSecond is the most output tokens finished in one
	// whole second of the run (vLLM reports the same).
	PeakOutputTokensPerSecond float64 `json:"peak_output_tokens_per_second"`
}

// Goodput is the share and rate of requests meeting the SLO.
type Goodput struct {
	SLO               SLO     `json:"slo"`
	Good              int     `json:"good"`
	Ratio             float64 `json:"ratio"`
	RequestsPerSecond float64 `json:"requests_per_second"`
}

// Measures are one request's metrics under Definitions. OK is false for
// failed requests, which have only E2E.
type Measures struct {
	OK           bool
	TTFT         time.Duration // zero when unknown (not streamed, or nothing generated)
	HasTTFT      bool
	E2E          time.Duration
	TPOT         time.Duration
	HasTPOT      bool
	OutputTokens int
	FromServer   bool
	// TokensUnknown is set for a whole response without usage (a request
	// of a batch, whose usage the server reports for the batch only):
	// there are no events to count.
	TokensUnknown bool
}

// Measure computes one request's metrics from its timeline.
func Measure(tl *Timeline) Measures {
	m := Measures{OK: tl.Error == nil, E2E: time.Duration(tl.Done)}
	chunks, whole := 0, false
	for _, e := range tl.Events {
		if !e.Kind.Generated() {
			continue
		}
		if e.Kind == EventResponse {
			whole = true
			continue
		}
		if !m.HasTTFT {
			m.TTFT, m.HasTTFT = time.Duration(e.At), true
		}
		chunks++
	}
	if tl.Usage != nil {
		m.OutputTokens, m.FromServer = tl.Usage.CompletionTokens, true
	} else {
		m.OutputTokens, m.TokensUnknown = chunks, whole && chunks == 0
	}
	if m.OK && m.HasTTFT && m.OutputTokens > 1 {
		m.TPOT, m.HasTPOT = (m.E2E-m.TTFT)/time.Duration(m.OutputTokens-1), true
	}
	return m
}

// Meets reports whether a successful request's measures meet the SLO;
// TPOT counts as zero for outputs of one token, as vLLM's goodput does.
func (s SLO) Meets(m Measures) bool {
	if !m.OK {
		return false
	}
	if s.TTFT > 0 && (!m.HasTTFT || m.TTFT > time.Duration(s.TTFT)) {
		return false
	}
	if s.TPOT > 0 && m.HasTPOT && m.TPOT > time.Duration(s.TPOT) {
		return false
	}
	if s.E2E > 0 && m.E2E > time.Duration(s.E2E) {
		return false
	}
	return true
}

// Summarize computes a run's metrics from its timelines with the
// definitions in Definitions. Warm-up timelines are counted and otherwise
// ignored; failed requests count only as errors.
func Summarize(res *Result, slo SLO) Summary {
	s := Summary{Errors: map[Class]int{}, Duration: res.Duration}
	var ttft, tpot, gaps, e2e, outTok, lag []float64
	perSecond := map[int64]int{}
	good, batchSum := 0, 0
	for _, tl := range res.Timelines {
		if tl.Warmup {
			s.Warmup++
			continue
		}
		s.Requests++
		if tl.Attempts > 1 {
			s.Retried++
		}
		if tl.Batch > 0 {
			s.Batched++
			batchSum += tl.Batch
		}
		lag = append(lag, max(0, (time.Duration(tl.Sent)-time.Duration(tl.Scheduled)).Seconds()))
		m := Measure(tl)
		if !m.OK {
			s.Failed++
			s.Errors[tl.Error.Class]++
			continue
		}
		s.Succeeded++
		e2e = append(e2e, m.E2E.Seconds())
		if m.HasTTFT {
			ttft = append(ttft, m.TTFT.Seconds())
		}
		if m.HasTPOT {
			tpot = append(tpot, m.TPOT.Seconds())
		}
		tl.eachGap(func(g Duration) { gaps = append(gaps, g.Seconds()) })
		outTok = append(outTok, float64(m.OutputTokens))
		s.Tokens.Output += m.OutputTokens
		if tl.Usage != nil {
			s.Tokens.Input += tl.Usage.PromptTokens
		}
		switch {
		case m.FromServer:
			s.Tokens.ServerCounted++
		case m.TokensUnknown:
			s.Tokens.Unknown++
		default:
			s.Tokens.ClientCounted++
		}
		end := time.Duration(tl.Sent) + time.Duration(tl.Done)
		perSecond[int64(end/time.Second)] += m.OutputTokens
		if !slo.IsZero() && slo.Meets(m) {
			good++
		}
	}
	if s.Requests > 0 {
		s.ErrorRate = float64(s.Failed) / float64(s.Requests)
	}
	if s.Batched > 0 {
		s.MeanBatchSize = float64(batchSum) / float64(s.Batched)
	}
	if secs := s.Duration.Seconds(); secs > 0 {
		s.Rates.RequestsPerSecond = float64(s.Succeeded) / secs
		s.Rates.OutputTokensPerSecond = float64(s.Tokens.Output) / secs
		whole := int64(secs)
		for sec, n := range perSecond {
			if sec < whole { // only whole seconds: the last partial one would understate
				s.Rates.PeakOutputTokensPerSecond = max(s.Rates.PeakOutputTokensPerSecond, float64(n))
			}
		}
	}
	s.TTFT, s.TPOT, s.InterChunk, s.E2E = NewStats(ttft), NewStats(tpot), NewStats(gaps), NewStats(e2e)
	s.OutputTokensPerRequest, s.ScheduleLag = NewStats(outTok), NewStats(lag)
	if !slo.IsZero() {
		g := &Goodput{SLO: slo, Good: good}
		if s.Requests > 0 {
			g.Ratio = float64(good) / float64(s.Requests)
		}
		if secs := s.Duration.Seconds(); secs > 0 {
			g.RequestsPerSecond = float64(good) / secs
		}
		s.Goodput = g
	}
	return s
}
