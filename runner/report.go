package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/runner/gpu"
)

// ReportSchema identifies the bench report format; it is also the
// predicate type when the report is attached as an attestation.
const ReportSchema = "https://airlock.dev/attestations/bench/v1"

// Report is a benchmark run's record: what was measured (the release
// digest, the engine, the load), with which definitions, the summary, GPU
// telemetry and every request's timeline, so the summary can be
// recomputed and audited.
type Report struct {
	Schema      string            `json:"schema"`
	RunID       string            `json:"run_id"`
	Tool        string            `json:"tool"`
	Release     *Release          `json:"release,omitempty"`
	Engine      EngineInfo        `json:"engine"`
	Load        Load              `json:"load"`
	Timeout     Duration          `json:"timeout,omitempty"`
	Batch       Batch             `json:"batch,omitzero"`
	Started     time.Time         `json:"started"`
	Interrupted bool              `json:"interrupted,omitempty"`
	Definitions map[string]string `json:"definitions"`
	Summary     Summary           `json:"summary"`
	GPU         GPUReport         `json:"gpu"`
	// Requests are the timelines; omitted when the caller asked for a
	// summary only.
	Requests []*Timeline `json:"requests,omitempty"`
}

// Release names what was benchmarked.
type Release struct {
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// GPUReport is the GPU side of a run: why there is none, or the summary of
// its 1 Hz samples and the energy per output token.
type GPUReport struct {
	Status                     string       `json:"status"`
	Summary                    *gpu.Summary `json:"summary,omitempty"`
	EnergyPerOutputTokenJoules *float64     `json:"energy_per_output_token_joules,omitempty"`
}

// NewGPUReport summarises GPU samples against a run's output tokens.
// Energy per token is left out when any GPU's energy is unknown.
func NewGPUReport(status gpu.Status, sum *gpu.Summary, outputTokens int) GPUReport {
	r := GPUReport{Status: status.String(), Summary: sum}
	if sum == nil || len(sum.GPUs) == 0 || outputTokens == 0 {
		return r
	}
	var joules float64
	for _, g := range sum.GPUs {
		if g.ParentUUID != "" {
			continue // a MIG instance's energy is its parent's
		}
		if g.EnergyJoules == nil {
			return r
		}
		joules += *g.EnergyJoules
	}
	per := joules / float64(outputTokens)
	r.EnergyPerOutputTokenJoules = &per
	return r
}

// WriteJSON writes r, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the human summary: counts, rates, latency percentiles
// in milliseconds, errors by class and the GPU line.
func (r *Report) WriteTable(w io.Writer) error {
	s := r.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "run %s", r.RunID)
	if r.Release != nil && r.Release.Digest != "" {
		fmt.Fprintf(&b, " of %s", r.Release.Digest)
	}
	fmt.Fprintf(&b, " on %s", r.Engine.Kind)
	if r.Engine.Endpoint != "" {
		fmt.Fprintf(&b, " %s", r.Engine.Endpoint)
	}
	if r.Engine.Model != "" {
		fmt.Fprintf(&b, " (model %s)", r.Engine.Model)
	}
	fmt.Fprintf(&b, "\nload %s", loadString(r.Load))
	if r.Interrupted {
		b.WriteString(" — INTERRUPTED, partial results")
	}
	fmt.Fprintf(&b, "\nrequests %d measured (+%d warm-up), %d ok, %d failed (%.2f%%) in %.2fs\n",
		s.Requests, s.Warmup, s.Succeeded, s.Failed, 100*s.ErrorRate, s.Duration.Seconds())
	fmt.Fprintf(&b, "throughput %.2f req/s, %.1f output tok/s", s.Rates.RequestsPerSecond, s.Rates.OutputTokensPerSecond)
	if s.Rates.PeakOutputTokensPerSecond > 0 {
		fmt.Fprintf(&b, " (peak %.0f in a second)", s.Rates.PeakOutputTokensPerSecond)
	}
	fmt.Fprintf(&b, ", tokens in %d out %d", s.Tokens.Input, s.Tokens.Output)
	if s.Tokens.ClientCounted > 0 {
		fmt.Fprintf(&b, " (%d requests counted by stream events: no server usage)", s.Tokens.ClientCounted)
	}
	if s.Tokens.Unknown > 0 {
		fmt.Fprintf(&b, " (%d batched requests without a count of their own)", s.Tokens.Unknown)
	}
	b.WriteString("\n")
	if g := s.Goodput; g != nil {
		fmt.Fprintf(&b, "goodput %.2f req/s, %d of %d requests (%.1f%%) met %s\n", g.RequestsPerSecond, g.Good, s.Requests, 100*g.Ratio, g.SLO)
	}
	if s.Batched > 0 {
		fmt.Fprintf(&b, "batched %d requests, mean batch %.1f\n", s.Batched, s.MeanBatchSize)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric (ms)\tn\tmean\tp50\tp90\tp95\tp99\tmax\t")
	row := func(name string, st Stats) {
		if st.Count == 0 {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t-\t-\t-\t\n", name)
			return
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", name, st.Count,
			1e3*st.Mean, 1e3*st.P50, 1e3*st.P90, 1e3*st.P95, 1e3*st.P99, 1e3*st.Max)
	}
	row("ttft", s.TTFT)
	row("tpot", s.TPOT)
	row("inter-chunk", s.InterChunk)
	row("e2e", s.E2E)
	row("schedule lag", s.ScheduleLag)
	if err := tw.Flush(); err != nil {
		return err
	}
	b.Reset()
	if s.Failed > 0 {
		b.WriteString("errors:")
		classes := make([]Class, 0, len(s.Errors))
		for c := range s.Errors {
			classes = append(classes, c)
		}
		slices.Sort(classes)
		for _, c := range classes {
			fmt.Fprintf(&b, " %s %d", c, s.Errors[c])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "gpu: %s", r.GPU.Status)
	if sum := r.GPU.Summary; sum != nil {
		for _, g := range sum.GPUs {
			fmt.Fprintf(&b, "\n  %s %s", g.UUID, g.Name)
			if g.PeakMemoryUsed != nil {
				fmt.Fprintf(&b, " peak memory %.2f GiB", float64(*g.PeakMemoryUsed)/(1<<30))
			}
			if g.MeanUtilization != nil {
				fmt.Fprintf(&b, " utilisation mean %.0f%% peak %.0f%%", 100**g.MeanUtilization, 100**g.PeakUtilization)
			}
			if g.EnergyJoules != nil {
				fmt.Fprintf(&b, " energy %.1f J", *g.EnergyJoules)
			}
		}
		if e := r.GPU.EnergyPerOutputTokenJoules; e != nil {
			fmt.Fprintf(&b, "\n  energy per output token %.4f J", *e)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func loadString(l Load) string {
	var s string
	switch l.Arrival {
	case Closed:
		s = fmt.Sprintf("closed loop, %d concurrent", l.Concurrency)
	case Gamma:
		s = fmt.Sprintf("gamma arrivals at %g req/s, burstiness %g", l.Rate, l.Burstiness)
	default:
		s = fmt.Sprintf("%s arrivals at %g req/s", l.Arrival, l.Rate)
	}
	if l.Arrival != Closed && l.Concurrency > 0 {
		s += fmt.Sprintf(", at most %d in flight", l.Concurrency)
	}
	s += fmt.Sprintf(", %d requests", l.Requests)
	if l.Duration > 0 {
		s += fmt.Sprintf(" or %s", time.Duration(l.Duration))
	}
	return s
}
