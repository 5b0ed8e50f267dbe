package canary

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestJudgeEndpoint(t *testing.T) {
	plan := testPlan(t, "")
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var seen []Query
	prov := fakeProvider(func(m Metric, v string, since time.Duration) (Observation, error) {
		return traffic(20, func() int { return 50 }, 0.150, 0.001)(m, v, since)
	})
	recording := providerFunc(func(q Query) (Observation, error) {
		seen = append(seen, q)
		return prov.Observe(t.Context(), q)
	})
	srv := httptest.NewServer(NewJudgeHandler(plan, recording, func() time.Time { return now }))
	defer srv.Close()

	get := func(t *testing.T, method, query, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/v1/judge"+query, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, out
	}
	code, out := get(t, "GET", "?window=10m&canary=sha256:b&baseline=sha256:a", "")
	if code != 200 || out["status"] != "fail" || len(out["failed"].([]any)) != 1 {
		t.Fatalf("%d %v", code, out)
	}
	if q := seen[1]; q.Variant != (Variant{Name: "canary", Digest: "sha256:b"}) || q.Window() != 10*time.Minute {
		t.Errorf("the provider was asked %+v", q)
	}
	code, out = get(t, "POST", "", `{"start":"2026-12-04T11:50:00Z","canary":{"name":"green"}}`)
	if code != 200 || seen[len(seen)-1].Variant.Name != "green" {
		t.Errorf("POST: %d %v %+v", code, out, seen[len(seen)-1])
	}
	for _, c := range []struct {
		method, query, body string
		code                int
		says                string
	}{
		{"GET", "", "", 400, "give start"},
		{"GET", "?window=10m&start=2026-12-04T11:50:00Z", "", 400, "not both"},
		{"GET", "?window=-3m", "", 400, "positive duration"},
		{"GET", "?start=yesterday", "", 400, "RFC 3339"},
		{"POST", "", `{"window":"1m","extra":1}`, 400, "unknown field"},
		{"DELETE", "", "", 405, "use GET or POST"},
	} {
		code, out := get(t, c.method, c.query, c.body)
		if code != c.code || !strings.Contains(out["error"].(string), c.says) {
			t.Errorf("%s %s %s: %d %v; want %d saying %q", c.method, c.query, c.body, code, out, c.code, c.says)
		}
	}
}

type providerFunc func(Query) (Observation, error)

func (f providerFunc) Observe(_ context.Context, q Query) (Observation, error) { return f(q) }
