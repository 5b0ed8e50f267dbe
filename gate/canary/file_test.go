package canary_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/gate/canary"
	"github.com/airlock-dev/airlock/gate/canary/providertest"
)

// TestFileConformance writes the suite's dataset as an observations file,
// cumulative at every second as a replay of a scraped canary would be, in
// YAML and in JSON, and runs the conformance suite on it. The file holds
// the exact values, so nothing has a tolerance.
func TestFileConformance(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			providertest.Run(t, func(t *testing.T, d providertest.Dataset) providertest.Setup {
				path := filepath.Join(t.TempDir(), "observations."+format)
				if err := os.WriteFile(path, observationsFile(d, format), 0o600); err != nil {
					t.Fatal(err)
				}
				p, err := canary.LoadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return providertest.Setup{Provider: p, Start: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
			})
		})
	}
}

// observationsFile renders d's cumulative observations at every step. The
// latency is written with stddev and the score with var, so both are read.
func observationsFile(d providertest.Dataset, format string) []byte {
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	var entries []map[string]any
	var lines []string
	for _, m := range d.Metrics {
		for _, v := range append(d.Variants, d.Idle) {
			for at := time.Duration(0); at <= d.Duration; at += d.Step {
				o := d.Exact(m.Name, v, at)
				e := map[string]any{"at": at.String(), "metric": m.Name, "variant": v.Name, "digest": v.Digest}
				fields := []string{"at: " + at.String(), "metric: " + m.Name, "variant: " + v.Name, "digest: '" + v.Digest + "'"}
				switch {
				case m.Test != canary.TestMean:
					e["requests"], e["events"] = o.N, o.Events
					fields = append(fields, "requests: "+num(o.N), "events: "+num(o.Events))
				case o.N == 0:
					e["n"] = 0
					fields = append(fields, "n: 0")
				case m.Name == providertest.Latency:
					e["n"], e["mean"], e["stddev"] = o.N, o.Mean, math.Sqrt(o.Var)
					fields = append(fields, "n: "+num(o.N), "mean: "+num(o.Mean), "stddev: "+num(math.Sqrt(o.Var)))
				default:
					e["n"], e["mean"], e["var"] = o.N, o.Mean, o.Var
					fields = append(fields, "n: "+num(o.N), "mean: "+num(o.Mean), "var: "+num(o.Var))
				}
				entries = append(entries, e)
				lines = append(lines, "  - {"+strings.Join(fields, ", ")+"}")
			}
		}
	}
	if format == "json" {
		b, err := json.MarshalIndent(map[string]any{"observations": entries}, "", "  ")
		if err != nil {
			panic(err)
		}
		return b
	}
	return []byte("# observations are cumulative since the canary started\nobservations:\n" + strings.Join(lines, "\n") + "\n")
}

