package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/gate/canary"
)

func TestAdminAPI(t *testing.T) {
	cfg, _, canaryUp := twoVariants(t, 5)
	var logs bytes.Buffer
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tr := newTestRouter(t, cfg, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), WithClock(func() time.Time { return at }))

	code, body := tr.adminDo(t, http.MethodGet, "/admin/state", "")
	var s State
	if err := json.Unmarshal([]byte(body), &s); err != nil || code != 200 {
		t.Fatalf("state: %d %s", code, body)
	}
	if s.Weight != 5 || s.KillSwitch.On || s.Stable.Digest != digestA || s.Canary == nil || s.Canary.URL != canaryUp.URL() || s.Fallback != nil || !s.Changed.Equal(at) {
		t.Errorf("state: %s", body)
	}
	for _, key := range []string{`"weight":5`, `"kill_switch":{"on":false,"reason":""}`, `"fallback":null`, `"changed":"2026-03-01T12:00:00Z"`} {
		if !strings.Contains(body, key) {
			t.Errorf("state lacks %s: %s", key, body)
		}
	}

	at = at.Add(time.Minute)
	code, body = tr.adminDo(t, http.MethodPut, "/admin/weight", `{"canary":25}`)
	if code != 200 || !strings.Contains(body, `"weight":25`) || !strings.Contains(body, `"changed":"2026-03-01T12:01:00Z"`) {
		t.Errorf("PUT weight: %d %s", code, body)
	}
	if !strings.Contains(logs.String(), "canary weight changed") || !strings.Contains(logs.String(), "old=5 new=25") {
		t.Errorf("the change was not logged with old and new values:\n%s", logs.String())
	}
	code, body = tr.adminDo(t, http.MethodPut, "/admin/kill-switch", `{"on":true,"reason":"rolled back: ttft 40% worse"}`)
	if code != 200 || !strings.Contains(body, `"kill_switch":{"on":true,"reason":"rolled back: ttft 40% worse"}`) {
		t.Errorf("PUT kill-switch: %d %s", code, body)
	}
	if !strings.Contains(logs.String(), "kill-switch changed") || !strings.Contains(logs.String(), "traffic_to=stable") {
		t.Errorf("the kill-switch was not logged:\n%s", logs.String())
	}

	for _, c := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"bad JSON", http.MethodPut, "/admin/weight", `{"canary":`, 400, "body: unexpected EOF"},
		{"empty", http.MethodPut, "/admin/weight", ``, 400, "body: empty"},
		{"weight 101", http.MethodPut, "/admin/weight", `{"canary":101}`, 400, "canary weight 101, want a percent from 0 to 100"},
		{"weight -1", http.MethodPut, "/admin/weight", `{"canary":-1}`, 400, "want a percent from 0 to 100"},
		{"fractional weight", http.MethodPut, "/admin/weight", `{"canary":2.5}`, 400, "cannot unmarshal number 2.5"},
		{"missing weight", http.MethodPut, "/admin/weight", `{}`, 400, `"canary" is required`},
		{"unknown field", http.MethodPut, "/admin/weight", `{"canary":5,"stable":95}`, 400, `unknown field "stable"`},
		{"two values", http.MethodPut, "/admin/weight", `{"canary":5}{"canary":6}`, 400, "more than one JSON value"},
		{"kill-switch without on", http.MethodPut, "/admin/kill-switch", `{"reason":"x"}`, 400, `"on" is required`},
		{"upstreams without stable", http.MethodPut, "/admin/upstreams", `{"canary":null}`, 400, "stable: required"},
		{"upstreams with a bad url", http.MethodPut, "/admin/upstreams", `{"stable":{"url":"nope"},"weight":5}`, 400, "stable: url:"},
		{"upstreams weight without canary", http.MethodPut, "/admin/upstreams", `{"stable":{"url":"http://a:1"},"weight":5}`, 400, "canary is null"},
		{"wrong method", http.MethodPost, "/admin/weight", `{"canary":5}`, 405, ""},
		{"unknown path", http.MethodGet, "/admin/nope", ``, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := tr.adminDo(t, c.method, c.path, c.body)
			var e apiError
			if json.Unmarshal([]byte(body), &e) == nil {
				body = e.Error.Message
			}
			if code != c.status || !strings.Contains(body, c.msg) {
				t.Errorf("%s %s %s: %d %s, want %d with %q", c.method, c.path, c.body, code, body, c.status, c.msg)
			}
		})
	}
	// A failed change changes nothing.
	if s := tr.State(); s.Weight != 25 || !s.KillSwitch.On {
		t.Errorf("state after failed changes: %+v", s)
	}

	// Promotion: the canary becomes the stable, no canary; a weight then
	// has nowhere to go.
	code, body = tr.adminDo(t, http.MethodPut, "/admin/upstreams", `{"stable":{"url":"`+canaryUp.URL()+`","digest":"`+digestB+`"},"canary":null,"weight":0}`)
	if code != 200 || !strings.Contains(body, `"canary":null`) || !strings.Contains(body, digestB) {
		t.Errorf("PUT upstreams: %d %s", code, body)
	}
	if !strings.Contains(logs.String(), "upstreams replaced") {
		t.Errorf("the replacement was not logged:\n%s", logs.String())
	}
	code, body = tr.adminDo(t, http.MethodPut, "/admin/weight", `{"canary":5}`)
	if code != http.StatusConflict || !strings.Contains(body, "there is no canary upstream") {
		t.Errorf("weight without a canary: %d %s", code, body)
	}
	if code, _ := tr.adminDo(t, http.MethodPut, "/admin/weight", `{"canary":0}`); code != 200 {
		t.Errorf("weight 0 without a canary: %d", code)
	}
	if code, body := tr.adminDo(t, http.MethodGet, "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func TestAdminToken(t *testing.T) {
	cfg, _, _ := twoVariants(t, 0)
	cfg.Admin.Token = "s3cret"
	tr := newTestRouter(t, cfg)
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Basic s3cret", "Bearer s3cret2"} {
		code, body := tr.adminDo(t, http.MethodPut, "/admin/weight", `{"canary":50}`, "Authorization", auth)
		if code != http.StatusUnauthorized || !strings.Contains(body, "Authorization: Bearer") {
			t.Errorf("Authorization %q: %d %s, want 401", auth, code, body)
		}
	}
	if tr.State().Weight != 0 {
		t.Fatal("an unauthorised request changed the weight")
	}
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret"} {
		if code, body := tr.adminDo(t, http.MethodPut, "/admin/weight", `{"canary":50}`, "Authorization", auth); code != 200 {
			t.Errorf("with the token (%q): %d %s", auth, code, body)
		}
	}
	// /healthz never needs it.
	if code, _ := tr.adminDo(t, http.MethodGet, "/healthz", ""); code != 200 {
		t.Errorf("healthz without the token: %d", code)
	}
}

