package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner/sim"
)

// TestWeightSplit sends 10,000 requests at 25% and checks that the canary
// got its share within ±6 standard deviations of the binomial (a test
// that fails by chance about once in 500 million runs).
func TestWeightSplit(t *testing.T) {
	cfg, stable, canary := twoVariants(t, 25)
	tr := newTestRouter(t, cfg)
	const n = 10000
	for range n {
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody)))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	got := float64(canary.hits.Load())
	mean, sd := n*0.25, math.Sqrt(n*0.25*0.75)
	if math.Abs(got-mean) > 6*sd {
		t.Errorf("canary got %.0f of %d requests at 25%%, want %.0f±%.0f", got, n, mean, 6*sd)
	}
	if s := stable.hits.Load(); s+int64(got) != n {
		t.Errorf("stable %d + canary %.0f ≠ %d", s, got, n)
	}
	// The metrics count the same.
	if v := value(t, tr.reg, "airlock_router_requests_total", "variant", Canary, "digest", digestB, "code", "2xx"); v != got {
		t.Errorf("requests_total{canary} = %v, want %v", v, got)
	}
	if v := value(t, tr.reg, "airlock_router_weight", "variant", Canary); v != 25 {
		t.Errorf("weight{canary} = %v, want 25", v)
	}
	if v := value(t, tr.reg, "airlock_router_weight", "variant", Stable); v != 75 {
		t.Errorf("weight{stable} = %v, want 75", v)
	}
}

// TestSticky: the same key always gets the same variant, and keys on the
// canary at 5% are still on it at 25%, by header and by the body's user
// field.
func TestSticky(t *testing.T) {
	for _, by := range []string{"header", "user_field"} {
		t.Run(by, func(t *testing.T) {
			cfg, _, _ := twoVariants(t, 5)
			if by == "header" {
				cfg.Sticky.Header = "X-User-ID"
			} else {
				cfg.Sticky.UserField = true
			}
			tr := newTestRouter(t, cfg)
			variant := func(key string) string {
				t.Helper()
				rec := httptest.NewRecorder()
				body := chatBody
				if by == "user_field" {
					body = fmt.Sprintf(`{"model":"m","user":%q,"messages":[{"role":"user","content":"hi"}]}`, key)
				}
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
				if by == "header" {
					req.Header.Set("X-User-ID", key)
				}
				tr.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				return rec.Header().Get(VariantHeader)
			}
			const keys = 1000
			at5 := map[string]bool{}
			for i := range keys {
				key := fmt.Sprintf("user-%d", i)
				v := variant(key)
				if again := variant(key); again != v {
					t.Fatalf("%s went to %s, then to %s", key, v, again)
				}
				if v == Canary {
					at5[key] = true
				}
			}
			if _, err := tr.SetWeight(25); err != nil {
				t.Fatal(err)
			}
			on25 := 0
			for i := range keys {
				key := fmt.Sprintf("user-%d", i)
				v := variant(key)
				if at5[key] && v != Canary {
					t.Errorf("%s was on the canary at 5%% but not at 25%%", key)
				}
				if v == Canary {
					on25++
				}
			}
			// Shares of a good hash: 5% and 25% of 1,000 keys, within
			// ±6 standard deviations.
			for _, c := range []struct {
				got  int
				p    float64
				name string
			}{{len(at5), 0.05, "5%"}, {on25, 0.25, "25%"}} {
				mean, sd := keys*c.p, math.Sqrt(keys*c.p*(1-c.p))
				if math.Abs(float64(c.got)-mean) > 6*sd {
					t.Errorf("at %s, %d of %d keys on the canary, want %.0f±%.0f", c.name, c.got, keys, mean, 6*sd)
				}
			}
		})
	}
}