func TestFileObserve(t *testing.T) {
	p, err := canary.ParseFile([]byte(`
observations:
  - {at: 0s, metric: ttft, variant: canary, n: 0}
  - {at: 30s, metric: ttft, variant: canary, n: 40, mean: 0.071, stddev: 0.012}
  - {at: 1m, metric: ttft, variant: canary, n: 90, mean: 0.074, var: 0.0002}
  - {at: 30s, metric: errors, variant: canary, requests: 400, events: 3}
  - {at: 30s, metric: errors, variant: stable, digest: "sha256:aa", requests: 100, events: 1}
  - {at: 30s, metric: errors, variant: stable, digest: "sha256:bb", requests: 200, events: 4}
`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ttft := canary.Metric{Name: "ttft", Test: canary.TestMean}
	errs := canary.Metric{Name: "errors", Test: canary.TestCount}
	q := func(m canary.Metric, v canary.Variant, w time.Duration) canary.Query {
		return canary.Query{Metric: m, Variant: v, Start: start, End: start.Add(w)}
	}
	canaryV := canary.Variant{Name: "canary", Digest: "sha256:cc"}
	for _, tc := range []struct {
		name    string
		q       canary.Query
		want    canary.Observation
		wantErr string // "" for none; ErrNoData is checked with errors.Is
		noData  bool
	}{
		{name: "latest at or before the window", q: q(ttft, canaryV, 59*time.Second),
			want: canary.Observation{N: 40, Mean: 0.071, Var: 0.012 * 0.012}},
		{name: "var as given", q: q(ttft, canaryV, time.Hour),
			want: canary.Observation{N: 90, Mean: 0.074, Var: 0.0002}},
		{name: "n 0 is no data", q: q(ttft, canaryV, 29*time.Second), noData: true},
		{name: "before the first entry", q: q(errs, canaryV, 29*time.Second), noData: true},
		{name: "counts", q: q(errs, canaryV, 30*time.Second),
			want: canary.Observation{N: 400, Events: 3, Mean: 3.0 / 400, Var: 3.0 / 400 * (1 - 3.0/400)}},
		{name: "digest picks the deployment", q: q(errs, canary.Variant{Name: "stable", Digest: "sha256:bb"}, 30*time.Second),
			want: canary.Observation{N: 200, Events: 4, Mean: 0.02, Var: 0.02 * 0.98}},
		{name: "an unlisted digest has no data", q: q(errs, canary.Variant{Name: "stable", Digest: "sha256:cc"}, 30*time.Second), noData: true},
		{name: "an unknown metric has no data", q: q(canary.Metric{Name: "cost", Test: canary.TestMean}, canaryV, time.Hour), noData: true},
		{name: "a mean metric given as counts", q: q(canary.Metric{Name: "errors", Test: canary.TestMean}, canaryV, time.Hour),
			wantErr: "errors is a mean metric, but the observations file gives it as requests and events (line 6)"},
		{name: "a count metric given as a mean", q: q(canary.Metric{Name: "ttft", Test: canary.TestProportion}, canaryV, time.Hour),
			wantErr: "ttft is a proportion metric, but the observations file gives it as n and mean (line 5); give requests and events"},
		{name: "a window that ends before it starts", q: canary.Query{Metric: ttft, Variant: canaryV, Start: start, End: start.Add(-time.Second)},
			wantErr: "the window ends"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Observe(t.Context(), tc.q)
			switch {
			case tc.noData:
				if !errors.Is(err, canary.ErrNoData) {
					t.Fatalf("got %+v, %v; want ErrNoData", got, err)
				}
			case tc.wantErr != "":
				if err == nil || errors.Is(err, canary.ErrNoData) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case math.Abs(got.N-tc.want.N) > 0 || math.Abs(got.Events-tc.want.Events) > 0 ||
				math.Abs(got.Mean-tc.want.Mean) > 1e-15 || math.Abs(got.Var-tc.want.Var) > 1e-15:
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"empty", "", []string{"the file is empty"}},
		{"unknown field", "observations:\n  - {at: 1s, metric: m, variant: v, n: 1, mean: 1, sttdev: 1}\n",
			[]string{"line 2: field sttdev not found"}},
		{"not a list", "observations: {at: 1s}\n", []string{"line 1:"}},
		{"bad duration", "observations:\n  - {at: soon, metric: m, variant: v, n: 0}\n", []string{`line 2: "soon" is not a duration`}},
		{"negative duration", "observations:\n  - {at: -1s, metric: m, variant: v, n: 0}\n", []string{`line 2: "-1s" is not a duration`}},
		{"required fields", "observations:\n  - {n: 3}\n",
			[]string{"line 2: observations[0]: at: required", "metric: required", "variant: required", "mean: required"}},
		{"both forms", "observations:\n  - {at: 1s, metric: m, variant: v, n: 3, requests: 3, events: 1}\n",
			[]string{"line 2: observations[0]: give n, mean and var or stddev (a mean metric) or requests and events"}},
		{"neither form", "observations:\n  - {at: 1s, metric: m, variant: v}\n",
			[]string{"line 2: observations[0]: give n, mean and var or stddev"}},
		{"var and stddev", "observations:\n  - {at: 1s, metric: m, variant: v, n: 3, mean: 1, var: 1, stddev: 1}\n",
			[]string{"line 2: observations[0]: give var or stddev, not both"}},
		{"no spread", "observations:\n  - {at: 1s, metric: m, variant: v, n: 3, mean: 1}\n",
			[]string{"line 2: observations[0]: var or stddev: required when n is 2 or more"}},
		{"events without requests", "observations:\n  - {at: 1s, metric: m, variant: v, events: 1}\n",
			[]string{"line 2: observations[0]: a count or proportion needs both requests and events"}},
		{"events exceed requests", "observations:\n  - {at: 1s, metric: m, variant: v, requests: 2, events: 3}\n",
			[]string{"line 2: observations[0]: events: 3 exceed requests: 2"}},
		{"negative", "observations:\n  - {at: 1s, metric: m, variant: v, n: -2, mean: 1, var: 1}\n",
			[]string{"line 2: observations[0]: n: -2, want a non-negative number"}},
		{"not a number", "observations:\n  - {at: 1s, metric: m, variant: v, n: many}\n",
			[]string{"line 2: cannot unmarshal !!str `many` into float64"}},
		{"duplicate", "observations:\n  - {at: 1s, metric: m, variant: v, n: 0}\n  - {at: 1s, metric: m, variant: v, n: 0}\n",
			[]string{"line 3: a second observation of m for v at 1s (the first is on line 2)"}},
		{"mixed forms", "observations:\n  - {at: 1s, metric: m, variant: v, n: 0}\n  - {at: 2s, metric: m, variant: v, requests: 0, events: 0}\n",
			[]string{"line 3: m for v is given as requests and events here and as n and mean on line 2"}},
		{"every problem at once", "observations:\n  - {at: 1s, metric: m, variant: v, n: 3}\n  - {at: 1s, metric: m, variant: w, requests: 1, events: 2}\n",
			[]string{"line 2: observations[0]: mean: required", "line 3: observations[1]: events: 2 exceed requests: 1"}},
		{"json", "{\"observations\": [\n  {\"at\": \"1s\", \"metric\": \"m\", \"variant\": \"v\", \"n\": 3, \"mean\": 1}\n]}\n",
			[]string{"line 2: observations[0]: var or stddev: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := canary.ParseFile([]byte(tc.file))
			if err == nil {
				t.Fatalf("no error; want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFileNames(t *testing.T) {
	dir := t.TempDir()
	if _, err := canary.LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading the observations file") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte("observations:\n  - {at: 1s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := canary.LoadFile(path); err == nil || !strings.HasPrefix(err.Error(), path+": observations file: line 2:") {
		t.Errorf("bad file: %v; want it to start with the path and the line", err)
	}
}

// FuzzParseFile: whatever the file, ParseFile answers with a provider or an
// error, and a provider answers every query without panicking.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("observations:\n  - {at: 30s, metric: ttft, variant: canary, n: 40, mean: 0.071, stddev: 0.012}\n  - {at: 30s, metric: errors, variant: canary, requests: 400, events: 3}\n"))
	f.Add([]byte(`{"observations": [{"at": "1s", "metric": "m", "variant": "v", "digest": "d", "n": 0}]}`))
	f.Add([]byte("observations: []\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := canary.ParseFile(b)
		if err != nil {
			return
		}
		start := time.Unix(0, 0)
		for _, m := range []string{"ttft", "errors", "m"} {
			for _, test := range []canary.Test{canary.TestMean, canary.TestCount} {
				q := canary.Query{Metric: canary.Metric{Name: m, Test: test}, Variant: canary.Variant{Name: "canary"}, Start: start, End: start.Add(time.Hour)}
				o, err := p.Observe(t.Context(), q)
				if err == nil && !(o.N > 0) {
					t.Fatalf("%s: observation %+v without samples and without ErrNoData", m, o)
				}
				_ = fmt.Sprint(o)
			}
		}
	})
}
