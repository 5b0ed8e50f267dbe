package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/gate/canary"
)

// Client drives a router's admin API; it is the canary.Actuator of
// canary.yaml's actuator: {router: …}.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

var _ canary.Actuator = (*Client)(nil)

// NewClient returns a client of the admin API at baseURL (such as
// http://127.0.0.1:8081). token is the admin bearer token, "" for none;
// httpClient nil means one with a 30s timeout.
func NewClient(baseURL, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, hc: httpClient}
}

// APIError is an answer of the admin API other than 200. It is
// ErrNoCanary for a 409 that says there is no canary, and ErrInvalid for
// a 400.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("router admin API: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is makes errors.Is(err, ErrNoCanary) and errors.Is(err, ErrInvalid)
// work across the API.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNoCanary:
		return e.Code == "no_canary"
	case ErrInvalid:
		return e.StatusCode == http.StatusBadRequest
	}
	return false
}

// State reads the routing state.
func (c *Client) State(ctx context.Context) (*State, error) {
	var s State
	if err := c.do(ctx, http.MethodGet, "/admin/state", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SetWeight implements canary.Actuator: percent of the traffic to the
// canary.
func (c *Client) SetWeight(ctx context.Context, percent int) error {
	return c.do(ctx, http.MethodPut, "/admin/weight", map[string]int{"canary": percent}, nil)
}

// KillSwitch implements canary.Actuator.
func (c *Client) KillSwitch(ctx context.Context, on bool, reason string) error {
	return c.do(ctx, http.MethodPut, "/admin/kill-switch", KillSwitchState{On: on, Reason: reason}, nil)
}

// SetUpstreams replaces the stable and canary upstreams and the weight
// (after a promotion, the canary becomes the stable).
func (c *Client) SetUpstreams(ctx context.Context, u Upstreams) error {
	return c.do(ctx, http.MethodPut, "/admin/upstreams", u, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("router admin API: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("router admin API: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("router admin API: %s %s: reading the answer: %w", method, path, err)
	}
	if res.StatusCode != http.StatusOK {
		e := &APIError{StatusCode: res.StatusCode}
		var ae apiError
		if json.Unmarshal(b, &ae) == nil && ae.Error.Message != "" {
			e.Code, e.Message = ae.Error.Code, ae.Error.Message
		} else {
			e.Message = strings.TrimSpace(string(b))
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("router admin API: %s %s: %w", method, path, err)
		}
	}
	return nil
}
