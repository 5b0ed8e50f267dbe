// Package sign signs and verifies Airlock releases in the formats cosign
// reads and writes, so `cosign verify` accepts what Airlock signs and
// Airlock verifies what cosign signed. It is the only package that imports
// cosign and sigstore.
//
// Two layouts exist side by side (../../docs/signing.md):
//
//   - LayoutTag, cosign v2's default: a manifest tagged sha256-<hex>.sig in
//     the release's repository, one simple-signing layer per signature with
//     the signature in its dev.cosignproject.cosign/signature annotation;
//   - LayoutBundle, cosign v3's default: a Sigstore bundle v0.3 (a DSSE
//     envelope over an in-toto statement with predicate
//     https://sigstore.dev/cosign/sign/v1) pushed as an OCI 1.1 referrer of
//     the release, or under the referrers tag schema where the registry has
//     no referrers API.
//
// Signing signs the manifest digest and never reads a layer, so it takes
// the same time for any release size. It is offline: no transparency log,
// no certificate authority.
package sign

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// ErrBadPassword is returned when a private key does not decrypt.
var ErrBadPassword = errors.New("wrong password for the private key")

// GenerateKeyPair makes an ECDSA P-256 key pair in cosign's formats: the
// private key encrypted with password (scrypt + secretbox, PEM type
// "ENCRYPTED SIGSTORE PRIVATE KEY"), the public key as PKIX PEM. An empty
// password is allowed, as cosign allows it, and still encrypts.
func GenerateKeyPair(password []byte) (privatePEM, publicPEM []byte, err error) {
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, nil, fmt.Errorf("generating key pair: %w", err)
	}
	return kb.PrivateBytes, kb.PublicBytes, nil
}

// Signer is a private key ready to sign, with the ID of its public key.
type Signer struct {
	signature.SignerVerifier
	KeyID string
}

// LoadSigner reads a private key: cosign's encrypted formats (ENCRYPTED
// SIGSTORE PRIVATE KEY, ENCRYPTED COSIGN PRIVATE KEY), decrypted with
// password, or an unencrypted PKCS#8, EC or PKCS#1 PEM key, for which the
// password is ignored. ECDSA (P-256, P-384, P-521), Ed25519 and RSA keys
// are accepted.
func LoadSigner(pemBytes, password []byte) (*Signer, error) {
	var sv signature.SignerVerifier
	pk, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.SkipPassword)
	if err == nil {
		sv, err = signature.LoadSignerVerifier(pk, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("loading private key: %w", err)
		}
	} else {
		sv, err = cosign.LoadPrivateKey(pemBytes, password, nil)
		if err != nil {
			if isDecryptError(err) {
				return nil, ErrBadPassword
			}
			return nil, fmt.Errorf("loading private key: %w", err)
		}
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("loading private key: %w", err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{SignerVerifier: sv, KeyID: id}, nil
}

// isDecryptError recognises cosign's failure to decrypt, which is not
// typed ("decrypt: encrypted: decryption failed").
func isDecryptError(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s := e.Error(); s == "decryption failed" || s == "encrypted: decryption failed" || s == "decrypt: encrypted: decryption failed" {
			return true
		}
	}
	return false
}

// Verifier is a public key, with its ID and where it came from.
type Verifier struct {
	signature.Verifier
	KeyID string
	// Name is how reports refer to the key, usually its file name.
	Name string
}

// LoadVerifier reads a PEM public key (PKIX, as cosign writes it) and
// names it name in reports.
func LoadVerifier(pemBytes []byte, name string) (*Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PEM public key: %w", name, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &Verifier{Verifier: v, KeyID: id, Name: name}, nil
}

// KeyID is the hex SHA-256 of the DER-encoded public key: the hint a
// Sigstore bundle carries and the ID Airlock reports.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// Verifier returns the signer's public half, named name, so that a
// command holding the private key trusts what it signs itself.
func (s *Signer) Verifier(name string) (*Verifier, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return &Verifier{Verifier: v, KeyID: s.KeyID, Name: name}, nil
}

// PublicPEM is the signer's public key as PEM (PKIX), as key generate
// writes NAME.pub.
func (s *Signer) PublicPEM() ([]byte, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}
