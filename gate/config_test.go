package gate_test

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/gate"
)

// TestConfigErrors: a broken gate.yaml gets an error that says what to
// fix, never a config with silent defaults.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"empty file", "", "the file is empty"},
		{"no environment", "trust: [a.pub]\n", "environment: required"},
		{"unknown field", "environment: prod\nenviroment: staging\n", "field enviroment not found"},
		{"bad duration", "environment: prod\nevidence: {max_age: soon}\n", `"soon" is not a duration`},
		{"suite file without a name", "environment: prod\nevals: [{suite: suite.yaml}]\n", "name: required for the suite file"},
		{"reserved job flag", "environment: prod\nevals: [{suite: builtin:jailbreak, args: [--key, k]}]\n", "--key is set by the gate"},
		{"approval without expiry", "environment: prod\napprovals: [{by: alice, for: [safety]}]\n", "expires: required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := gate.ParseConfig([]byte(c.yaml), ".")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := gate.ParseConfig([]byte("environment: prod\n"), "."); err != nil {
		t.Fatalf("the smallest config: %v", err)
	}
}