// TestClient drives the admin API through Client, the canary.Actuator.
func TestClient(t *testing.T) {
	cfg, stable, canaryUp := twoVariants(t, 0)
	cfg.Admin.Token = "s3cret"
	tr := newTestRouter(t, cfg)
	ctx := context.Background()
	var act canary.Actuator = NewClient(tr.admin.URL+"/", "s3cret", nil)
	c := act.(*Client)
	if err := act.SetWeight(ctx, 30); err != nil {
		t.Fatal(err)
	}
	if err := act.KillSwitch(ctx, true, "error rate"); err != nil {
		t.Fatal(err)
	}
	s, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Weight != 30 || !s.KillSwitch.On || s.KillSwitch.Reason != "error rate" || s.Canary.Digest != digestB {
		t.Errorf("state %+v", s)
	}
	err = act.SetWeight(ctx, 101)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(err.Error(), "want a percent from 0 to 100") || !errors.Is(err, ErrInvalid) {
		t.Errorf("SetWeight(101): %v", err)
	}
	if err := c.SetUpstreams(ctx, Upstreams{Stable: &Upstream{URL: canaryUp.URL(), Digest: digestB}}); err != nil {
		t.Fatal(err)
	}
	if err := act.SetWeight(ctx, 5); !errors.Is(err, ErrNoCanary) || !strings.Contains(err.Error(), "409") {
		t.Errorf("SetWeight without a canary: %v", err)
	}
	if err := c.SetUpstreams(ctx, Upstreams{Stable: &Upstream{URL: stable.URL()}, Canary: &Upstream{URL: canaryUp.URL()}, Weight: 10}); err != nil {
		t.Fatal(err)
	}
	if s := tr.State(); s.Weight != 10 || s.Stable.URL != stable.URL() || s.Canary == nil {
		t.Errorf("state after SetUpstreams: %+v", s)
	}
	if err := NewClient(tr.admin.URL, "wrong", nil).KillSwitch(ctx, false, ""); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "Authorization: Bearer") {
		t.Errorf("a wrong token: %v", err)
	}
	if err := NewClient("http://127.0.0.1:1", "", nil).SetWeight(ctx, 1); err == nil || !strings.Contains(err.Error(), "router admin API") {
		t.Errorf("no router: %v", err)
	}
}
