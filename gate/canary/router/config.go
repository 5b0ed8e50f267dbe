package router

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Variants: the values of the metrics' variant label.
const (
	Stable   = "stable"
	Canary   = "canary"
	Fallback = "fallback"
)

// Defaults of router.yaml (docs/router.md).
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultAdminListen    = "127.0.0.1:8081"
	DefaultMaxInFlight    = 1024
	DefaultPriorityHeader = "X-Priority"
	DefaultLowShare       = 0.75
	DefaultTimeout        = 300 * time.Second
	// MaxBodyBytes bounds a request body the router has to read (for
	// sticky routing by the body's user field, or to rewrite its model);
	// a longer one is refused with 413. Bodies it need not read are
	// streamed through unbounded.
	MaxBodyBytes = 4 << 20
)

// DefaultLowValues and DefaultFinishReasons are the defaults of
// shed.low_values and safety.finish_reasons.
var (
	DefaultLowValues     = []string{"low"}
	DefaultFinishReasons = []string{"content_filter"}
)

// Config is router.yaml. Unknown fields are errors; zero values are the
// documented defaults.
type Config struct {
	// Listen is the proxy's address (default 127.0.0.1:8080).
	Listen string      `yaml:"listen"`
	Admin  AdminConfig `yaml:"admin"`
	// Stable is the release serving now; Canary, optional, the one being
	// tried. With no canary all traffic goes to stable.
	Stable Upstream  `yaml:"stable"`
	Canary *Upstream `yaml:"canary"`
	// Weight is the percent of traffic sent to the canary at start.
	Weight     int              `yaml:"weight"`
	Sticky     StickyConfig     `yaml:"sticky"`
	KillSwitch KillSwitchConfig `yaml:"kill_switch"`
	Shed       ShedConfig       `yaml:"shed"`
	Safety     SafetyConfig     `yaml:"safety"`
	Prices     Prices           `yaml:"prices"`
	// Timeout bounds each request to an upstream, streaming included
	// (default 300s); one that runs out is answered 504 if nothing was
	// sent yet, and cut otherwise.
	Timeout Duration `yaml:"timeout"`
}

// AdminConfig is the admin listener: the admin API, /metrics and /healthz.
type AdminConfig struct {
	// Listen is the admin address (default 127.0.0.1:8081). It is a
	// listener of its own, so that it can stay on loopback or a private
	// network while the proxy is exposed.
	Listen string `yaml:"listen"`
	// TokenFile, when set, holds the bearer token the admin API requires
	// (relative to router.yaml). /metrics and /healthz never need it.
	TokenFile string `yaml:"token_file"`
	// Token is TokenFile's content, read by LoadConfig.
	Token string `yaml:"-"`
}

// Upstream is an OpenAI-compatible server: the stable or canary release,
// or the kill-switch's fallback.
type Upstream struct {
	// URL is the server's base URL; a request for /v1/chat/completions
	// goes to URL + /v1/chat/completions.
	URL string `yaml:"url" json:"url"`
	// Digest labels the release's metrics (optional).
	Digest string `yaml:"digest" json:"digest"`
	// Model, when set, replaces the "model" field of each request sent
	// here (the body is then read and re-encoded).
	Model string `yaml:"model" json:"model,omitempty"`
}

// StickyConfig keeps a user on one variant: the same key always hashes to
// the same variant, and a key on the canary at 5% stays on it at 25%.
type StickyConfig struct {
	// Header names the request header holding the key (X-User-ID).
	Header string `yaml:"header"`
	// UserField takes the key from the OpenAI request body's "user"
	// field when the header is absent or not configured.
	UserField bool `yaml:"user_field"`
}

// KillSwitchConfig is the kill-switch's state at start and where it sends
// traffic when on.
type KillSwitchConfig struct {
	On     bool   `yaml:"on"`
	Reason string `yaml:"reason"`
	// Fallback receives all traffic while the switch is on; without one,
	// stable does (the last known good release).
	Fallback *Upstream `yaml:"fallback"`
}