// TestKillSwitchNextRequest flips the kill-switch through the admin API
// and checks, without waiting, that the very next request goes to stable
// (or the fallback), by the answer's content and the upstreams' counters.
func TestKillSwitchNextRequest(t *testing.T) {
	for _, withFallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", withFallback), func(t *testing.T) {
			cfg, stable, canary := twoVariants(t, 100)
			var fallback *fakeUpstream
			want := Stable
			if withFallback {
				fallback = newFake(t, Fallback)
				cfg.KillSwitch.Fallback = &Upstream{URL: fallback.URL()}
				want = Fallback
			}
			tr := newTestRouter(t, cfg)
			for i := range 20 {
				if _, body, _ := tr.chat(t, chatBody); !strings.Contains(body, "answer from canary") {
					t.Fatalf("request %d before the kill-switch: %s", i, body)
				}
				code, _ := tr.adminDo(t, http.MethodPut, "/admin/kill-switch", `{"on":true,"reason":"ttft 40% worse"}`)
				if code != http.StatusOK {
					t.Fatalf("kill-switch on: %d", code)
				}
				s0, c0 := stable.hits.Load(), canary.hits.Load()
				_, body, variant := tr.chat(t, chatBody)
				if !strings.Contains(body, "answer from "+want) || variant != want {
					t.Fatalf("request %d after the kill-switch went to %s: %s", i, variant, body)
				}
				if canary.hits.Load() != c0 {
					t.Fatal("the canary was asked after the kill-switch")
				}
				if !withFallback && stable.hits.Load() != s0+1 {
					t.Fatal("stable was not asked after the kill-switch")
				}
				if v := value(t, tr.reg, "airlock_router_kill_switch"); v != 1 {
					t.Fatalf("kill_switch gauge = %v", v)
				}
				if code, _ := tr.adminDo(t, http.MethodPut, "/admin/kill-switch", `{"on":false}`); code != http.StatusOK {
					t.Fatalf("kill-switch off: %d", code)
				}
			}
		})
	}
}

