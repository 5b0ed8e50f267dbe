package sign

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/airlock-dev/airlock/registry"
)

// ErrNotVerified is the error Verify returns when the release carries no
// valid signature (or attestation) by a trusted key, or carries one that
// is broken.
var ErrNotVerified = errors.New("verification failed")

// BundleMediaType is the artifactType of a Sigstore bundle v0.3 referrer.
const BundleMediaType = registry.MediaTypeSigstoreBundle

// Match is one signature or attestation that verified.
type Match struct {
	Layout        string `json:"layout"` // "tag" or "bundle"
	Key           string `json:"key"`    // the trusted key's name
	KeyID         string `json:"keyId"`
	PredicateType string `json:"predicateType,omitempty"`
	// Referrer is the bundle's referrer manifest, for LayoutBundle.
	Referrer string `json:"referrer,omitempty"`
	// Predicate is a verified attestation's predicate (bundle layout), so
	// a caller can use the evidence it checked, such as an earlier eval's
	// outcomes.
	Predicate json.RawMessage `json:"-"`
}

// Finding is something Verify saw that did not verify, and why.
type Finding struct {
	Layout   string `json:"layout"`
	Referrer string `json:"referrer,omitempty"`
	Reason   string `json:"reason"`
}

// Report is what Verify found.
type Report struct {
	Digest   digest.Digest `json:"digest"`
	Verified bool          `json:"verified"`
	Matches  []Match       `json:"matches"`
	// Ignored are signatures by keys that are not trusted: not an attack
	// on their own (anyone who can push can add one), reported so a user
	// sees them.
	Ignored []Finding `json:"ignored,omitempty"`
	// Problems are broken signatures or bundles; any problem fails the
	// verification.
	Problems []Finding `json:"problems,omitempty"`
	// Expired are attestations by trusted keys whose predicate's expires
	// has passed: genuine, no longer in force, and no reason to distrust
	// a newer one beside them.
	Expired []Finding `json:"expired,omitempty"`
}

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
	// Layout limits the check to one layout; LayoutBoth accepts either.
	Layout Layout
	// PredicateType, when set, checks attestations of that type instead of
	// signatures (bundles only: attestations have no tag layout here).
	PredicateType string
	// Now is the clock for attestation expiry checks; nil means time.Now.
	Now func() time.Time
}

// Verify checks the signatures of ref@d in the chosen layouts against the
// trusted keys. It passes when at least one signature by a trusted key
// verifies and nothing found is broken: a malformed bundle, a bundle whose
// statement is about another digest, a signature payload naming another
// image. Signatures by other keys are reported and ignored. The error is
// nil only when the report says verified; otherwise it wraps
// ErrNotVerified with the reasons, or is a registry error.
func Verify(ctx context.Context, ref registry.Ref, d digest.Digest, keys []*Verifier, opts VerifyOptions, r Remote) (*Report, error) {
	if len(keys) == 0 {
		return nil, errors.New("no trusted key given")
	}
	t, err := r.target(ref, d)
	if err != nil {
		return nil, err
	}
	rep := &Report{Digest: d, Matches: []Match{}}
	ses := r.session(ctx)
	if opts.PredicateType == "" && opts.Layout != LayoutBundle {
		if err := verifyTag(ctx, t, keys, ses, rep); err != nil {
			return rep, err
		}
	}
	if opts.PredicateType != "" && opts.Layout != LayoutBundle {
		if err := verifyAttTag(ctx, t, keys, opts.PredicateType, opts.now(), ses, rep); err != nil {
			return rep, err
		}
	}
	if opts.Layout != LayoutTag {
		want := opts.PredicateType
		if want == "" {
			want = types.CosignSignPredicateType
		}
		if err := verifyBundles(ctx, t, keys, want, opts.now(), ses, rep); err != nil {
			return rep, err
		}
	}
	rep.Verified = len(rep.Matches) > 0 && len(rep.Problems) == 0
	if !rep.Verified {
		return rep, fmt.Errorf("%w: %s", ErrNotVerified, rep.reason(opts))
	}
	return rep, nil
}

