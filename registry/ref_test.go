package registry

import (
	"errors"
	"testing"
)

func TestParseRef(t *testing.T) {
	const d = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	good := []struct {
		in        string
		want      Ref
		loopback  bool
		reference string
	}{
		{"localhost:5000/bot:v1", Ref{Registry: "localhost:5000", Repository: "bot", Tag: "v1"}, true, "v1"},
		{"127.0.0.1:5000/team/bot", Ref{Registry: "127.0.0.1:5000", Repository: "team/bot"}, true, ""},
		{"ghcr.io/acme/support-bot:1.4.0@" + d, Ref{Registry: "ghcr.io", Repository: "acme/support-bot", Tag: "1.4.0", Digest: d}, false, d},
		{"[::1]:5000/a/b_c__d-e.f@" + d, Ref{Registry: "[::1]:5000", Repository: "a/b_c__d-e.f", Digest: d}, true, d},
		{"registry.example/base/llama", Ref{Registry: "registry.example", Repository: "base/llama"}, false, ""},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRef(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
			if got.Loopback() != tc.loopback {
				t.Errorf("Loopback() = %v", got.Loopback())
			}
			if got.Reference() != tc.reference {
				t.Errorf("Reference() = %q, want %q", got.Reference(), tc.reference)
			}
		})
	}
	bad := []string{
		"bot:v1",                       // no host
		"library/bot",                  // first component is not a host
		"localhost:5000/Bot",           // uppercase repository
		"localhost:5000/bot:-v1",       // bad tag
		"localhost:5000/",              // empty repository
		"localhost:5000/bot@sha256:12", // short digest
		"localhost:5000/a//b",
	}
	for _, in := range bad {
		t.Run("bad "+in, func(t *testing.T) {
			if _, err := ParseRef(in); !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("ParseRef(%q) = %v, want ErrInvalidReference", in, err)
			}
		})
	}
}