// TestShed holds requests in flight at the upstream and checks that low
// priority is refused first, then everything.
func TestShed(t *testing.T) {
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	blocking := handling(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[]}`)
	})
	stable := newFake(t, Stable, blocking)
	// low_share 0.5 of 4: low requests are refused from 2 in flight,
	// all from 4.
	tr := newTestRouter(t, Config{Stable: Upstream{URL: stable.URL()}, Shed: ShedConfig{MaxInFlight: 4, LowShare: 0.5, LowValues: []string{"low", "batch"}}})
	var wg sync.WaitGroup
	hold := func() {
		wg.Go(func() {
			res, err := http.Post(tr.proxy.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
			if err != nil {
				t.Errorf("held request: %v", err)
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("held request: %d", res.StatusCode)
			}
		})
		<-arrived
	}
	defer func() { close(release); wg.Wait() }()
	hold()
	hold()
	if got := value(t, tr.reg, "airlock_router_in_flight"); got != 2 {
		t.Fatalf("in_flight = %v, want 2", got)
	}
	for _, p := range []string{"low", "Batch"} {
		code, body, _ := tr.chat(t, chatBody, "X-Priority", p)
		if code != http.StatusTooManyRequests || !strings.Contains(body, "low-priority") {
			t.Errorf("a %s request with 2 of 4 in flight: %d %s, want 429", p, code, body)
		}
	}
	hold() // normal priority still passes at 2 in flight…
	hold() // …and at 3
	req, _ := http.NewRequest(http.MethodPost, tr.proxy.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	res, err := tr.proxy.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("a normal request with 4 of 4 in flight: %d (Retry-After %q), want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if v := value(t, tr.reg, "airlock_router_shed_total", "priority", "low"); v != 2 {
		t.Errorf("shed_total{low} = %v, want 2", v)
	}
	if v := value(t, tr.reg, "airlock_router_shed_total", "priority", "normal"); v != 1 {
		t.Errorf("shed_total{normal} = %v, want 1", v)
	}
}

// TestSSEPassthrough: a stream reaches the client byte for byte, each
// event as it is sent (the upstream waits for the client to have read an
// event before it sends the next), and the simulator's vLLM-shaped stream
// is the same through the router as without it.
func TestSSEPassthrough(t *testing.T) {
	events := []string{
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
		": a comment\n\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"I can\\u0027\"},\"finish_reason\":null}]}\n\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t help with that.\"},\"finish_reason\":null}]}\r\n\r\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5,\"total_tokens\":9}}\n\ndata: [DONE]\n\n",
	}
	next := make(chan struct{})
	up := newFake(t, Stable, handling(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i, e := range events {
			if i > 0 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			// An event in two writes: the router reads lines split
			// across reads.
			io.WriteString(w, e[:len(e)/2])
			w.(http.Flusher).Flush()
			io.WriteString(w, e[len(e)/2:])
			w.(http.Flusher).Flush()
		}
	}))
	tr := newTestRouter(t, Config{Stable: Upstream{URL: up.URL(), Digest: digestA}, Safety: SafetyConfig{RefusalPatterns: []string{"I can't help with that"}}})
	// A router that held events back would stall the upstream, and this.
	hc := &http.Client{Timeout: time.Minute}
	res, err := hc.Post(tr.proxy.URL+"/v1/chat/completions", "application/json", strings.NewReader(streamBody))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	br := bufio.NewReader(res.Body)
	var got bytes.Buffer
	for i, e := range events {
		// Read exactly this event before the upstream sends the next:
		// a router that buffered would deadlock here.
		buf := make([]byte, len(e))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		got.Write(buf)
		if i < len(events)-1 {
			next <- struct{}{}
		}
	}
	rest, _ := io.ReadAll(br)
	got.Write(rest)
	if want := strings.Join(events, ""); got.String() != want {
		t.Errorf("the stream changed on the way:\ngot  %q\nwant %q", got.String(), want)
	}
	res.Body.Close()
	// The refusal spans two events and is JSON-escaped; usage is in the
	// last event.
	waitIdle(t, tr)
	if v := value(t, tr.reg, "airlock_router_safety_blocks_total", "variant", Stable); v != 1 {
		t.Errorf("safety_blocks_total = %v, want 1", v)
	}
	if v := value(t, tr.reg, "airlock_router_tokens_total", "variant", Stable, "type", "completion"); v != 5 {
		t.Errorf("completion tokens = %v, want 5", v)
	}
	if v := value(t, tr.reg, "airlock_router_ttft_seconds", "variant", Stable); v != 1 {
		t.Errorf("ttft samples = %v, want 1", v)
	}

	t.Run("simulator", func(t *testing.T) {
		clock := func() time.Time { return time.Unix(1700000000, 0) }
		cfg := sim.Config{Model: "demo", Answers: []sim.Answer{{Match: "France", Text: "The capital of France is Paris."}}}
		behind, direct := httptest.NewServer(sim.New(cfg, sim.WithClock(clock))), httptest.NewServer(sim.New(cfg, sim.WithClock(clock)))
		defer behind.Close()
		defer direct.Close()
		tr := newTestRouter(t, Config{Stable: Upstream{URL: behind.URL}})
		body := `{"model":"demo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"What is the capital of France?"}]}`
		get := func(base string) string {
			res, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		via, straight := get(tr.proxy.URL), get(direct.URL)
		if via != straight || !strings.Contains(via, "Paris") || !strings.HasSuffix(via, "data: [DONE]\n\n") {
			t.Errorf("through the router:\n%s\nstraight:\n%s", via, straight)
		}
		waitIdle(t, tr)
		// The simulator counts a word a token: 6 generated, 6 prompted.
		if v := value(t, tr.reg, "airlock_router_tokens_total", "variant", Stable, "type", "completion"); v != 6 {
			t.Errorf("completion tokens = %v, want 6", v)
		}
		if v := value(t, tr.reg, "airlock_router_tokens_total", "variant", Stable, "type", "prompt"); v != 6 {
			t.Errorf("prompt tokens = %v, want 6", v)
		}
	})
}

