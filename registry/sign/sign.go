package sign

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	intotov1 "github.com/in-toto/attestation/go/v1"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry"
)

// Layout is where a signature is stored.
type Layout int

const (
	// LayoutBoth writes both layouts, so cosign v2 and v3 verify by default.
	LayoutBoth Layout = iota
	// LayoutTag is cosign v2's tag sha256-<hex>.sig.
	LayoutTag
	// LayoutBundle is cosign v3's Sigstore bundle as an OCI 1.1 referrer.
	LayoutBundle
)

func (l Layout) String() string {
	switch l {
	case LayoutTag:
		return "tag"
	case LayoutBundle:
		return "bundle"
	}
	return "both"
}

// ParseLayout reads "both", "tag" (also "legacy", "cosign-v2") or
// "bundle" (also "referrer", "cosign-v3").
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(s) {
	case "both", "":
		return LayoutBoth, nil
	case "tag", "legacy", "cosign-v2":
		return LayoutTag, nil
	case "bundle", "referrer", "cosign-v3":
		return LayoutBundle, nil
	}
	return 0, fmt.Errorf("layout %q: want both, tag or bundle", s)
}

// Remote says how to reach the registry.
type Remote struct {
	// PlainHTTP speaks HTTP; loopback registries get it automatically.
	PlainHTTP bool
	// Insecure skips TLS certificate verification.
	Insecure bool
	// Keychain finds credentials; nil means the Docker config and its
	// credential helpers, as docker and cosign read them (DOCKER_CONFIG or
	// ~/.docker/config.json, read from the caller's environment).
	Keychain authn.Keychain
	// UserAgent is sent with every request.
	UserAgent string
	// Transport carries the requests; nil means go-containerregistry's
	// default. The registry's own tag guard reads verdicts through an
	// in-process transport.
	Transport http.RoundTripper
}

// target is the release as go-containerregistry names it.
func (r Remote) target(ref registry.Ref, d digest.Digest) (name.Digest, error) {
	var opts []name.Option
	if r.PlainHTTP {
		opts = append(opts, name.Insecure)
	}
	t, err := name.NewDigest(ref.Name()+"@"+d.String(), opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("%s: %w", ref, registry.ErrInvalidReference)
	}
	return t, nil
}

// session is one command's registry access: one transport, one ping and
// one token per repository, shared by every request cosign's library makes
// (without it, each call pings /v2/ and authenticates again).
type session struct {
	ro   []remote.Option
	opts []ociremote.Option
}

func (r Remote) session(ctx context.Context) session {
	ro := r.remoteOptions(ctx)
	if p, err := remote.NewPuller(ro...); err == nil {
		ro = append(ro, remote.Reuse(p))
	}
	if p, err := remote.NewPusher(ro...); err == nil {
		ro = append(ro, remote.Reuse(p))
	}
	return session{ro: ro, opts: []ociremote.Option{ociremote.WithRemoteOptions(ro...)}}
}

func (r Remote) remoteOptions(ctx context.Context) []remote.Option {
	ro := []remote.Option{remote.WithContext(ctx)}
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ro = append(ro, remote.WithAuthFromKeychain(kc))
	if r.UserAgent != "" {
		ro = append(ro, remote.WithUserAgent(r.UserAgent))
	}
	if r.Transport != nil {
		ro = append(ro, remote.WithTransport(r.Transport))
	} else if r.Insecure {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for --insecure
		ro = append(ro, remote.WithTransport(t))
	}
	return ro
}

// Result says what Sign wrote.
type Result struct {
	Digest digest.Digest `json:"digest"`
	KeyID  string        `json:"keyId"`
	// Written lists what was written: "tag", "bundle" and "oms" (the
	// OpenSSF Model Signing bundle, written with the bundle layout).
	Written []string `json:"written"`
}

