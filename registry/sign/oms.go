package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/airlock-dev/airlock/registry"
)

// OpenSSF Model Signing (OMS v1.0,
// https://github.com/ossf/model-signing-spec/blob/main/spec/v1.0.md).
const (
	// OMSPredicateType is the in-toto predicate type of an OMS signature.
	OMSPredicateType = registry.PredicateTypeOMS
	// OMSFile is the name model_signing looks for beside a model.
	OMSFile = registry.OMSFile
)

// omsIgnore are the paths an OMS signature of a pulled release leaves
// out: the defaults every OMS verifier excludes, the signature itself,
// and the release file airlock pull writes beside the layers (it travels
// as a manifest annotation, not as a file of the release).
var omsIgnore = []string{".git", ".gitattributes", ".github", ".gitignore", OMSFile, "airlock.yaml"}

// OMSResource is one file of an OMS manifest.
type OMSResource struct {
	Name      string `json:"name"`
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
}

type omsSerialization struct {
	Method        string   `json:"method"`
	HashType      string   `json:"hash_type"`
	AllowSymlinks bool     `json:"allow_symlinks"`
	IgnorePaths   []string `json:"ignore_paths"`
}

type omsPredicate struct {
	Resources     []OMSResource    `json:"resources"`
	Serialization omsSerialization `json:"serialization"`
}

type omsSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

type omsStatement struct {
	Type          string       `json:"_type"`
	Subject       []omsSubject `json:"subject"`
	PredicateType string       `json:"predicateType"`
	Predicate     omsPredicate `json:"predicate"`
}

