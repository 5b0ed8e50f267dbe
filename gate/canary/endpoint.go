package canary

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// JudgeRequest is a call to the judge endpoint: which variants to compare
// over which window. Start (RFC 3339) or Window (a duration back from now)
// bounds the window; the variants default to the plan's.
type JudgeRequest struct {
	Baseline Variant `json:"baseline"`
	Canary   Variant `json:"canary"`
	Start    string  `json:"start"`
	Window   string  `json:"window"`
}

// JudgeResponse is the judge endpoint's answer: the look's Assessment with
// the window it covered. Argo Rollouts' web metric provider reads status:
// successCondition `result.status != "fail" && result.status != "nodata"`,
// failureCondition `result.status == "fail"` (docs/promotion.md).
type JudgeResponse struct {
	Assessment
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Failed  []string  `json:"failed,omitempty"`
	Missing []string  `json:"missing,omitempty"`
}

// NewJudgeHandler serves the judge over HTTP for traffic moved by something
// else, in the shape Argo Rollouts' web metric provider calls: GET
// /v1/judge?start=…|window=…&baseline=DIGEST&canary=DIGEST
// [&baseline_variant=NAME&canary_variant=NAME], or POST a JudgeRequest.
// It answers 200 with a JudgeResponse, 400 for a bad request, 405 for
// another method.
func NewJudgeHandler(plan *Config, prov Provider, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/judge", func(w http.ResponseWriter, r *http.Request) {
		var req JudgeRequest
		switch r.Method {
		case http.MethodGet:
			q := r.URL.Query()
			req = JudgeRequest{
				Baseline: Variant{Name: q.Get("baseline_variant"), Digest: q.Get("baseline")},
				Canary:   Variant{Name: q.Get("canary_variant"), Digest: q.Get("canary")},
				Start:    q.Get("start"), Window: q.Get("window"),
			}
		case http.MethodPost:
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				judgeError(w, http.StatusBadRequest, fmt.Errorf("reading the request: %w", err))
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			judgeError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s: use GET or POST", r.Method))
			return
		}
		end := now()
		var start time.Time
		switch {
		case (req.Start == "") == (req.Window == ""):
			judgeError(w, http.StatusBadRequest, fmt.Errorf("give start (RFC 3339, when the canary started) or window (such as 30m), not both or neither"))
			return
		case req.Start != "":
			t, err := time.Parse(time.RFC3339, req.Start)
			if err != nil || !t.Before(end) {
				judgeError(w, http.StatusBadRequest, fmt.Errorf("start %q: want an RFC 3339 time in the past, such as 2026-12-04T10:00:00Z", req.Start))
				return
			}
			start = t
		default:
			d, err := time.ParseDuration(req.Window)
			if err != nil || d <= 0 {
				judgeError(w, http.StatusBadRequest, fmt.Errorf("window %q: want a positive duration such as 30m", req.Window))
				return
			}
			start = end.Add(-d)
		}
		if req.Baseline.Name == "" {
			req.Baseline.Name = plan.Baseline.Name
		}
		if req.Canary.Name == "" {
			req.Canary.Name = plan.Canary.Name
		}
		in := make([]Input, len(plan.Metrics))
		for i, m := range plan.Metrics {
			in[i].Metric = m
			in[i].Baseline, in[i].BaselineErr = prov.Observe(r.Context(), Query{Metric: m, Variant: req.Baseline, Start: start, End: end})
			in[i].Canary, in[i].CanaryErr = prov.Observe(r.Context(), Query{Metric: m, Variant: req.Canary, Start: start, End: end})
		}
		a := Judge(in, plan.Alpha)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(JudgeResponse{Assessment: a, Start: start, End: end, Failed: a.Failed(), Missing: a.Missing()})
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

func judgeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