// waitIdle waits until no request is in flight. The proxy records an
// exchange just after the client may have read its last byte, and leaves
// the in-flight count after that; a test reading metrics right after a
// response could be a moment early.
func waitIdle(t *testing.T, tr *testRouter) {
	t.Helper()
	waitFor(t, func() bool { return tr.inFlight.Load() == 0 })
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMetricsPerVariant: TTFT, tokens, safety blocks and cost are counted
// per variant, streamed and whole.
func TestMetricsPerVariant(t *testing.T) {
	stable := newFake(t, Stable, finishing("content_filter"))
	canary := newFake(t, Canary, answering("Sorry", ", I can", "'t help", " with that."))
	tr := newTestRouter(t, Config{
		Stable: Upstream{URL: stable.URL(), Digest: digestA},
		Canary: &Upstream{URL: canary.URL(), Digest: digestB},
		Safety: SafetyConfig{RefusalPatterns: []string{"I can't help with that"}},
		Prices: Prices{Stable: &Price{PromptPer1K: 1, CompletionPer1K: 2}, Canary: &Price{PromptPer1K: 10, CompletionPer1K: 20}},
	})
	// Stable: 3 whole answers (3 prompt + 3 completion tokens each,
	// finish_reason content_filter).
	for range 3 {
		if code, body, _ := tr.chat(t, chatBody); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	if _, err := tr.SetWeight(100); err != nil {
		t.Fatal(err)
	}
	// Canary: 2 streams with usage, 1 without (tokens not counted), each
	// a refusal split across chunks.
	for _, body := range []string{streamBody, streamBody, strings.Replace(streamBody, `"stream_options":{"include_usage":true},`, "", 1)} {
		if code, b, _ := tr.chat(t, body); code != 200 || !strings.Contains(b, "[DONE]") {
			t.Fatalf("%d %s", code, b)
		}
	}
	waitIdle(t, tr)
	for _, c := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"airlock_router_requests_total", []string{"variant", Stable, "code", "2xx"}, 3},
		{"airlock_router_requests_total", []string{"variant", Canary, "code", "2xx"}, 3},
		{"airlock_router_ttft_seconds", []string{"variant", Stable, "digest", digestA}, 3},
		{"airlock_router_ttft_seconds", []string{"variant", Canary, "digest", digestB}, 3},
		{"airlock_router_tokens_total", []string{"variant", Stable, "type", "prompt"}, 9},
		{"airlock_router_tokens_total", []string{"variant", Stable, "type", "completion"}, 9},
		{"airlock_router_tokens_total", []string{"variant", Canary, "type", "prompt"}, 6},
		{"airlock_router_tokens_total", []string{"variant", Canary, "type", "completion"}, 8},
		{"airlock_router_safety_blocks_total", []string{"variant", Stable}, 3},
		{"airlock_router_safety_blocks_total", []string{"variant", Canary}, 3},
		{"airlock_router_errors_total", []string{"variant", Stable}, 0},
		{"airlock_router_errors_total", []string{"variant", Canary}, 0},
		// 9 prompt tokens at 1/1k + 9 completion at 2/1k.
		{"airlock_router_cost_total", []string{"variant", Stable}, 0.027},
		// 6 at 10/1k + 8 at 20/1k.
		{"airlock_router_cost_total", []string{"variant", Canary}, 0.22},
	} {
		if got := value(t, tr.reg, c.metric, c.labels...); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
}

// TestSeriesAtZero: both variants' series exist at 0 before any traffic,
// and a new digest's series exist as soon as it is configured.
func TestSeriesAtZero(t *testing.T) {
	cfg, _, canary := twoVariants(t, 0)
	tr := newTestRouter(t, cfg)
	for _, v := range []struct{ variant, digest string }{{Stable, digestA}, {Canary, digestB}} {
		for _, m := range []string{"airlock_router_errors_total", "airlock_router_ttft_seconds", "airlock_router_request_duration_seconds", "airlock_router_safety_blocks_total"} {
			if got := value(t, tr.reg, m, "variant", v.variant, "digest", v.digest); got != 0 {
				t.Errorf("%s{%s} = %v before any traffic", m, v.variant, got)
			}
		}
		for _, code := range []string{"2xx", "4xx", "5xx"} {
			value(t, tr.reg, "airlock_router_requests_total", "variant", v.variant, "digest", v.digest, "code", code)
		}
		for _, typ := range []string{"prompt", "completion"} {
			value(t, tr.reg, "airlock_router_tokens_total", "variant", v.variant, "digest", v.digest, "type", typ)
		}
	}
	if series(t, tr.reg, "airlock_router_cost_total") != nil {
		t.Error("cost_total exported without prices")
	}
	if _, err := tr.SetUpstreams(Upstreams{Stable: &Upstream{URL: canary.URL(), Digest: digestC}}); err != nil {
		t.Fatal(err)
	}
	if series(t, tr.reg, "airlock_router_errors_total", "variant", Stable, "digest", digestC) == nil {
		t.Error("no series for the new stable digest")
	}
}

// TestErrors: an upstream's 503 passes through and is an error; an
// unreachable upstream is a 502, a slow one a 504, a stream cut short an
// error; a client's 4xx is not.
func TestErrors(t *testing.T) {
	dead := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u := "http://" + l.Addr().String()
		l.Close()
		return u
	}()
	cut := newFake(t, Stable, handling(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"half\"}}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	slow := newFake(t, Stable, handling(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	for _, c := range []struct {
		name     string
		url      string
		status   int // the client's
		errors   float64
		code     string
		contains string
	}{
		{"503", newFake(t, Stable, failing(503)).URL(), 503, 1, "5xx", "fake 503"},
		{"400", newFake(t, Stable, failing(400)).URL(), 400, 0, "4xx", "fake 400"},
		{"unreachable", dead, 502, 1, "5xx", "could not be reached"},
		{"timeout", slow.URL(), 504, 1, "5xx", "did not answer within"},
		{"cut", cut.URL(), 200, 1, "2xx", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := newTestRouter(t, Config{Stable: Upstream{URL: c.url}, Timeout: Duration{200 * time.Millisecond}})
			req, _ := http.NewRequest(http.MethodPost, tr.proxy.URL+"/v1/chat/completions", strings.NewReader(streamBody))
			res, err := tr.proxy.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, readErr := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.status || !strings.Contains(string(b), c.contains) {
				t.Errorf("client got %d %s, want %d with %q", res.StatusCode, b, c.status, c.contains)
			}
			if c.name == "cut" && readErr == nil {
				t.Error("a cut stream reached the client whole")
			}
			waitIdle(t, tr)
			if v := value(t, tr.reg, "airlock_router_requests_total", "variant", Stable, "code", c.code); v != 1 {
				t.Errorf("requests_total{code=%s} = %v, want 1", c.code, v)
			}
			if v := value(t, tr.reg, "airlock_router_errors_total", "variant", Stable); v != c.errors {
				t.Errorf("errors_total = %v, want %v", v, c.errors)
			}
		})
	}
}

