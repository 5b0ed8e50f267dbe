package router

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// State is the router's routing state, as GET /admin/state shows it.
type State struct {
	// Weight is the percent of traffic the canary gets while the
	// kill-switch is off.
	Weight     int             `json:"weight"`
	KillSwitch KillSwitchState `json:"kill_switch"`
	Stable     Upstream        `json:"stable"`
	Canary     *Upstream       `json:"canary"`
	Fallback   *Upstream       `json:"fallback"`
	// Changed is when the state last changed (or the router started).
	Changed time.Time `json:"changed"`
}

// KillSwitchState is the kill-switch and why it was last set.
type KillSwitchState struct {
	On     bool   `json:"on"`
	Reason string `json:"reason"`
}

// Upstreams is the body of PUT /admin/upstreams: the new stable and
// canary (null for none) and the canary's weight. After a promotion the
// canary becomes the stable: {"stable": <the canary>, "canary": null,
// "weight": 0}.
type Upstreams struct {
	Stable *Upstream `json:"stable"`
	Canary *Upstream `json:"canary"`
	Weight int       `json:"weight"`
}

// State returns the routing state.
func (rt *Router) State() State {
	s := rt.state.Load()
	out := State{Weight: s.weight, KillSwitch: KillSwitchState{On: s.kill, Reason: s.reason}, Stable: s.stable.conf, Changed: s.changed}
	if s.canary != nil {
		c := s.canary.conf
		out.Canary = &c
	}
	if s.fallback != nil {
		f := s.fallback.conf
		out.Fallback = &f
	}
	return out
}

// change publishes a new state made from the current one by fn, unless fn
// fails.
func (rt *Router) change(fn func(*state) error) (State, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	next := *rt.state.Load()
	if err := fn(&next); err != nil {
		return rt.State(), err
	}
	next.changed = rt.now().UTC()
	rt.publish(&next)
	return rt.State(), nil
}

// SetWeight sends percent (0–100) of the traffic to the canary from the
// next request on (once the kill-switch is off, if it is on).
func (rt *Router) SetWeight(percent int) (State, error) {
	return rt.change(func(s *state) error {
		if err := checkWeight(percent); err != nil {
			return invalidf("canary weight %w", err)
		}
		if percent > 0 && s.canary == nil {
			return fmt.Errorf("canary weight %d%%: %w; set one with PUT /admin/upstreams", percent, ErrNoCanary)
		}
		rt.log.Info("canary weight changed", "old", s.weight, "new", percent)
		s.weight = percent
		return nil
	})
}

// SetKillSwitch turns the kill-switch on (all traffic to the fallback, or
// to stable without one) or off (back to the weights), from the next
// request on. reason is kept and shown in the state.
func (rt *Router) SetKillSwitch(on bool, reason string) State {
	st, _ := rt.change(func(s *state) error {
		to := "the weights"
		if on {
			to = Stable
			if s.fallback != nil {
				to = Fallback
			}
		}
		rt.log.Info("kill-switch changed", "old", s.kill, "new", on, "old_reason", s.reason, "reason", reason, "traffic_to", to)
		s.kill, s.reason = on, reason
		return nil
	})
	return st
}

// SetUpstreams replaces the stable and canary upstreams and the weight,
// from the next request on; the kill-switch is kept as it is. Series of
// the new digests are made at zero.
func (rt *Router) SetUpstreams(u Upstreams) (State, error) {
	return rt.change(func(s *state) error {
		var errs []error
		if u.Stable == nil {
			errs = append(errs, errors.New("stable: required"))
		}
		if err := checkWeight(u.Weight); err != nil {
			errs = append(errs, fmt.Errorf("weight: %w", err))
		} else if u.Weight > 0 && u.Canary == nil {
			errs = append(errs, fmt.Errorf("weight: %d%% to the canary, but canary is null", u.Weight))
		}
		var stable, canary *upstream
		var err error
		if u.Stable != nil {
			if stable, err = rt.upstream(Stable, *u.Stable); err != nil {
				errs = append(errs, err)
			}
		}
		if u.Canary != nil {
			if canary, err = rt.upstream(Canary, *u.Canary); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return invalidf("upstreams: %w", errors.Join(errs...))
		}
		rt.log.Info("upstreams replaced", "old_stable", describe(s.stable), "new_stable", describe(stable),
			"old_canary", describe(s.canary), "new_canary", describe(canary), "old_weight", s.weight, "new_weight", u.Weight)
		s.stable, s.canary, s.weight = stable, canary, u.Weight
		return nil
	})
}