// Sign signs the release ref@d (a manifest digest: the caller resolves
// tags first) with s and stores the signature in the chosen layouts. It
// reads no layer.
func Sign(ctx context.Context, ref registry.Ref, d digest.Digest, s *Signer, layout Layout, r Remote) (*Result, error) {
	t, err := r.target(ref, d)
	if err != nil {
		return nil, err
	}
	res := &Result{Digest: d, KeyID: s.KeyID}
	ses := r.session(ctx)
	if layout == LayoutBoth || layout == LayoutTag {
		if err := signTag(ctx, t, s, ses); err != nil {
			return res, fmt.Errorf("writing the cosign v2 signature: %w", err)
		}
		res.Written = append(res.Written, "tag")
	}
	if layout == LayoutBoth || layout == LayoutBundle {
		if err := attest(ctx, t, s, types.CosignSignPredicateType, nil, ses); err != nil {
			return res, fmt.Errorf("writing the Sigstore bundle: %w", err)
		}
		res.Written = append(res.Written, "bundle")
		oms, err := signOMS(ctx, t, s, path.Base(ref.Repository), ses)
		if err != nil {
			return res, fmt.Errorf("writing the OMS bundle: %w", err)
		}
		if oms {
			res.Written = append(res.Written, "oms")
		}
	}
	return res, nil
}

// signTag writes cosign v2's layout: the simple-signing payload naming the
// digest, signed, appended as a layer to the manifest tagged
// sha256-<hex>.sig (created, or extended when other signatures exist).
func signTag(ctx context.Context, t name.Digest, s *Signer, ses session) error {
	opts := ses.opts
	payload, err := (&sigpayload.Cosign{Image: t}).MarshalJSON()
	if err != nil {
		return err
	}
	raw, err := s.SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return err
	}
	se, err := ociremote.SignedEntity(t, opts...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", t, err)
	}
	// Replaces an earlier signature by the same key instead of piling up
	// copies on re-signing.
	se, err = mutate.AttachSignatureToEntity(se, sig, mutate.WithDupeDetector(cremote.NewDupeDetector(s)))
	if err != nil {
		return err
	}
	return ociremote.WriteSignatures(t.Repository, se, opts...)
}

// Attest signs an in-toto statement about ref@d with the predicate (a
// JSON object) and stores it as a Sigstore bundle referrer annotated with
// its predicate type, as cosign attest --new-bundle-format does.
func Attest(ctx context.Context, ref registry.Ref, d digest.Digest, s *Signer, predicateType string, predicate []byte, r Remote) error {
	if predicateType == "" {
		return fmt.Errorf("attestation: no predicate type")
	}
	var pred *structpb.Struct
	if len(predicate) > 0 {
		pred = &structpb.Struct{}
		if err := protojson.Unmarshal(predicate, pred); err != nil {
			return fmt.Errorf("attestation predicate: not a JSON object: %w", err)
		}
	}
	t, err := r.target(ref, d)
	if err != nil {
		return err
	}
	return attest(ctx, t, s, predicateType, pred, r.session(ctx))
}

// attest writes a DSSE envelope over an in-toto statement about t with
// the predicate, wrapped in a Sigstore bundle v0.3 (public-key hint, no
// transparency log entry), as a referrer of t with cosign's annotations
// (dev.sigstore.bundle.predicateType lets readers filter without
// fetching).
func attest(ctx context.Context, t name.Digest, s *Signer, predicateType string, predicate *structpb.Struct, ses session) error {
	alg, hexd, _ := strings.Cut(t.DigestStr(), ":")
	st := &intotov1.Statement{
		Type:          intotov1.StatementTypeUri,
		Subject:       []*intotov1.ResourceDescriptor{{Digest: map[string]string{alg: hexd}}},
		PredicateType: predicateType,
		Predicate:     predicate,
	}
	payload, err := protojson.Marshal(st)
	if err != nil {
		return err
	}
	envelope, err := dsse.WrapSigner(s, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	pub, err := s.PublicKey()
	if err != nil {
		return err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return err
	}
	bundle, err := cbundle.MakeNewBundle(pub, nil, payload, envelope, pubPEM, nil)
	if err != nil {
		return fmt.Errorf("building bundle: %w", err)
	}
	return ociremote.WriteAttestationNewBundleFormat(t, bundle, predicateType, ses.opts...)
}
