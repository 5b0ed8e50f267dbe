package cli

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookCerts: the self-managed certificates load as a TLS pair
// that chains to the bundle the command says to publish, and a second
// run changes nothing.
func TestWebhookCerts(t *testing.T) {
	isolate(t)
	dir := filepath.Join(t.TempDir(), "certs")
	name := "airlock-webhook.airlock-system.svc"
	code, stdout, stderr := airlock(t, "webhook", "certs", "--dir", dir, "--dns", name)
	if code != 0 || !strings.Contains(stdout, "kubectl patch validatingwebhookconfiguration airlock-admission") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, "ca-bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("ca-bundle.pem holds no certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
		t.Fatalf("the serving certificate does not verify against the bundle: %v", err)
	}
	code, stdout, stderr = airlock(t, "webhook", "certs", "--dir", dir, "--dns", name)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "up to date") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := airlock(t, "webhook", "certs", "--dir", dir); code != 64 || !strings.Contains(stderr, "--dns") {
		t.Errorf("without --dns: exit %d: %s", code, stderr)
	}
}
