package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
)

// TestSignVerifyCLI: key generate, sign by tag (the digest is what gets
// signed and printed), verify by tag and by digest, and the exit codes of
// a release nobody signed, a wrong key and a wrong password.
func TestSignVerifyCLI(t *testing.T) {
	isolate(t)
	srv := regtest.Airlock(t, server.Config{})
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	t.Setenv(EnvPassword, "correct horse")

	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", prefix); code != ExitOK {
		t.Fatalf("key generate: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", prefix); code != ExitError || !strings.Contains(errs, "exists") {
		t.Fatalf("key generate over existing files: %d %s", code, errs)
	}
	pem, err := os.ReadFile(prefix + ".key")
	if err != nil || !strings.Contains(string(pem), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Fatalf("private key file: %v\n%s", err, pem)
	}

	ref := srv.Host + "/support-bot:1.4.0"
	if code, _, errs := airlock(t, "push", example, ref); code != ExitOK {
		t.Fatalf("push: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "verify", ref, "--key", prefix+".pub"); code != ExitDeny || !strings.Contains(errs, "no signature found") {
		t.Fatalf("verify unsigned: %d %s", code, errs)
	}
	code, out, errs := airlock(t, "sign", ref, "--key", prefix+".key")
	if code != ExitOK || !strings.Contains(errs, "Resolved "+ref+" to sha256:") {
		t.Fatalf("sign: %d %s %s", code, out, errs)
	}
	signed := strings.TrimSpace(out)
	if !strings.Contains(signed, "@sha256:") {
		t.Fatalf("sign printed %q, want the signed digest reference", signed)
	}
	// inspect shows all three: the bundle, the OMS bundle, the v2 tag.
	if code, out, errs := airlock(t, "inspect", ref); code != ExitOK ||
		!strings.Contains(out, "(https://sigstore.dev/cosign/sign/v1)") ||
		!strings.Contains(out, "(https://model_signing/signature/v1.0)") ||
		!strings.Contains(out, "Cosign signature tag: sha256-") {
		t.Fatalf("inspect after signing: %d\n%s%s", code, out, errs)
	}
	for _, r := range []string{ref, signed} {
		if code, out, errs := airlock(t, "verify", r, "--key", prefix+".pub"); code != ExitOK || !strings.HasPrefix(out, "Verified ") {
			t.Fatalf("verify %s: %d %s %s", r, code, out, errs)
		}
	}
	code, out, _ = airlock(t, "verify", ref, "--key", prefix+".pub", "--json")
	var rep struct {
		Verified bool
		Matches  []struct{ Layout, Key string }
	}
	if err := json.Unmarshal([]byte(out), &rep); code != ExitOK || err != nil || !rep.Verified || len(rep.Matches) != 2 {
		t.Fatalf("verify --json: %d %v %s", code, err, out)
	}

	// An eval attestation, checked by its short type name and its URI.
	pred := filepath.Join(dir, "eval.json")
	if err := os.WriteFile(pred, []byte(`{"suite":"golden","passRate":0.97}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := airlock(t, "verify", ref, "--key", prefix+".pub", "--attestations", "eval"); code != ExitDeny {
		t.Fatalf("verify --attestations eval before attesting: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "attest", ref, "--key", prefix+".key", "--type", "eval", "--predicate", pred); code != ExitOK {
		t.Fatalf("attest: %d %s", code, errs)
	}
	for _, typ := range []string{"eval", "https://airlock.dev/attestations/eval/v1"} {
		if code, _, errs := airlock(t, "verify", ref, "--key", prefix+".pub", "--attestations", typ); code != ExitOK {
			t.Fatalf("verify --attestations %s: %d %s", typ, code, errs)
		}
	}
	if code, _, errs := airlock(t, "verify", ref, "--key", prefix+".pub", "--attestations", "bench"); code != ExitDeny {
		t.Fatalf("verify --attestations bench: %d %s", code, errs)
	}
	if err := os.WriteFile(pred, []byte(`[1,2]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := airlock(t, "attest", ref, "--key", prefix+".key", "--type", "eval", "--predicate", pred); code != ExitError || !strings.Contains(errs, "JSON object") {
		t.Fatalf("attest with an array predicate: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "attest", ref, "--key", prefix+".key", "--type", "evals", "--predicate", pred); code != ExitUsage {
		t.Fatalf("attest with an unknown type: %d %s", code, errs)
	}

	other := filepath.Join(dir, "other")
	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", other); code != ExitOK {
		t.Fatalf("key generate: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "verify", ref, "--key", other+".pub"); code != ExitDeny || !strings.Contains(errs, "by other keys") {
		t.Fatalf("verify with another key: %d %s", code, errs)
	}
	t.Setenv(EnvPassword, "wrong")
	if code, _, errs := airlock(t, "sign", ref, "--key", prefix+".key"); code != ExitError || !strings.Contains(errs, "wrong password") {
		t.Fatalf("sign with a wrong password: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "sign", ref); code != ExitUsage || !strings.Contains(errs, "--key") {
		t.Fatalf("sign without --key: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "sign", ref, "--key", prefix+".key", "--layout", "sideways"); code != ExitUsage {
		t.Fatalf("sign --layout sideways: %d %s", code, errs)
	}
}