// reason summarises why a report did not verify.
func (rep *Report) reason(opts VerifyOptions) string {
	if len(rep.Problems) > 0 {
		var rs []string
		for _, p := range rep.Problems {
			rs = append(rs, p.Reason)
		}
		return strings.Join(rs, "; ")
	}
	what := "signature"
	if opts.PredicateType != "" {
		what = "attestation of type " + opts.PredicateType
	}
	if len(rep.Expired) > 0 {
		return fmt.Sprintf("no %s in force: %s", what, rep.Expired[len(rep.Expired)-1].Reason)
	}
	if len(rep.Ignored) > 0 {
		return fmt.Sprintf("no %s by a trusted key (%d by other keys: %s)", what, len(rep.Ignored), rep.Ignored[0].Reason)
	}
	return fmt.Sprintf("no %s found for %s", what, rep.Digest)
}

// verifyTag checks cosign v2's sha256-<hex>.sig layout with cosign's own
// verifier, once per trusted key.
func verifyTag(ctx context.Context, t name.Digest, keys []*Verifier, ses session, rep *Report) error {
	n, err := countTagEntries(t, ociremote.SignatureTag, "signatures", ses)
	if err != nil || n == 0 {
		return err
	}
	matched := false
	for _, k := range keys {
		checked, _, err := cosign.VerifyImageSignatures(ctx, t, offlineCheck(k, cosign.SimpleClaimVerifier, ses))
		if err != nil {
			var noMatch *cosign.ErrNoMatchingSignatures
			var none *cosign.ErrNoSignaturesFound
			if errors.As(err, &noMatch) || errors.As(err, &none) {
				continue
			}
			return fmt.Errorf("verifying cosign signatures: %w", err)
		}
		for range checked {
			rep.Matches = append(rep.Matches, Match{Layout: "tag", Key: k.Name, KeyID: k.KeyID})
		}
		matched = matched || len(checked) > 0
	}
	if !matched {
		rep.Ignored = append(rep.Ignored, Finding{Layout: "tag",
			Reason: fmt.Sprintf("%d cosign signature(s) under %s, none by a trusted key or none for this digest", n, sigTag(t))})
	}
	return nil
}

// verifyAttTag checks cosign v2's attestation tag, sha256-<hex>.att (what
// plain cosign attest writes): DSSE envelopes whose in-toto statement must
// name the release digest (cosign's claim verifier) and have the wanted
// predicate type.
func verifyAttTag(ctx context.Context, t name.Digest, keys []*Verifier, predicateType string, now time.Time, ses session, rep *Report) error {
	n, err := countTagEntries(t, ociremote.AttestationTag, "attestations", ses)
	if err != nil || n == 0 {
		return err
	}
	matched := false
	for _, k := range keys {
		checked, _, err := cosign.VerifyImageAttestations(ctx, t, offlineCheck(k, cosign.IntotoSubjectClaimVerifier, ses))
		if err != nil {
			var noMatch *cosign.ErrNoMatchingAttestations
			if errors.As(err, &noMatch) {
				continue
			}
			return fmt.Errorf("verifying cosign attestations: %w", err)
		}
		for _, a := range checked {
			pt, expires, err := envelopeStatement(a)
			if err != nil {
				rep.Problems = append(rep.Problems, Finding{Layout: "tag", Reason: "cosign attestation: " + err.Error()})
				continue
			}
			if pt != predicateType {
				continue
			}
			if err := checkExpiry(expires, now); err != nil {
				rep.Expired = append(rep.Expired, Finding{Layout: "tag", Reason: "cosign attestation: " + err.Error()})
				continue
			}
			rep.Matches = append(rep.Matches, Match{Layout: "tag", Key: k.Name, KeyID: k.KeyID, PredicateType: pt})
			matched = true
		}
	}
	if !matched {
		rep.Ignored = append(rep.Ignored, Finding{Layout: "tag",
			Reason: fmt.Sprintf("%d cosign attestation(s) under %s, none of type %s by a trusted key", n, strings.Replace(sigTag(t), ".sig", ".att", 1), predicateType)})
	}
	return nil
}

