package router

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte("stable: {url: http://127.0.0.1:8000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.Admin.Listen != DefaultAdminListen || c.Weight != 0 || c.Canary != nil ||
		c.Shed.MaxInFlight != 1024 || c.Shed.PriorityHeader != "X-Priority" || c.Shed.LowShare != 0.75 ||
		strings.Join(c.Shed.LowValues, ",") != "low" || strings.Join(c.Safety.FinishReasons, ",") != "content_filter" ||
		len(c.Safety.RefusalPatterns) != 0 || c.Timeout.Duration != 300*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	// An explicit empty list is kept: no finish reason is a block.
	c, err = ParseConfig([]byte("stable: {url: http://127.0.0.1:8000}\nsafety: {finish_reasons: []}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Safety.FinishReasons == nil || len(c.Safety.FinishReasons) != 0 {
		t.Errorf("finish_reasons: [] became %v", c.Safety.FinishReasons)
	}
}

func TestParseConfigFull(t *testing.T) {
	c, err := ParseConfig([]byte(`listen: 0.0.0.0:9000
admin: {listen: 127.0.0.1:9001, token_file: admin.token}
stable: {url: "http://stable:8000/", digest: "` + digestA + `", model: llama}
canary: {url: https://canary:8443, digest: "` + digestB + `"}
weight: 5
sticky: {header: X-User-ID, user_field: true}
kill_switch: {on: true, reason: incident, fallback: {url: http://fallback:8000, model: small}}
shed: {max_in_flight: 512, priority_header: X-Priority, low_values: [low, batch], low_share: 0.8}
safety: {refusal_patterns: ["I can't help with that"], finish_reasons: [content_filter]}
prices: {stable: {prompt_per_1k: 0.0005, completion_per_1k: 0.0015}, canary: {prompt_per_1k: 0.001, completion_per_1k: 0.002}}
timeout: 2m
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Canary.Digest != digestB || c.KillSwitch.Fallback.Model != "small" || c.Shed.LowShare != 0.8 || c.Timeout.Duration != 2*time.Minute ||
		c.Prices.Canary.CompletionPer1K != 0.002 || !c.Sticky.UserField || c.Admin.TokenFile != "admin.token" {
		t.Errorf("parsed: %+v", c)
	}
}

// TestParseConfigErrors: each broken config names its fields, all at once.
func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"the file is empty", "stable"}},
		{"unknown field", "stable: {url: http://a:1}\nweigth: 5\n", []string{"field weigth not found"}},
		{"no stable", "weight: 0\n", []string{"stable: url: required"}},
		{"everything at once", `listen: nowhere
admin: {listen: "127.0.0.1:99999"}
stable: {url: "ftp://x", digest: "sha256:abc"}
canary: {url: ""}
weight: 101
sticky: {header: "X User"}
shed: {max_in_flight: -1, low_share: 1.5, low_values: [""], priority_header: "a:b"}
safety: {refusal_patterns: [""]}
prices: {canary: {prompt_per_1k: -1}}
`, []string{
			`listen: "nowhere" is not an address`,
			`admin: listen: "127.0.0.1:99999": port`,
			`stable: url: "ftp://x": want an http:// or https:// URL`,
			`stable: digest: "sha256:abc" is not a digest`,
			"canary: url: required",
			"weight: 101, want a percent from 0 to 100",
			`sticky: header: "X User" is not a header name`,
			"shed: max_in_flight: -1",
			`shed: priority_header: "a:b"`,
			"shed: low_share: 1.5",
			"shed: low_values[0]: empty",
			"safety: refusal_patterns[0]: empty",
			"prices: canary: prompt_per_1k: -1",
		}},
		{"weight without canary", "stable: {url: http://a:1}\nweight: 10\n", []string{"weight: 10% to the canary, but there is no canary upstream"}},
		{"same listeners", "stable: {url: http://a:1}\nlisten: 127.0.0.1:8081\n", []string{"admin: listen: 127.0.0.1:8081 is the proxy's address too"}},
		{"bad duration", "stable: {url: http://a:1}\ntimeout: soon\n", []string{`"soon" is not a duration`}},
		{"negative duration", "stable: {url: http://a:1}\ntimeout: -5s\n", []string{`"-5s" is not a duration`}},
		{"url with query", "stable: {url: \"http://a:1/?x=1\"}\n", []string{"without query"}},
		{"fallback", "stable: {url: http://a:1}\nkill_switch: {fallback: {model: x}}\n", []string{"kill_switch: fallback: url: required"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadConfigToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("admin.token", "s3cret\n")
	c, err := LoadConfig(write("router.yaml", "stable: {url: http://a:1}\nadmin: {token_file: admin.token}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token != "s3cret" {
		t.Errorf("token %q", c.Admin.Token)
	}
	write("empty.token", "\n")
	if _, err := LoadConfig(write("empty.yaml", "stable: {url: http://a:1}\nadmin: {token_file: empty.token}\n")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty token file: %v", err)
	}
	if _, err := LoadConfig(write("missing.yaml", "stable: {url: http://a:1}\nadmin: {token_file: nope.token}\n")); err == nil || !strings.Contains(err.Error(), "admin: token_file") {
		t.Errorf("a missing token file: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "nope.yaml")); err == nil || !strings.Contains(err.Error(), "reading the router config") {
		t.Errorf("a missing config: %v", err)
	}
}

// FuzzParseConfig: any input gives a config or an error, never a panic,
// and a config it accepts builds a router.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("stable: {url: http://127.0.0.1:8000}\ncanary: {url: http://127.0.0.1:8001}\nweight: 5\n"))
	f.Add([]byte("stable: {url: http://a:1}\nshed: {low_share: 0.5}\ntimeout: 1s\n"))
	f.Add([]byte("stable: [1]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		rt, err := New(*c)
		if err != nil {
			t.Fatalf("ParseConfig accepted what New refuses: %v", err)
		}
		rt.Close()
	})
}
