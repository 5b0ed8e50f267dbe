package admission

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Self-managed certificates: a CA of the webhook's own, a serving
// certificate it signs, and the CA bundle the API server must trust (the
// webhook configuration's caBundle). Rotating the CA overlaps: the next CA
// joins the bundle first, and signs the serving certificate only after
// Overlap has passed (time for the bundle to reach the webhook
// configuration); the old CA stays in the bundle until it expires.
//
// Files in the directory: ca.crt, ca.key (the CA that signs), ca-next.crt,
// ca-next.key (a CA waiting for the overlap), ca-bundle.pem (what to put
// in caBundle), tls.crt, tls.key (what the webhook serves).

// CertPolicy says how long things live.
type CertPolicy struct {
	// DNSNames the serving certificate is for (the Service's names).
	DNSNames []string
	// CAValidity and Validity are the CA's and the serving certificate's
	// lives (default 10 years and 90 days).
	CAValidity, Validity time.Duration
	// RenewBefore renews either this long before it expires (default 30
	// days).
	RenewBefore time.Duration
	// Overlap is how long a new CA sits in the bundle before it signs
	// (default 24h).
	Overlap time.Duration
	// RotateCA starts a CA rotation now, whatever its expiry.
	RotateCA bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CertChange says what a Rotate did.
type CertChange struct {
	// Actions, in order ("created the CA", …); none when nothing was due.
	Actions []string
	// BundleChanged means ca-bundle.pem changed: publish it to caBundle.
	BundleChanged bool
	// NextStep says when to run again, if something waits.
	NextStep string
}

func (p *CertPolicy) defaults() {
	if p.CAValidity == 0 {
		p.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if p.Validity == 0 {
		p.Validity = 90 * 24 * time.Hour
	}
	if p.RenewBefore == 0 {
		p.RenewBefore = 30 * 24 * time.Hour
	}
	if p.Overlap == 0 {
		p.Overlap = 24 * time.Hour
	}
	if p.Now == nil {
		p.Now = time.Now
	}
}

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// RotateCerts brings the certificates in dir up to date: it creates what
// is missing, renews what is due, and moves a CA rotation on when its
// overlap has passed. It is safe to run often (a CronJob, or before each
// start); it changes nothing that is not due.
func RotateCerts(dir string, p CertPolicy) (*CertChange, error) {
	p.defaults()
	if len(p.DNSNames) == 0 {
		return nil, errors.New("certificates: name at least one DNS name (the webhook Service's)")
	}
	if p.RenewBefore >= p.Validity || p.RenewBefore >= p.CAValidity {
		return nil, fmt.Errorf("certificates: renew-before %s must be shorter than the lives %s and %s", p.RenewBefore, p.Validity, p.CAValidity)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := p.Now()
	ch := &CertChange{}
	ca, err := readPair(dir, "ca")
	if err != nil {
		return nil, err
	}
	next, err := readPair(dir, "ca-next")
	if err != nil {
		return nil, err
	}
	bundle, err := readBundle(filepath.Join(dir, "ca-bundle.pem"))
	if err != nil {
		return nil, err
	}
	leafSigner := ""
	if leaf, err := readPair(dir, "tls"); err != nil {
		return nil, err
	} else if leaf != nil {
		leafSigner = string(leaf.cert.AuthorityKeyId)
		if ca != nil && leafSigner == string(ca.cert.SubjectKeyId) && now.Before(leaf.cert.NotAfter.Add(-p.RenewBefore)) && sameNames(leaf.cert.DNSNames, p.DNSNames) {
			leafSigner = "current"
		}
	}

	switch {
	case ca == nil:
		if ca, err = newCA(now, p.CAValidity); err != nil {
			return nil, err
		}
		if err := writePair(dir, "ca", ca); err != nil {
			return nil, err
		}
		ch.Actions = append(ch.Actions, "created the CA (until "+ca.cert.NotAfter.Format(time.RFC3339)+")")
		leafSigner = ""
	case next == nil && (p.RotateCA || !now.Before(ca.cert.NotAfter.Add(-p.RenewBefore))):
		if next, err = newCA(now, p.CAValidity); err != nil {
			return nil, err
		}
		if err := writePair(dir, "ca-next", next); err != nil {
			return nil, err
		}
		ch.Actions = append(ch.Actions, "created the next CA; it joins the bundle now and signs after the overlap")
	case next != nil && !now.Before(next.cert.NotBefore.Add(time.Hour).Add(p.Overlap)):
		// NotBefore is an hour before creation (clock skew).
		if err := writePair(dir, "ca", next); err != nil {
			return nil, err
		}
		for _, n := range []string{"ca-next.crt", "ca-next.key"} {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return nil, err
			}
		}
		ca, next = next, nil
		ch.Actions = append(ch.Actions, "the next CA signs from now on (overlap passed)")
		leafSigner = ""
	}
	if next != nil {
		ch.NextStep = fmt.Sprintf("run again after %s, once ca-bundle.pem is in the webhook configuration: the next CA then signs the serving certificate",
			next.cert.NotBefore.Add(time.Hour).Add(p.Overlap).Format(time.RFC3339))
	}

	// The bundle: every unexpired CA we hold or have held, the signing
	// one first.
	want := []*x509.Certificate{ca.cert}
	if next != nil {
		want = append(want, next.cert)
	}
	for _, c := range bundle {
		if now.Before(c.NotAfter) && !containsCert(want, c) {
			want = append(want, c)
		}
	}
	if !sameCerts(bundle, want) {
		if err := writeBundle(filepath.Join(dir, "ca-bundle.pem"), want); err != nil {
			return nil, err
		}
		ch.BundleChanged = true
		ch.Actions = append(ch.Actions, fmt.Sprintf("wrote ca-bundle.pem (%d CAs)", len(want)))
	}

	if leafSigner != "current" {
		leaf, err := newLeaf(ca, p.DNSNames, now, p.Validity)
		if err != nil {
			return nil, err
		}
		// Key first: a reload between the two writes keeps the old pair.
		if err := writePair(dir, "tls", leaf); err != nil {
			return nil, err
		}
		ch.Actions = append(ch.Actions, "issued the serving certificate for "+strings.Join(p.DNSNames, ", ")+" (until "+leaf.cert.NotAfter.Format(time.RFC3339)+")")
	}
	return ch, nil
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func containsCert(cs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range cs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func serial() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126)) }

func newCA(now time.Time, life time.Duration) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: "airlock-webhook-ca " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(life), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &keyPair{cert: cert, key: key}, err
}

func newLeaf(ca *keyPair, names []string, now time.Time, life time.Duration) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(life)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &keyPair{cert: cert, key: key}, err
}

func readPair(dir, name string) (*keyPair, error) {
	cb, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, fmt.Errorf("%s.crt has no key: %w", name, err)
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, fmt.Errorf("%s: not PEM", filepath.Join(dir, name))
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s.crt: %w", name, err)
	}
	key, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s.key: %w", name, err)
	}
	return &keyPair{cert: cert, key: key}, nil
}

func writePair(dir, name string, p *keyPair) error {
	kb, err := x509.MarshalECPrivateKey(p.key)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.cert.Raw}), 0o644)
}

func readBundle(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
}

func writeBundle(path string, cs []*x509.Certificate) error {
	var b []byte
	for _, c := range cs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return writeAtomic(path, b, 0o644)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