// envelopeStatement reads the predicate type and the predicate's expires
// field of the statement inside a cosign attestation (a DSSE envelope).
func envelopeStatement(a oci.Signature) (string, *structpb.Value, error) {
	p, err := a.Payload()
	if err != nil {
		return "", nil, err
	}
	var env struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(p, &env); err != nil {
		return "", nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	st, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return "", nil, fmt.Errorf("envelope payload: %w", err)
	}
	var s struct {
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(st, &s); err != nil {
		return "", nil, fmt.Errorf("statement: %w", err)
	}
	var pred struct {
		Expires json.RawMessage `json:"expires"`
	}
	if len(s.Predicate) == 0 || json.Unmarshal(s.Predicate, &pred) != nil || len(pred.Expires) == 0 {
		return s.PredicateType, nil, nil
	}
	v := &structpb.Value{}
	if err := protojson.Unmarshal(pred.Expires, v); err != nil {
		return "", nil, fmt.Errorf("predicate expires: %w", err)
	}
	return s.PredicateType, v, nil
}

// checkExpiry enforces a predicate's "expires" field (RFC 3339), which
// Airlock's own predicates carry (a verdict is valid until then): absent
// means no expiry; anything but a time in the future fails.
func checkExpiry(v *structpb.Value, now time.Time) error {
	if v == nil {
		return nil
	}
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return fmt.Errorf("predicate expires is not an RFC 3339 time")
	}
	t, err := time.Parse(time.RFC3339, s.StringValue)
	if err != nil {
		return fmt.Errorf("predicate expires %q is not an RFC 3339 time", s.StringValue)
	}
	if !now.Before(t) {
		return fmt.Errorf("attestation expired at %s", t.UTC().Format(time.RFC3339))
	}
	return nil
}