// ShedConfig is load shedding. When the requests in flight reach
// LowShare×MaxInFlight, requests whose PriorityHeader is one of LowValues
// are refused (429 with Retry-After); at MaxInFlight every request is.
type ShedConfig struct {
	MaxInFlight    int      `yaml:"max_in_flight"`
	PriorityHeader string   `yaml:"priority_header"`
	LowValues      []string `yaml:"low_values"`
	LowShare       float64  `yaml:"low_share"`
}

// SafetyConfig says which responses are safety blocks: a finish_reason in
// FinishReasons (default [content_filter]; an explicit [] means none), or
// generated text containing one of RefusalPatterns (literal, case
// sensitive).
type SafetyConfig struct {
	RefusalPatterns []string `yaml:"refusal_patterns"`
	FinishReasons   []string `yaml:"finish_reasons"`
}

// Prices are per-variant token prices; a variant without one has no cost
// series.
type Prices struct {
	Stable   *Price `yaml:"stable"`
	Canary   *Price `yaml:"canary"`
	Fallback *Price `yaml:"fallback"`
}

// Price is currency units per 1,000 tokens.
type Price struct {
	PromptPer1K     float64 `yaml:"prompt_per_1k"`
	CompletionPer1K float64 `yaml:"completion_per_1k"`
}

// Duration is a time.Duration written as "300s" or "5m".
type Duration struct{ time.Duration }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 300s or 5m", n.Line, s)
	}
	d.Duration = v
	return nil
}

// LoadConfig reads router.yaml from file, and the admin token file it
// names.
func LoadConfig(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the router config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if f := c.Admin.TokenFile; f != "" {
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(file), f)
		}
		tok, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: admin: token_file: %w", file, err)
		}
		c.Admin.Token = strings.TrimSpace(string(tok))
		if c.Admin.Token == "" {
			return nil, fmt.Errorf("%s: admin: token_file: %s is empty", file, f)
		}
	}
	return c, nil
}

// ParseConfig reads router.yaml, fills in defaults and checks it; every
// problem is reported at once. The token file is not read.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); errors.Is(err, io.EOF) {
		return nil, errors.New("router config: the file is empty; it needs at least stable: {url: …} (see docs/router.md)")
	} else if err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	c.defaults()
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Shed.MaxInFlight == 0 {
		c.Shed.MaxInFlight = DefaultMaxInFlight
	}
	if c.Shed.PriorityHeader == "" {
		c.Shed.PriorityHeader = DefaultPriorityHeader
	}
	if c.Shed.LowValues == nil {
		c.Shed.LowValues = DefaultLowValues
	}
	if c.Shed.LowShare == 0 {
		c.Shed.LowShare = DefaultLowShare
	}
	if c.Safety.FinishReasons == nil {
		c.Safety.FinishReasons = DefaultFinishReasons
	}
	if c.Timeout.Duration == 0 {
		c.Timeout.Duration = DefaultTimeout
	}
}

