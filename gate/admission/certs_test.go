package admission

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// verifies reports whether dir's serving certificate chains to a CA of
// its bundle, at t.
func verifies(t *testing.T, dir string, at time.Time) bool {
	t.Helper()
	leaf, err := readPair(dir, "tls")
	if err != nil || leaf == nil {
		t.Fatalf("serving certificate: %v", err)
	}
	bundle, err := readBundle(filepath.Join(dir, "ca-bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range bundle {
		pool.AddCert(c)
	}
	_, err = leaf.cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "airlock-webhook.airlock-system.svc", CurrentTime: at})
	return err == nil
}

func TestSelfManagedCertificatesRotateWithOverlap(t *testing.T) {
	dir := t.TempDir()
	clock := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := CertPolicy{DNSNames: []string{"airlock-webhook.airlock-system.svc"}, CAValidity: 365 * 24 * time.Hour,
		Validity: 90 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour, Overlap: 24 * time.Hour, Now: func() time.Time { return clock }}
	run := func(rotate bool) *CertChange {
		t.Helper()
		q := p
		q.RotateCA = rotate
		ch, err := RotateCerts(dir, q)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	bundleLen := func() int {
		b, err := readBundle(filepath.Join(dir, "ca-bundle.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	serial := func() string {
		l, err := readPair(dir, "tls")
		if err != nil {
			t.Fatal(err)
		}
		return l.cert.SerialNumber.String()
	}

	if ch := run(false); len(ch.Actions) != 3 || !ch.BundleChanged || !verifies(t, dir, clock) {
		t.Fatalf("first run: %+v", ch)
	}
	first := serial()
	if ch := run(false); len(ch.Actions) != 0 || serial() != first {
		t.Fatalf("nothing was due, yet: %+v", ch)
	}
	clock = clock.Add(61 * 24 * time.Hour) // within 30 days of the leaf's end
	if ch := run(false); len(ch.Actions) != 1 || ch.BundleChanged || serial() == first || !verifies(t, dir, clock) {
		t.Fatalf("leaf renewal: %+v", ch)
	}
	renewed := serial()

	// A CA rotation: the next CA joins the bundle, the leaf stays.
	ch := run(true)
	if !ch.BundleChanged || bundleLen() != 2 || serial() != renewed || ch.NextStep == "" {
		t.Fatalf("rotation start: %+v, bundle %d", ch, bundleLen())
	}
	if !verifies(t, dir, clock) {
		t.Fatal("the old leaf must still verify against the bundle")
	}
	clock = clock.Add(2 * time.Hour)
	if ch := run(false); len(ch.Actions) != 0 || serial() != renewed {
		t.Fatalf("within the overlap nothing moves: %+v", ch)
	}
	clock = clock.Add(24 * time.Hour)
	ch = run(false)
	if serial() == renewed || bundleLen() != 2 || !verifies(t, dir, clock) {
		t.Fatalf("after the overlap the next CA signs: %+v, bundle %d", ch, bundleLen())
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-next.crt")); !os.IsNotExist(err) {
		t.Errorf("ca-next.crt is still there: %v", err)
	}
	// The old CA leaves the bundle when it expires.
	clock = clock.Add(320 * 24 * time.Hour) // past the first CA's year
	run(false)
	if bundleLen() != 1 || !verifies(t, dir, clock) {
		t.Fatalf("after the old CA expired: bundle %d", bundleLen())
	}
}

func TestCertPolicyErrors(t *testing.T) {
	if _, err := RotateCerts(t.TempDir(), CertPolicy{}); err == nil {
		t.Error("no DNS name must be an error")
	}
	if _, err := RotateCerts(t.TempDir(), CertPolicy{DNSNames: []string{"a"}, Validity: time.Hour, RenewBefore: 2 * time.Hour}); err == nil {
		t.Error("renew-before longer than the life must be an error")
	}
}