func describe(u *upstream) string {
	if u == nil {
		return "none"
	}
	if u.conf.Digest == "" {
		return u.conf.URL
	}
	return u.conf.URL + " (" + u.conf.Digest + ")"
}

// maxAdminBody bounds an admin request's body.
const maxAdminBody = 64 << 10

// Admin is the admin API: GET /admin/state, PUT /admin/weight,
// /admin/kill-switch and /admin/upstreams (JSON; see docs/router.md), and
// GET /healthz. With admin.token_file set, /admin/ needs
// "Authorization: Bearer <token>". Mount /metrics beside it.
func (rt *Router) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /admin/state", rt.authorized(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, rt.State())
	}))
	mux.HandleFunc("PUT /admin/weight", rt.authorized(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Canary *int `json:"canary"`
		}
		if !decode(w, r, &b, `{"canary": PERCENT}`) {
			return
		}
		if b.Canary == nil {
			writeError(w, http.StatusBadRequest, "bad_request", `body: "canary" is required: {"canary": PERCENT}`)
			return
		}
		rt.answer(w)(rt.SetWeight(*b.Canary))
	}))
	mux.HandleFunc("PUT /admin/kill-switch", rt.authorized(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			On     *bool  `json:"on"`
			Reason string `json:"reason"`
		}
		if !decode(w, r, &b, `{"on": true|false, "reason": "…"}`) {
			return
		}
		if b.On == nil {
			writeError(w, http.StatusBadRequest, "bad_request", `body: "on" is required: {"on": true|false, "reason": "…"}`)
			return
		}
		writeJSON(w, rt.SetKillSwitch(*b.On, b.Reason))
	}))
	mux.HandleFunc("PUT /admin/upstreams", rt.authorized(func(w http.ResponseWriter, r *http.Request) {
		var b Upstreams
		if !decode(w, r, &b, `{"stable": {"url": …, "digest": …}, "canary": {…}|null, "weight": PERCENT}`) {
			return
		}
		rt.answer(w)(rt.SetUpstreams(b))
	}))
	return mux
}

// authorized requires the admin token, when there is one.
func (rt *Router) authorized(h http.HandlerFunc) http.HandlerFunc {
	want := []byte(rt.cfg.Admin.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 9110 §11.1).
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if len(want) > 0 && (!strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(token), want) != 1) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="airlock router admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "the admin API needs Authorization: Bearer <the token in admin.token_file>")
			return
		}
		h(w, r)
	}
}

// answer writes the state after a change, or the change's error: 409 for
// ErrNoCanary, 400 for ErrInvalid.
func (rt *Router) answer(w http.ResponseWriter) func(State, error) {
	return func(s State, err error) {
		switch {
		case err == nil:
			writeJSON(w, s)
		case errors.Is(err, ErrNoCanary):
			writeError(w, http.StatusConflict, "no_canary", err.Error())
		case errors.Is(err, ErrInvalid):
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		default:
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
		}
	}
}

// decode reads a JSON body strictly: one object, no unknown fields. On
// failure it has answered 400, showing the body's expected shape.
func decode(w http.ResponseWriter, r *http.Request, v any, shape string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return true
	}
	var mb *http.MaxBytesError
	msg := err.Error()
	switch {
	case errors.Is(err, io.EOF):
		msg = "empty"
	case errors.As(err, &mb):
		msg = fmt.Sprintf("larger than %d bytes", mb.Limit)
	}
	writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("body: %s; want %s", strings.TrimPrefix(msg, "json: "), shape))
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