// TestClientLeaves: a client that gives up mid-stream is counted as 4xx,
// not as the upstream's error.
func TestClientLeaves(t *testing.T) {
	sent := make(chan struct{})
	up := newFake(t, Stable, handling(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")
		w.(http.Flusher).Flush()
		close(sent)
		<-r.Context().Done()
	}))
	tr := newTestRouter(t, Config{Stable: Upstream{URL: up.URL()}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tr.proxy.URL+"/v1/chat/completions", strings.NewReader(streamBody))
	res, err := tr.proxy.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-sent
	cancel()
	res.Body.Close()
	waitIdle(t, tr)
	if v := value(t, tr.reg, "airlock_router_requests_total", "variant", Stable, "code", "4xx"); v != 1 {
		t.Errorf("requests_total{code=4xx} = %v after the client left, want 1", v)
	}
	if v := value(t, tr.reg, "airlock_router_errors_total", "variant", Stable); v != 0 {
		t.Errorf("errors_total = %v after the client left, want 0", v)
	}
}

// TestModelRewrite: an upstream with a model gets requests for it; other
// fields arrive unchanged. A body beyond the limit is refused when it has
// to be read.
func TestModelRewrite(t *testing.T) {
	up := newFake(t, Stable)
	tr := newTestRouter(t, Config{Stable: Upstream{URL: up.URL(), Model: "served-name"}})
	if code, body, _ := tr.chat(t, `{"model":"public-name","temperature":0.5,"messages":[{"role":"user","content":"hi"}]}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := string(*up.lastBody.Load())
	if !strings.Contains(got, `"model":"served-name"`) || !strings.Contains(got, `"temperature":0.5`) || strings.Contains(got, "public-name") {
		t.Errorf("the upstream got %s", got)
	}
	if code, body, _ := tr.chat(t, `[1,2]`); code != 400 || !strings.Contains(body, "not a JSON object") {
		t.Errorf("a body that is not an object: %d %s", code, body)
	}
	big := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", MaxBodyBytes) + `"}]}`
	if code, body, _ := tr.chat(t, big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit: %d %s", code, body)
	}
	// Without a rewrite nor a sticky user field the body is not read,
	// and not limited.
	plain := newTestRouter(t, Config{Stable: Upstream{URL: up.URL()}})
	if code, body, _ := plain.chat(t, big); code != 200 {
		t.Errorf("a large body passed through: %d %s", code, body)
	}
	if n := len(*up.lastBody.Load()); n != len(big) {
		t.Errorf("the upstream got %d bytes of %d", n, len(big))
	}
}

// TestOtherPaths: GET /v1/models is proxied; paths outside /v1/ are not.
func TestOtherPaths(t *testing.T) {
	up := newFake(t, Stable)
	tr := newTestRouter(t, Config{Stable: Upstream{URL: up.URL()}})
	res, err := http.Get(tr.proxy.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"id":"stable"`) {
		t.Errorf("/v1/models: %d %s", res.StatusCode, b)
	}
	res, err = http.Get(tr.proxy.URL + "/admin/state")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("/admin/state on the proxy: %d, want 404", res.StatusCode)
	}
}

// FuzzScan feeds event streams cut at arbitrary places to the reader: it
// never panics, and it reads the same stream the same way however it is
// cut.
func FuzzScan(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"I can't help\"},\"finish_reason\":\"content_filter\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"), uint8(7))
	f.Add([]byte("data:{\"choices\":[{\"text\":\"x\"}]}\r\n: c\r\n"), uint8(1))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":5}}]}\n"), uint8(3))
	rt := &Router{patterns: [][]byte{[]byte("I can't help")}, maxPattern: 12, finishReasons: DefaultFinishReasons}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8) {
		read := func(step int) exchange {
			x := exchange{rt: rt, kind: kindSSE, start: time.Now()}
			for p := stream; len(p) > 0; {
				n := min(step, len(p))
				x.scan(p[:n])
				p = p[n:]
			}
			return x
		}
		whole, pieces := read(len(stream)+1), read(int(cut%16)+1)
		if whole.blocked != pieces.blocked || whole.usage != pieces.usage || whole.completionTokens != pieces.completionTokens || (whole.ttft == 0) != (pieces.ttft == 0) {
			t.Errorf("whole: blocked %v usage %v %d; in pieces of %d: blocked %v usage %v %d", whole.blocked, whole.usage, whole.completionTokens,
				int(cut%16)+1, pieces.blocked, pieces.usage, pieces.completionTokens)
		}
	})
}

// closingBody is a request body of known length that fails any read past
// its end, as net/http's server does once the response has started.
type closingBody struct{ r *strings.Reader }

func (b *closingBody) Read(p []byte) (int, error) {
	if b.r.Len() == 0 {
		return 0, errors.New("http: invalid Read on closed Body")
	}
	return b.r.Read(p)
}

func (b *closingBody) Close() error { return nil }

// TestRequestBodyEndsAtLength: the router never reads a request body past
// its Content-Length, so a stream that starts before the transport would
// have looked for the body's end is not cut (golang/go#40747).
func TestRequestBodyEndsAtLength(t *testing.T) {
	up := newFake(t, Stable)
	tr := newTestRouter(t, Config{Stable: Upstream{URL: up.URL()}})
	// A small body is read whole; a large one is streamed through.
	large := strings.Replace(streamBody, `"hi"`, `"`+strings.Repeat("x", 2*smallBody)+`"`, 1)
	for i := range 20 {
		body := streamBody
		if i%2 == 1 {
			body = large
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		req.Body, req.ContentLength = &closingBody{strings.NewReader(body)}, int64(len(body))
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.HasSuffix(rec.Body.String(), "data: [DONE]\n\n") {
			t.Fatalf("%d %q", rec.Code, rec.Body)
		}
		if got := string(*up.lastBody.Load()); got != body {
			t.Fatalf("the upstream got %d bytes of %d", len(got), len(body))
		}
	}
	if v := value(t, tr.reg, "airlock_router_errors_total", "variant", Stable); v != 0 {
		t.Errorf("errors_total = %v", v)
	}
}