// Check reports every problem of a config whose defaults are filled in.
// New checks again, for configs built in code.
func (c *Config) Check() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := checkAddr(c.Listen); err != nil {
		add("listen: %v", err)
	}
	if err := checkAddr(c.Admin.Listen); err != nil {
		add("admin: listen: %v", err)
	}
	if c.Listen == c.Admin.Listen {
		add("admin: listen: %s is the proxy's address too; give the admin API a listener of its own", c.Listen)
	}
	for _, e := range checkUpstream(&c.Stable) {
		add("stable: %v", e)
	}
	if c.Canary != nil {
		for _, e := range checkUpstream(c.Canary) {
			add("canary: %v", e)
		}
	}
	if f := c.KillSwitch.Fallback; f != nil {
		for _, e := range checkUpstream(f) {
			add("kill_switch: fallback: %v", e)
		}
	}
	if err := checkWeight(c.Weight); err != nil {
		add("weight: %v", err)
	} else if c.Weight > 0 && c.Canary == nil {
		add("weight: %d%% to the canary, but there is no canary upstream", c.Weight)
	}
	if h := c.Sticky.Header; h != "" && !validToken(h) {
		add("sticky: header: %q is not a header name", h)
	}
	if c.Shed.MaxInFlight < 1 {
		add("shed: max_in_flight: %d, want at least 1", c.Shed.MaxInFlight)
	}
	if !validToken(c.Shed.PriorityHeader) {
		add("shed: priority_header: %q is not a header name", c.Shed.PriorityHeader)
	}
	if !(c.Shed.LowShare > 0 && c.Shed.LowShare <= 1) {
		add("shed: low_share: %g, want a share of max_in_flight in (0, 1], such as 0.75", c.Shed.LowShare)
	}
	for i, v := range c.Shed.LowValues {
		if strings.TrimSpace(v) == "" {
			add("shed: low_values[%d]: empty", i)
		}
	}
	for i, p := range c.Safety.RefusalPatterns {
		if p == "" {
			add("safety: refusal_patterns[%d]: empty (it would match every response)", i)
		}
	}
	for i, f := range c.Safety.FinishReasons {
		if f == "" {
			add("safety: finish_reasons[%d]: empty", i)
		}
	}
	for _, p := range []struct {
		name  string
		price *Price
	}{{Stable, c.Prices.Stable}, {Canary, c.Prices.Canary}, {Fallback, c.Prices.Fallback}} {
		if p.price == nil {
			continue
		}
		for _, v := range []struct {
			field string
			value float64
		}{{"prompt_per_1k", p.price.PromptPer1K}, {"completion_per_1k", p.price.CompletionPer1K}} {
			if v.value < 0 || math.IsNaN(v.value) || math.IsInf(v.value, 0) {
				add("prices: %s: %s: %g, want a non-negative price per 1,000 tokens", p.name, v.field, v.value)
			}
		}
	}
	if c.Timeout.Duration <= 0 {
		add("timeout: %s, want a positive duration such as 300s", c.Timeout.Duration)
	}
	return errors.Join(errs...)
}

func checkAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not an address such as 127.0.0.1:8080 or :8080", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a port number", a, port)
	}
	return nil
}

func checkWeight(w int) error {
	if w < 0 || w > 100 {
		return fmt.Errorf("%d, want a percent from 0 to 100", w)
	}
	return nil
}

// checkUpstream reports an upstream's problems, without a prefix.
func checkUpstream(u *Upstream) []error {
	var errs []error
	if u.URL == "" {
		errs = append(errs, errors.New("url: required, such as http://127.0.0.1:8000"))
	} else if _, err := parseUpstreamURL(u.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if err := checkDigest(u.Digest); err != nil {
		errs = append(errs, fmt.Errorf("digest: %w", err))
	}
	return errs
}

// parseUpstreamURL reads an upstream's base URL: http or https, a host, no
// query or fragment.
func parseUpstreamURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q: want an http:// or https:// URL with a host, such as http://127.0.0.1:8000", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: want a base URL without query, fragment or credentials", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// checkDigest accepts an empty digest or algorithm:hex (sha256:…), the
// digest of an OCI release. Digests are label values, so they are kept to
// this shape.
func checkDigest(d string) error {
	if d == "" {
		return nil
	}
	alg, hex, ok := strings.Cut(d, ":")
	want := 0
	switch alg {
	case "sha256":
		want = 64
	case "sha384":
		want = 96
	case "sha512":
		want = 128
	}
	if !ok || want == 0 || len(hex) != want || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("%q is not a digest such as sha256:<64 hex digits>", d)
	}
	return nil
}

// validToken reports whether s is an HTTP token (a header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
