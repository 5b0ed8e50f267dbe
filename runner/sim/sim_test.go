package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func start(t *testing.T, cfg Config, opts ...Option) string {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(cfg, opts...))
	t.Cleanup(srv.Close)
	return srv.URL
}

func post(t *testing.T, url, path, body string) (*http.Response, string, error) {
	t.Helper()
	resp, err := http.Post(url+path, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// events returns the data of each SSE event.
func events(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

var base = Config{Model: "sim", Answers: []Answer{
	{Match: "France", Text: "The capital is Paris."},
	{Match: "busy", Fault: "http_429", RetryAfter: 1500 * time.Millisecond, FaultTimes: 1},
	{Match: "broken", Fault: "http_500"},
	{Match: "cutme", Text: "one two three four five six", Fault: "cut"},
	{Match: "garble", Fault: "garbage"},
	{Match: "slam", Fault: "close"},
	{Match: "hangs", Fault: "hang"},
	{Regex: `^no+$`, Refuse: true},
}}

func TestStreamShape(t *testing.T) {
	url := start(t, base)
	_, body, err := post(t, url, "/v1/chat/completions", `{"messages":[{"role":"user","content":"capital of France?"}],"stream":true,"stream_options":{"include_usage":true}}`)
	if err != nil {
		t.Fatal(err)
	}
	ev := events(body)
	if len(ev) != 8 || ev[7] != "[DONE]" {
		t.Fatalf("events %q: want role, 4 tokens, finish, usage, [DONE]", ev)
	}
	var c struct {
		Choices []struct {
			Delta        map[string]any `json:"delta"`
			FinishReason *string        `json:"finish_reason"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	json.Unmarshal([]byte(ev[0]), &c)
	if c.Choices[0].Delta["role"] != "assistant" || c.Choices[0].Delta["content"] != "" {
		t.Errorf("first chunk %s: want the role and no text", ev[0])
	}
	var text strings.Builder
	for _, e := range ev[1:5] {
		json.Unmarshal([]byte(e), &c)
		text.WriteString(c.Choices[0].Delta["content"].(string))
	}
	if text.String() != "The capital is Paris." {
		t.Errorf("text %q", text.String())
	}
	c.Usage = nil
	json.Unmarshal([]byte(ev[5]), &c)
	if *c.Choices[0].FinishReason != "stop" {
		t.Errorf("finish chunk %s", ev[5])
	}
	c.Choices = nil
	json.Unmarshal([]byte(ev[6]), &c)
	if len(c.Choices) != 0 || c.Usage["completion_tokens"] != 4 || c.Usage["prompt_tokens"] != 3 {
		t.Errorf("usage chunk %s: want choices [] and 3 prompt / 4 completion tokens", ev[6])
	}
}

func TestCapsAndBatches(t *testing.T) {
	url := start(t, base)
	_, body, _ := post(t, url, "/v1/completions", `{"prompt":"France","max_tokens":2}`)
	if !strings.Contains(body, `"text":"The capital"`) || !strings.Contains(body, `"finish_reason":"length"`) {
		t.Errorf("capped: %s", body)
	}
	_, body, _ = post(t, url, "/v1/completions", `{"prompt":"France","max_tokens":9,"ignore_eos":true}`)
	if !strings.Contains(body, `"completion_tokens":9`) {
		t.Errorf("ignore_eos: %s", body)
	}
	_, body, _ = post(t, url, "/v1/completions", `{"prompt":["France","nooo","other"],"max_tokens":3}`)
	var r struct {
		Choices []struct {
			Index int    `json:"index"`
			Text  string `json:"text"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Choices) != 3 {
		t.Fatalf("batch: %s", body)
	}
	if r.Choices[1].Text != "I can't help" || r.Choices[2].Index != 2 || r.Usage["completion_tokens"] != 9 {
		t.Errorf("batch choices %+v usage %v", r.Choices, r.Usage)
	}
	resp, _, _ := post(t, url, "/v1/completions", `{"prompt":["a","b"],"stream":true}`)
	if resp.StatusCode != 400 {
		t.Errorf("streamed batch: %d", resp.StatusCode)
	}
	for _, bad := range []string{`{`, `{"messages":[]}`} {
		resp, body, _ := post(t, url, "/v1/chat/completions", bad)
		if resp.StatusCode != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s", bad, resp.StatusCode, body)
		}
	}
}

func TestFaults(t *testing.T) {
	url := start(t, base)
	chat := func(p string) string {
		return `{"messages":[{"role":"user","content":"` + p + `"}],"stream":true}`
	}
	resp, body, _ := post(t, url, "/v1/chat/completions", chat("busy"))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(body, `"message"`) {
		t.Errorf("429: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _, _ := post(t, url, "/v1/chat/completions", chat("busy")); resp.StatusCode != 200 {
		t.Errorf("fault_times 1: the second request got %d", resp.StatusCode)
	}
	if resp, _, _ := post(t, url, "/v1/chat/completions", chat("broken")); resp.StatusCode != 500 {
		t.Errorf("500: %d", resp.StatusCode)
	}
	if _, _, err := post(t, url, "/v1/chat/completions", chat("cutme")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut: %v, want an unexpected EOF", err)
	}
	if _, body, _ := post(t, url, "/v1/chat/completions", chat("garble")); !strings.Contains(body, "data: {not json") {
		t.Errorf("garbage: %s", body)
	}
	whole := func(p string) string { return `{"messages":[{"role":"user","content":"` + p + `"}]}` }
	if resp, _, err := post(t, url, "/v1/chat/completions", whole("cutme")); !errors.Is(err, io.ErrUnexpectedEOF) || resp == nil || resp.StatusCode != 200 {
		t.Errorf("cut, whole: %v, want a 200 whose body breaks off", err)
	}
	if _, body, _ := post(t, url, "/v1/chat/completions", whole("garble")); body != "{not json" {
		t.Errorf("garbage, whole: %q", body)
	}
	if _, _, err := post(t, url, "/v1/chat/completions", chat("slam")); err == nil {
		t.Error("close: got a response")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(chat("hangs")))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v", err)
	}
}

func TestTimingAndCancel(t *testing.T) {
	cfg := Config{Model: "m", TTFT: Dist{Kind: "fixed", Mean: 20 * time.Millisecond}, PerToken: Dist{Kind: "fixed", Mean: 5 * time.Millisecond}, Default: "a b c d e f g h i j"}
	url := start(t, cfg)
	t0 := time.Now()
	_, body, _ := post(t, url, "/v1/completions", `{"prompt":"x","stream":true}`)
	took := time.Since(t0)
	if n := len(events(body)); n != 12 {
		t.Errorf("%d events", n)
	}
	if took < 65*time.Millisecond || took > 2*time.Second {
		t.Errorf("10 tokens at 20ms + 9×5ms took %v", took)
	}
	before := runtime.NumGoroutine()
	slow := Config{Model: "m", TTFT: Dist{Kind: "fixed", Mean: time.Hour}, Default: "x"}
	url = start(t, slow)
	for range 20 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions", strings.NewReader(`{"prompt":"x","stream":true}`))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cancel()
	}
	http.DefaultClient.CloseIdleConnections()
	for i := 0; runtime.NumGoroutine() > before+4; i++ {
		if i > 2000 {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d, were %d: handlers outlive their clients\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStartupDelayAuthMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	url := start(t, Config{Model: "m", StartupDelay: time.Hour}, WithAPIKey("k"), WithRegisterer(reg))
	req, _ := http.NewRequest("GET", url+"/v1/models", nil)
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != 401 {
		t.Errorf("no key: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer k")
	resp, _ = http.DefaultClient.Do(req)
	if resp.StatusCode != 503 {
		t.Errorf("loading: %d", resp.StatusCode)
	}
	reg2 := prometheus.NewPedanticRegistry()
	url = start(t, Config{Model: "m2", Default: "a b"}, WithRegisterer(reg2))
	resp, body, _ := post(t, url, "/v1/chat/completions", `{"messages":[{"role":"user","content":"x y z"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"content":"a b"`) {
		t.Errorf("whole: %s", body)
	}
	resp, _ = http.Get(url + "/v1/models")
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `"id":"m2"`) {
		t.Errorf("models: %s", b)
	}
	if n := testutil.CollectAndCount(reg, "airlock_sim_requests_total"); n != 0 {
		t.Errorf("a server that only refused has %d request series", n)
	}
	want := `
# HELP airlock_sim_requests_total Requests the simulator answered, by outcome (ok, refused, error, fault).
# TYPE airlock_sim_requests_total counter
airlock_sim_requests_total{outcome="ok"} 1
# HELP airlock_sim_tokens_total Tokens the simulator read and generated, by type (input, output).
# TYPE airlock_sim_tokens_total counter
airlock_sim_tokens_total{type="input"} 3
airlock_sim_tokens_total{type="output"} 2
`
	if err := testutil.GatherAndCompare(reg2, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"model: m\nttft: {kind: weibull}", "ttft.kind"},
		{"model: m\nerror_rate: 1.5", "error_rate"},
		{"model: m\nanswers: [{regex: '('}]", "answers[0].regex"},
		{"model: m\nanswers: [{match: a, fault: explode}]", "answers[0].fault"},
		{"model: m\nanswers: [{text: a}]", "needs match or regex"},
		{"model: m\nttft: 5ms", "cannot unmarshal"},
		{"model: m\nttfb: {kind: fixed}", "field ttfb not found"},
		{"ttft: {kind: fixed, mean: 5ms}", "model: required"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	for _, v := range Versions() {
		if _, _, err := Version(v); err != nil {
			t.Errorf("built-in version %s: %v", v, err)
		}
	}
	if len(Versions()) != 2 {
		t.Errorf("versions %v", Versions())
	}
	if _, _, err := Version("best"); err == nil {
		t.Error("unknown version accepted")
	}
}

func FuzzParse(f *testing.F) {
	_, good, _ := Version("good")
	f.Add(good)
	f.Add([]byte("model: m\nanswers: [{regex: 'a+', fault: cut}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		New(c) // a valid config never panics New
	})
}