func (o VerifyOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// countTagEntries counts the entries of one of cosign v2's tags for t
// (its .sig or .att tag, named by tagOf); a missing tag holds none.
func countTagEntries(t name.Digest, tagOf func(name.Reference, ...ociremote.Option) (name.Tag, error), what string, ses session) (int, error) {
	tag, err := tagOf(t, ses.opts...)
	if err != nil {
		return 0, fmt.Errorf("naming the cosign %s tag: %w", what, err)
	}
	sigs, err := ociremote.Signatures(tag, ses.opts...)
	if err != nil {
		return 0, fmt.Errorf("reading cosign %s: %w", what, err)
	}
	list, err := sigs.Get()
	if err != nil {
		return 0, fmt.Errorf("reading cosign %s: %w", what, err)
	}
	return len(list), nil
}

// offlineCheck is cosign's check of one trusted key with no transparency
// log and no certificate authority.
func offlineCheck(k *Verifier, claim func(oci.Signature, v1.Hash, map[string]interface{}) error, ses session) *cosign.CheckOpts {
	return &cosign.CheckOpts{
		RegistryClientOpts: ses.opts,
		SigVerifier:        k.Verifier,
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		ClaimVerifier:      claim,
	}
}

func sigTag(t name.Digest) string {
	return strings.Replace(t.DigestStr(), ":", "-", 1) + ".sig"
}

// verifyBundles checks every Sigstore bundle referrer of t whose statement
// has the wanted predicate type. The referrers are listed unfiltered: the
// tag-schema index that go-containerregistry (so cosign) writes on
// registries without the referrers API carries no annotations and the
// config's media type as artifactType (cosign#4641), so such an entry is
// fetched to see what it is.
func verifyBundles(ctx context.Context, t name.Digest, keys []*Verifier, predicateType string, now time.Time, ses session, rep *Report) error {
	idx, err := ociremote.Referrers(t, "", ses.opts...)
	if err != nil {
		return fmt.Errorf("listing referrers: %w", err)
	}
	alg, hexd, _ := strings.Cut(t.DigestStr(), ":")
	want, err := hex.DecodeString(hexd)
	if err != nil {
		return fmt.Errorf("%s: %w", t, registry.ErrInvalidReference)
	}
	for _, m := range idx.Manifests {
		// go-containerregistry's tag-schema entries carry the config's
		// media type (the empty one) where the artifactType belongs.
		if at := m.ArtifactType; at != "" && at != BundleMediaType && at != ocispec.MediaTypeEmptyJSON {
			continue
		}
		// The annotation lets a reader skip other predicates without
		// fetching; the signed statement is checked in any case.
		if pt := m.Annotations["dev.sigstore.bundle.predicateType"]; pt != "" && pt != predicateType {
			continue
		}
		b, isBundle, err := fetchBundle(t.Context().Digest(m.Digest.String()), predicateType, ses)
		if !isBundle {
			continue
		}
		if err != nil {
			rep.Problems = append(rep.Problems, Finding{Layout: "bundle", Referrer: m.Digest.String(),
				Reason: fmt.Sprintf("referrer %s: unreadable Sigstore bundle: %v", short(m.Digest), err)})
			continue
		}
		checkBundle(b, m, alg, want, keys, predicateType, now, rep)
	}
	return nil
}

// fetchBundle reads a referrer. isBundle is false for a referrer that is
// not a Sigstore bundle or, by its annotation, not of the wanted predicate
// type; err describes a bundle that is broken.
func fetchBundle(ref name.Digest, predicateType string, ses session) (b *sgbundle.Bundle, isBundle bool, err error) {
	img, err := remote.Image(ref, ses.ro...)
	if err != nil {
		return nil, true, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, true, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, true, fmt.Errorf("manifest: %w", err)
	}
	layerIsBundle := len(m.Layers) == 1 && strings.HasPrefix(string(m.Layers[0].MediaType), "application/vnd.dev.sigstore.bundle")
	if m.ArtifactType != BundleMediaType && !layerIsBundle {
		return nil, false, nil
	}
	if pt := m.Annotations["dev.sigstore.bundle.predicateType"]; pt != "" && pt != predicateType {
		return nil, false, nil
	}
	if !layerIsBundle {
		return nil, true, fmt.Errorf("want one bundle layer, found %d layers", len(m.Layers))
	}
	h, err := v1.NewHash(m.Layers[0].Digest.String())
	if err != nil {
		return nil, true, err
	}
	layer, err := img.LayerByDigest(h)
	if err != nil {
		return nil, true, err
	}
	rc, err := layer.Compressed() // bundles are stored as is
	if err != nil {
		return nil, true, err
	}
	defer rc.Close()
	blob, err := io.ReadAll(io.LimitReader(rc, maxBundle+1))
	if err != nil {
		return nil, true, err
	}
	if len(blob) > maxBundle {
		return nil, true, fmt.Errorf("over %d bytes", maxBundle)
	}
	b = &sgbundle.Bundle{}
	if err := b.UnmarshalJSON(blob); err != nil {
		return nil, true, err
	}
	if !b.MinVersion("v0.3") {
		return nil, true, errors.New("bundle version older than v0.3")
	}
	return b, true, nil
}

// maxBundle bounds a bundle read: a signature bundle is a few KiB, an
// attestation with a large predicate (an ML-BOM, an eval report) more.
const maxBundle = 16 << 20

// checkBundle verifies one bundle against each trusted key: signature over
// the DSSE envelope, no transparency log or timestamps (offline, keys),
// and the statement's subject equal to the release digest.
func checkBundle(b *sgbundle.Bundle, m v1.Descriptor, alg string, want []byte, keys []*Verifier, predicateType string, now time.Time, rep *Report) {
	var lastErr error
	for _, k := range keys {
		v, err := verify.NewVerifier(trustKey(k), verify.WithNoObserverTimestamps())
		if err != nil {
			lastErr = err
			continue
		}
		res, err := v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest(alg, want), verify.WithKey()))
		if err != nil {
			lastErr = err
			continue
		}
		if res.Statement == nil || res.Statement.GetPredicateType() != predicateType {
			got := ""
			if res.Statement != nil {
				got = res.Statement.GetPredicateType()
			}
			rep.Problems = append(rep.Problems, Finding{Layout: "bundle", Referrer: m.Digest.String(),
				Reason: fmt.Sprintf("referrer %s: statement has predicate type %q, want %q", short(m.Digest), got, predicateType)})
			return
		}
		if err := checkExpiry(res.Statement.GetPredicate().GetFields()["expires"], now); err != nil {
			rep.Expired = append(rep.Expired, Finding{Layout: "bundle", Referrer: m.Digest.String(),
				Reason: fmt.Sprintf("referrer %s: %v", short(m.Digest), err)})
			return
		}
		match := Match{Layout: "bundle", Key: k.Name, KeyID: k.KeyID, PredicateType: predicateType, Referrer: m.Digest.String()}
		if predicateType != types.CosignSignPredicateType {
			if pb, err := protojson.Marshal(res.Statement.GetPredicate()); err == nil {
				match.Predicate = pb
			}
		}
		rep.Matches = append(rep.Matches, match)
		return
	}
	reason := fmt.Sprintf("referrer %s: %v", short(m.Digest), lastErr)
	if isKeyMismatch(lastErr) {
		rep.Ignored = append(rep.Ignored, Finding{Layout: "bundle", Referrer: m.Digest.String(), Reason: reason})
		return
	}
	rep.Problems = append(rep.Problems, Finding{Layout: "bundle", Referrer: m.Digest.String(), Reason: reason})
}

// isKeyMismatch tells a signature by another key (ignored) from a bundle
// that is wrong in itself (a problem): sigstore-go reports both as
// verification errors, so this reads the message.
func isKeyMismatch(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "failed to verify signature") || strings.Contains(s, "invalid signature")
}

func short(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}