// OMSResources lists a release's files as OMS resources: each raw layer
// is one file whose sha256 is the layer digest, so nothing is rehashed.
// They are sorted by name as the spec requires. A layer without a file
// path, a non-sha256 digest or a path that is not clean and relative is
// an error: the OMS manifest would not describe what pull writes.
func OMSResources(m ocispec.Manifest) ([]OMSResource, error) {
	var rs []OMSResource
	seen := map[string]bool{}
	for _, l := range m.Layers {
		p := l.Annotations[registry.AnnotationFilepath]
		if p == "" {
			p = l.Annotations[ocispec.AnnotationTitle]
		}
		if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || len(p) > 2 && p[:3] == "../" {
			return nil, fmt.Errorf("layer %s has no usable file path (%q)", l.Digest, p)
		}
		if l.Digest.Algorithm() != "sha256" {
			return nil, fmt.Errorf("layer %s: OMS needs sha256 file digests", l.Digest)
		}
		if seen[p] {
			return nil, fmt.Errorf("two layers write %s", p)
		}
		seen[p] = true
		rs = append(rs, OMSResource{Name: p, Algorithm: "sha256", Digest: l.Digest.Encoded()})
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("the release has no files")
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	return rs, nil
}

// OMSRootDigest is the spec's root digest (§6.5.1): sha256 over the raw
// bytes of the resource digests, in order.
func OMSRootDigest(rs []OMSResource) (string, error) {
	h := sha256.New()
	for _, r := range rs {
		b, err := hex.DecodeString(r.Digest)
		if err != nil {
			return "", fmt.Errorf("resource %s: digest is not hex", r.Name)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// omsStatementFor builds the in-toto statement for the release's files;
// modelName is the subject name (the directory a pull writes, by
// convention the release name).
func omsStatementFor(m ocispec.Manifest, modelName string) ([]byte, error) {
	rs, err := OMSResources(m)
	if err != nil {
		return nil, err
	}
	root, err := OMSRootDigest(rs)
	if err != nil {
		return nil, err
	}
	return json.Marshal(omsStatement{
		Type:          "https://in-toto.io/Statement/v1",
		Subject:       []omsSubject{{Name: modelName, Digest: map[string]string{"sha256": root}}},
		PredicateType: OMSPredicateType,
		Predicate: omsPredicate{
			Resources:     rs,
			Serialization: omsSerialization{Method: "files", HashType: "sha256", IgnorePaths: omsIgnore},
		},
	})
}

// omsBundle signs the statement as a DSSE envelope and wraps it in a
// Sigstore bundle v0.3 with the key method: verificationMaterial.publicKey
// .hint is the key's hex fingerprint, no transparency-log entries.
func omsBundle(ctx context.Context, s *Signer, statement []byte) ([]byte, error) {
	env, err := dsse.WrapSigner(s, types.IntotoPayloadType).SignMessage(bytes.NewReader(statement), sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, fmt.Errorf("reading the DSSE envelope: %w", err)
	}
	if len(e.Signatures) != 1 {
		return nil, fmt.Errorf("the DSSE envelope has %d signatures, want 1", len(e.Signatures))
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	if err != nil {
		return nil, err
	}
	b := &protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: s.KeyID}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     payload,
			PayloadType: e.PayloadType,
			Signatures:  []*protodsse.Signature{{Sig: sig}},
		}},
	}
	return protojson.Marshal(b)
}

// signOMS builds the OMS bundle from the release manifest at t (fetched
// and checked against its digest by go-containerregistry) and attaches it
// as a referrer annotated with the OMS predicate type; airlock pull writes
// it out as model.sig. Artifacts that are not ModelPack releases (an
// image, say) have no files to list: written is false for them.
func signOMS(ctx context.Context, t name.Digest, s *Signer, modelName string, ses session) (written bool, err error) {
	desc, err := remote.Get(t, ses.ro...)
	if err != nil {
		return false, fmt.Errorf("reading the release manifest: %w", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return false, fmt.Errorf("reading the release manifest: %w", err)
	}
	if !registry.IsModelArtifact(m.ArtifactType, m.Config.MediaType) {
		return false, nil
	}
	st, err := omsStatementFor(m, modelName)
	if err != nil {
		return false, err
	}
	b, err := omsBundle(ctx, s, st)
	if err != nil {
		return false, err
	}
	return true, ociremote.WriteAttestationNewBundleFormat(t, b, OMSPredicateType, ses.opts...)
}

// VerifyOMSDir checks an OMS bundle (a model.sig) against a model
// directory, as an OMS verifier does for the files method with sha256:
// the DSSE signature by one of the keys, the statement's predicate type
// and root digest, and every regular file of dir (minus the ignored
// paths) hashing to its resource, with no file missing or unsigned.
func VerifyOMSDir(dir string, bundle []byte, keys []*Verifier) error {
	b := &sgbundle.Bundle{}
	if err := b.UnmarshalJSON(bundle); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotVerified, OMSFile, err)
	}
	env, err := b.Envelope()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotVerified, OMSFile, err)
	}
	st, err := env.Statement()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotVerified, OMSFile, err)
	}
	var stmt omsStatement
	raw, err := protojson.Marshal(st)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &stmt); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotVerified, OMSFile, err)
	}
	if stmt.PredicateType != OMSPredicateType || len(stmt.Subject) != 1 {
		return fmt.Errorf("%w: %s: predicate type %q, want %q with one subject", ErrNotVerified, OMSFile, stmt.PredicateType, OMSPredicateType)
	}
	if s := stmt.Predicate.Serialization; s.Method != "files" || s.HashType != "sha256" {
		return fmt.Errorf("%w: %s: serialization %s/%s is not supported (files/sha256 only)", ErrNotVerified, OMSFile, s.Method, s.HashType)
	}
	root, err := OMSRootDigest(stmt.Predicate.Resources)
	if err != nil || root != stmt.Subject[0].Digest["sha256"] {
		return fmt.Errorf("%w: %s: the root digest does not match the resources", ErrNotVerified, OMSFile)
	}
	want, _ := hex.DecodeString(root)
	signed := false
	for _, k := range keys {
		key := trustKey(k)
		v, err := verify.NewVerifier(key, verify.WithNoObserverTimestamps())
		if err != nil {
			return err
		}
		if _, err := v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", want), verify.WithKey())); err == nil {
			signed = true
			break
		}
	}
	if !signed {
		return fmt.Errorf("%w: %s: not signed by a trusted key", ErrNotVerified, OMSFile)
	}
	return checkOMSFiles(dir, stmt.Predicate.Resources, stmt.Predicate.Serialization.IgnorePaths)
}

// checkOMSFiles compares dir with the resources.
func checkOMSFiles(dir string, rs []OMSResource, ignore []string) error {
	ignored := map[string]bool{".git": true, ".gitattributes": true, ".github": true, ".gitignore": true, OMSFile: true}
	for _, p := range ignore {
		ignored[p] = true
	}
	want := map[string]string{}
	for _, r := range rs {
		want[r.Name] = r.Digest
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignored[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", ErrNotVerified, rel)
		}
		dg, ok := want[rel]
		if !ok {
			return fmt.Errorf("%w: %s is not in the signed manifest", ErrNotVerified, rel)
		}
		got, err := fileSHA256(p)
		if err != nil {
			return err
		}
		if got != dg {
			return fmt.Errorf("%w: %s has sha256 %s, signed %s", ErrNotVerified, rel, got, dg)
		}
		delete(want, rel)
		return nil
	})
	if err != nil {
		return err
	}
	for name := range want {
		return fmt.Errorf("%w: %s is signed but missing", ErrNotVerified, name)
	}
	return nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// trustKey is the trusted material for one public key.
func trustKey(k *Verifier) root.TrustedMaterial {
	key := root.NewExpiringKey(k.Verifier, time.Time{}, time.Time{})
	return root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
}
