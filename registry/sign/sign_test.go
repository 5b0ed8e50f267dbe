package sign_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/airlock-dev/airlock/registry/sign"
)

// registries are the two the tests run against: Airlock's own (referrers
// API) and Debian's docker-registry (none: the tag-schema fallback).
func registries(t *testing.T) map[string]*regtest.Server {
	return map[string]*regtest.Server{
		"airlock":         regtest.Airlock(t, server.Config{}),
		"docker-registry": regtest.Distribution(t),
	}
}

func newKey(t *testing.T, password string) (*sign.Signer, *sign.Verifier, []byte, []byte) {
	t.Helper()
	priv, pub, err := sign.GenerateKeyPair([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.LoadSigner(priv, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	v, err := sign.LoadVerifier(pub, "test.pub")
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != v.KeyID {
		t.Fatalf("key IDs differ: %s %s", s.KeyID, v.KeyID)
	}
	return s, v, priv, pub
}

func repo(t *testing.T, host, name string) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	return r
}

func pushBlob(t *testing.T, r *remote.Repository, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	d := content.NewDescriptorFromBytes(mediaType, b)
	if err := r.Push(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

func pushManifest(t *testing.T, r *remote.Repository, m ocispec.Manifest, tag string) ocispec.Descriptor {
	t.Helper()
	m.SchemaVersion, m.MediaType = 2, ocispec.MediaTypeImageManifest
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, b)
	if tag != "" {
		err = r.PushReference(context.Background(), d, bytes.NewReader(b), tag)
	} else {
		err = r.Push(context.Background(), d, bytes.NewReader(b))
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pushRelease pushes a small artifact with one layer holding weights.
func pushRelease(t *testing.T, r *remote.Repository, tag, weights string) ocispec.Descriptor {
	t.Helper()
	cfg := pushBlob(t, r, registry.MediaTypeModelConfig, []byte(`{"descriptor":{"name":"t"}}`))
	layer := pushBlob(t, r, registry.MediaTypeWeightRaw, []byte(weights))
	layer.Annotations = map[string]string{registry.AnnotationFilepath: "model.gguf"}
	return pushManifest(t, r, ocispec.Manifest{ArtifactType: registry.ArtifactTypeModel, Config: cfg, Layers: []ocispec.Descriptor{layer}}, tag)
}

func refOf(t *testing.T, host, name string) registry.Ref {
	t.Helper()
	r, err := registry.ParseRef(host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var plain = sign.Remote{PlainHTTP: true}

func TestKeys(t *testing.T) {
	_, _, priv, _ := newKey(t, "secret")
	if _, err := sign.LoadSigner(priv, []byte("wrong")); !errors.Is(err, sign.ErrBadPassword) {
		t.Fatalf("wrong password: %v, want ErrBadPassword", err)
	}
	if _, err := sign.LoadSigner([]byte("not a key"), nil); err == nil {
		t.Fatal("garbage loaded as a key")
	}
	if _, err := sign.LoadVerifier([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "bad.pub"); err == nil || !strings.Contains(err.Error(), "bad.pub") {
		t.Fatalf("bad public key: %v", err)
	}
	// An empty password encrypts too, as cosign's does.
	newKey(t, "")
}

func TestSignVerifyBothLayouts(t *testing.T) {
	ctx := context.Background()
	for name, srv := range registries(t) {
		t.Run(name, func(t *testing.T) {
			s, v, _, _ := newKey(t, "pw")
			r := repo(t, srv.Host, "bot")
			rel := pushRelease(t, r, "v1", "weights one")
			ref := refOf(t, srv.Host, "bot:v1")
			res, err := sign.Sign(ctx, ref, rel.Digest, s, sign.LayoutBoth, plain)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(res.Written, ",") != "tag,bundle,oms" {
				t.Fatalf("wrote %v", res.Written)
			}
			for _, lay := range []sign.Layout{sign.LayoutBoth, sign.LayoutTag, sign.LayoutBundle} {
				rep, err := sign.Verify(ctx, ref, rel.Digest, []*sign.Verifier{v}, sign.VerifyOptions{Layout: lay}, plain)
				if err != nil {
					t.Fatalf("layout %s: %v", lay, err)
				}
				want := map[sign.Layout]int{sign.LayoutBoth: 2, sign.LayoutTag: 1, sign.LayoutBundle: 1}[lay]
				if len(rep.Matches) != want || rep.Matches[0].KeyID != v.KeyID {
					t.Fatalf("layout %s: matches %+v", lay, rep.Matches)
				}
			}
			// Re-signing replaces the tag layout's signature by this key.
			if _, err := sign.Sign(ctx, ref, rel.Digest, s, sign.LayoutTag, plain); err != nil {
				t.Fatal(err)
			}
			rep, err := sign.Verify(ctx, ref, rel.Digest, []*sign.Verifier{v}, sign.VerifyOptions{Layout: sign.LayoutTag}, plain)
			if err != nil || len(rep.Matches) != 1 {
				t.Fatalf("after re-signing: %v %+v", err, rep)
			}
		})
	}
}

// TestTampering: each way of getting an unsigned or foreign thing past
// verify fails with a reason that says what is wrong.
func TestTampering(t *testing.T) {
	ctx := context.Background()
	for name, srv := range registries(t) {
		t.Run(name, func(t *testing.T) {
			s, v, _, _ := newKey(t, "pw")
			other, otherV, _, _ := newKey(t, "pw2")
			keys := []*sign.Verifier{v}
			r := repo(t, srv.Host, "bot")
			a := pushRelease(t, r, "v1", "weights A")
			refA := refOf(t, srv.Host, "bot:v1")
			if _, err := sign.Sign(ctx, refA, a.Digest, s, sign.LayoutBoth, plain); err != nil {
				t.Fatal(err)
			}
			fails := func(t *testing.T, d digest.Digest, opts sign.VerifyOptions, want string) {
				t.Helper()
				rep, err := sign.Verify(ctx, refA, d, keys, opts, plain)
				if !errors.Is(err, sign.ErrNotVerified) {
					t.Fatalf("err = %v, want ErrNotVerified", err)
				}
				if rep == nil || rep.Verified || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want a reason containing %q", err, want)
				}
			}

			t.Run("re-pushed manifest under the same tag", func(t *testing.T) {
				b := pushRelease(t, r, "v1", "weights B")
				fails(t, b.Digest, sign.VerifyOptions{}, "no signature found")
			})
			t.Run("swapped layer", func(t *testing.T) {
				evil := pushBlob(t, r, registry.MediaTypeWeightRaw, []byte("evil weights"))
				cfg := pushBlob(t, r, registry.MediaTypeModelConfig, []byte(`{"descriptor":{"name":"t"}}`))
				swapped := pushManifest(t, r, ocispec.Manifest{ArtifactType: registry.ArtifactTypeModel, Config: cfg, Layers: []ocispec.Descriptor{evil}}, "v1")
				fails(t, swapped.Digest, sign.VerifyOptions{}, "no signature found")
				// The signed digest itself still verifies.
				if _, err := sign.Verify(ctx, refA, a.Digest, keys, sign.VerifyOptions{}, plain); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("signature by another key", func(t *testing.T) {
				c := pushRelease(t, r, "", "weights C")
				if _, err := sign.Sign(ctx, refA, c.Digest, other, sign.LayoutBoth, plain); err != nil {
					t.Fatal(err)
				}
				fails(t, c.Digest, sign.VerifyOptions{}, "by other keys")
				if _, err := sign.Verify(ctx, refA, c.Digest, []*sign.Verifier{otherV}, sign.VerifyOptions{}, plain); err != nil {
					t.Fatalf("the other key's own verification: %v", err)
				}
			})
			// bundleOf returns d's bundle referrer with the predicate type
			// (listed unfiltered: the tag-schema index cosign's library
			// writes has no artifactType) and its bundle bytes, to forge from.
			bundleOf := func(t *testing.T, d ocispec.Descriptor, predicateType string) (ocispec.Manifest, []byte) {
				t.Helper()
				var found []ocispec.Descriptor
				if err := r.Referrers(ctx, d, "", func(refs []ocispec.Descriptor) error {
					found = append(found, refs...)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				for _, f := range found {
					rc, err := r.Fetch(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					var m ocispec.Manifest
					err = json.NewDecoder(rc).Decode(&m)
					rc.Close()
					if err != nil {
						t.Fatal(err)
					}
					if m.ArtifactType != sign.BundleMediaType || m.Annotations["dev.sigstore.bundle.predicateType"] != predicateType {
						continue
					}
					lrc, err := r.Fetch(ctx, m.Layers[0])
					if err != nil {
						t.Fatal(err)
					}
					b, err := io.ReadAll(lrc)
					lrc.Close()
					if err != nil {
						t.Fatal(err)
					}
					return m, b
				}
				t.Fatalf("no %s bundle among the %d referrers of %s", predicateType, len(found), d.Digest)
				return ocispec.Manifest{}, nil
			}
			const signType = "https://sigstore.dev/cosign/sign/v1"
			t.Run("truncated bundle", func(t *testing.T) {
				d := pushRelease(t, r, "", "weights D")
				if _, err := sign.Sign(ctx, refA, d.Digest, s, sign.LayoutBundle, plain); err != nil {
					t.Fatal(err)
				}
				m, b := bundleOf(t, d, signType)
				m.Layers[0] = pushBlob(t, r, sign.BundleMediaType, b[:len(b)/2])
				m.Annotations["org.opencontainers.image.created"] = "2000-01-01T00:00:00Z"
				pushManifest(t, r, m, "")
				fails(t, d.Digest, sign.VerifyOptions{}, "unreadable Sigstore bundle")
			})
			t.Run("attestation about another digest", func(t *testing.T) {
				e := pushRelease(t, r, "", "weights E")
				if err := sign.Attest(ctx, refA, a.Digest, s, "https://airlock.dev/attestations/eval/v1", []byte(`{"pass":true}`), plain); err != nil {
					t.Fatal(err)
				}
				// A's attestation, re-pointed at E.
				m, _ := bundleOf(t, a, "https://airlock.dev/attestations/eval/v1")
				m.Subject = &e
				pushManifest(t, r, m, "")
				fails(t, e.Digest, sign.VerifyOptions{PredicateType: "https://airlock.dev/attestations/eval/v1"}, "does not match")
			})
			t.Run("expired attestation", func(t *testing.T) {
				g := pushRelease(t, r, "", "weights G")
				const verdict = "https://airlock.dev/attestations/verdict/v1"
				if err := sign.Attest(ctx, refA, g.Digest, s, verdict, []byte(`{"decision":"pass","expires":"2026-01-01T00:00:00Z"}`), plain); err != nil {
					t.Fatal(err)
				}
				fails(t, g.Digest, sign.VerifyOptions{PredicateType: verdict}, "attestation expired at 2026-01-01T00:00:00Z")
				// Before its expiry it verifies.
				before := func() time.Time { return time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC) }
				rep, err := sign.Verify(ctx, refA, g.Digest, keys, sign.VerifyOptions{PredicateType: verdict, Now: before}, plain)
				if err != nil {
					t.Fatalf("before expiry: %v", err)
				}
				// The verified predicate comes back for the caller to use.
				var p struct{ Decision string }
				if len(rep.Matches) != 1 || json.Unmarshal(rep.Matches[0].Predicate, &p) != nil || p.Decision != "pass" {
					t.Errorf("predicate of the match: %s", rep.Matches[0].Predicate)
				}
				// An expired verdict beside one in force does not spoil it:
				// it is reported, not a problem.
				if err := sign.Attest(ctx, refA, g.Digest, s, verdict, []byte(`{"decision":"pass","expires":"2999-01-01T00:00:00Z"}`), plain); err != nil {
					t.Fatal(err)
				}
				rep, err = sign.Verify(ctx, refA, g.Digest, keys, sign.VerifyOptions{PredicateType: verdict}, plain)
				if err != nil || len(rep.Matches) != 1 || len(rep.Expired) != 1 || len(rep.Problems) != 0 {
					t.Fatalf("one expired and one valid verdict: err %v, report %+v", err, rep)
				}
			})
			t.Run("wrong predicate type", func(t *testing.T) {
				f := pushRelease(t, r, "", "weights F")
				if err := sign.Attest(ctx, refA, f.Digest, s, "https://airlock.dev/attestations/bench/v1", []byte(`{"p99":1}`), plain); err != nil {
					t.Fatal(err)
				}
				m, _ := bundleOf(t, f, "https://airlock.dev/attestations/bench/v1")
				// The annotation claims a verdict; the signed statement says bench.
				m.Annotations["dev.sigstore.bundle.predicateType"] = "https://airlock.dev/attestations/verdict/v1"
				pushManifest(t, r, m, "")
				fails(t, f.Digest, sign.VerifyOptions{PredicateType: "https://airlock.dev/attestations/verdict/v1"}, "want \"https://airlock.dev/attestations/verdict/v1\"")
				if _, err := sign.Verify(ctx, refA, f.Digest, keys, sign.VerifyOptions{PredicateType: "https://airlock.dev/attestations/bench/v1"}, plain); err != nil {
					t.Fatalf("the genuine attestation: %v", err)
				}
			})
		})
	}
}

// TestInteropCosign: the real cosign CLI (v2.6.5) verifies what airlock
// signs, and airlock verifies what cosign signs, in both layouts, on both
// registries. cosign v2 needs a trusted root once it sees a bundle; an
// empty one (no authorities) keeps it offline with --key.
func TestInteropCosign(t *testing.T) {
	cosignBin := regtest.Tool(t, "cosign")
	ctx := context.Background()
	dir := t.TempDir()
	emptyRoot := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(emptyRoot, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "COSIGN_PASSWORD=pw", "HOME="+dir, "DOCKER_CONFIG="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
	cosign := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, cosignBin, args...)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for name, srv := range registries(t) {
		t.Run(name, func(t *testing.T) {
			s, v, _, pubPEM := newKey(t, "pw")
			pubPath := filepath.Join(dir, name+"-airlock.pub")
			if err := os.WriteFile(pubPath, pubPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			r := repo(t, srv.Host, "bot")

			t.Run("cosign verifies airlock's tag layout", func(t *testing.T) {
				d := pushRelease(t, r, "", "tag layout")
				ref := refOf(t, srv.Host, "bot")
				if _, err := sign.Sign(ctx, ref, d.Digest, s, sign.LayoutTag, plain); err != nil {
					t.Fatal(err)
				}
				if out, err := cosign(t, "verify", "--key", pubPath, "--insecure-ignore-tlog", srv.Host+"/bot@"+d.Digest.String()); err != nil {
					t.Fatalf("cosign verify: %v\n%s", err, out)
				}
			})
			t.Run("cosign verifies airlock's bundle", func(t *testing.T) {
				d := pushRelease(t, r, "", "bundle layout")
				ref := refOf(t, srv.Host, "bot")
				if _, err := sign.Sign(ctx, ref, d.Digest, s, sign.LayoutBundle, plain); err != nil {
					t.Fatal(err)
				}
				if out, err := cosign(t, "verify", "--key", pubPath, "--insecure-ignore-tlog", "--trusted-root", emptyRoot, srv.Host+"/bot@"+d.Digest.String()); err != nil {
					t.Fatalf("cosign verify: %v\n%s", err, out)
				}
				// And a key that did not sign is refused.
				_, _, _, otherPub := newKey(t, "x")
				otherPath := filepath.Join(dir, name+"-other.pub")
				if err := os.WriteFile(otherPath, otherPub, 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := cosign(t, "verify", "--key", otherPath, "--insecure-ignore-tlog", "--trusted-root", emptyRoot, srv.Host+"/bot@"+d.Digest.String()); err == nil {
					t.Fatalf("cosign verified with a key that did not sign:\n%s", out)
				}
			})
			if out, err := cosign(t, "generate-key-pair", "--output-key-prefix", name+"-cosign"); err != nil {
				t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
			}
			cosignPub, err := os.ReadFile(filepath.Join(dir, name+"-cosign.pub"))
			if err != nil {
				t.Fatal(err)
			}
			cv, err := sign.LoadVerifier(cosignPub, "cosign.pub")
			if err != nil {
				t.Fatal(err)
			}
			t.Run("airlock verifies cosign sign", func(t *testing.T) {
				d := pushRelease(t, r, "", "cosign legacy")
				if out, err := cosign(t, "sign", "--key", name+"-cosign.key", "--tlog-upload=false", "-y", srv.Host+"/bot@"+d.Digest.String()); err != nil {
					t.Fatalf("cosign sign: %v\n%s", err, out)
				}
				rep, err := sign.Verify(ctx, refOf(t, srv.Host, "bot"), d.Digest, []*sign.Verifier{v, cv}, sign.VerifyOptions{}, plain)
				if err != nil || rep.Matches[0].Layout != "tag" || rep.Matches[0].KeyID != cv.KeyID {
					t.Fatalf("airlock verify: %v %+v", err, rep)
				}
			})
			t.Run("airlock verifies cosign sign --new-bundle-format", func(t *testing.T) {
				d := pushRelease(t, r, "", "cosign bundle")
				if out, err := cosign(t, "sign", "--new-bundle-format", "--key", name+"-cosign.key", "--tlog-upload=false", "-y", srv.Host+"/bot@"+d.Digest.String()); err != nil {
					t.Fatalf("cosign sign: %v\n%s", err, out)
				}
				rep, err := sign.Verify(ctx, refOf(t, srv.Host, "bot"), d.Digest, []*sign.Verifier{cv}, sign.VerifyOptions{Layout: sign.LayoutBundle}, plain)
				if err != nil || rep.Matches[0].Layout != "bundle" {
					t.Fatalf("airlock verify: %v %+v", err, rep)
				}
			})
			t.Run("airlock verifies cosign attest (the .att tag)", func(t *testing.T) {
				d := pushRelease(t, r, "", "cosign legacy attest")
				pred := filepath.Join(dir, "predicate-legacy.json")
				if err := os.WriteFile(pred, []byte(`{"suite":"golden","passRate":0.91}`), 0o644); err != nil {
					t.Fatal(err)
				}
				const typ = "https://airlock.dev/attestations/eval/v1"
				if out, err := cosign(t, "attest", "--key", name+"-cosign.key", "--tlog-upload=false", "-y",
					"--type", typ, "--predicate", pred, srv.Host+"/bot@"+d.Digest.String()); err != nil {
					t.Fatalf("cosign attest: %v\n%s", err, out)
				}
				rep, err := sign.Verify(ctx, refOf(t, srv.Host, "bot"), d.Digest, []*sign.Verifier{cv}, sign.VerifyOptions{PredicateType: typ}, plain)
				if err != nil || rep.Matches[0].Layout != "tag" || rep.Matches[0].PredicateType != typ {
					t.Fatalf("airlock verify --attestations: %v %+v", err, rep)
				}
				// The same attestation is no bench result.
				if _, err := sign.Verify(ctx, refOf(t, srv.Host, "bot"), d.Digest, []*sign.Verifier{cv}, sign.VerifyOptions{PredicateType: "https://airlock.dev/attestations/bench/v1"}, plain); !errors.Is(err, sign.ErrNotVerified) {
					t.Fatalf("verify of another predicate type: %v", err)
				}
			})
			t.Run("airlock verifies cosign attest --new-bundle-format", func(t *testing.T) {
				d := pushRelease(t, r, "", "cosign attest")
				pred := filepath.Join(dir, "predicate.json")
				if err := os.WriteFile(pred, []byte(`{"suite":"golden","passRate":0.97}`), 0o644); err != nil {
					t.Fatal(err)
				}
				const typ = "https://airlock.dev/attestations/eval/v1"
				if out, err := cosign(t, "attest", "--new-bundle-format", "--key", name+"-cosign.key", "--tlog-upload=false", "-y",
					"--type", typ, "--predicate", pred, srv.Host+"/bot@"+d.Digest.String()); err != nil {
					t.Fatalf("cosign attest: %v\n%s", err, out)
				}
				rep, err := sign.Verify(ctx, refOf(t, srv.Host, "bot"), d.Digest, []*sign.Verifier{cv}, sign.VerifyOptions{PredicateType: typ}, plain)
				if err != nil || rep.Matches[0].PredicateType != typ {
					t.Fatalf("airlock verify --attestations: %v %+v", err, rep)
				}
			})
		})
	}
}

// TestInteropCosignV3: cosign v3.1.3, whose default is the Sigstore bundle
// referrer, verifies what airlock signs without extra flags, and airlock
// verifies what cosign v3 signs and attests. Offline, cosign v3 signs with
// a signing config that names no services and an empty trusted root.
func TestInteropCosignV3(t *testing.T) {
	cosignBin := regtest.Tool(t, "cosign3")
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "trusted_root.json")
	signingConfig := filepath.Join(dir, "signing_config.json")
	pred := filepath.Join(dir, "predicate.json")
	for p, content := range map[string]string{
		root:          `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`,
		signingConfig: `{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogConfig":{},"tsaConfig":{}}`,
		pred:          `{"suite":"golden","passRate":0.97}`,
	} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "COSIGN_PASSWORD=pw", "HOME="+dir, "DOCKER_CONFIG="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
	cosign := func(t *testing.T, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, cosignBin, args...)
		cmd.Env, cmd.Dir = env, dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign %s: %v\n%s", args[0], err, out)
		}
	}
	cosign(t, "generate-key-pair", "--output-key-prefix", "v3")
	cosignPub, err := os.ReadFile(filepath.Join(dir, "v3.pub"))
	if err != nil {
		t.Fatal(err)
	}
	cv, err := sign.LoadVerifier(cosignPub, "v3.pub")
	if err != nil {
		t.Fatal(err)
	}
	for name, srv := range registries(t) {
		t.Run(name, func(t *testing.T) {
			s, _, _, pubPEM := newKey(t, "pw")
			pubPath := filepath.Join(dir, name+"-airlock.pub")
			if err := os.WriteFile(pubPath, pubPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			r := repo(t, srv.Host, "bot")
			ref := refOf(t, srv.Host, "bot")
			for _, lay := range []sign.Layout{sign.LayoutBoth, sign.LayoutBundle} {
				d := pushRelease(t, r, "", "for cosign v3, layout "+lay.String())
				if _, err := sign.Sign(ctx, ref, d.Digest, s, lay, plain); err != nil {
					t.Fatal(err)
				}
				cosign(t, "verify", "--key", pubPath, "--insecure-ignore-tlog", srv.Host+"/bot@"+d.Digest.String())
			}
			d := pushRelease(t, r, "", "signed by cosign v3")
			target := srv.Host + "/bot@" + d.Digest.String()
			cosign(t, "sign", "--key", "v3.key", "--signing-config", signingConfig, "--trusted-root", root, "-y", target)
			const typ = "https://airlock.dev/attestations/eval/v1"
			cosign(t, "attest", "--key", "v3.key", "--signing-config", signingConfig, "--trusted-root", root, "-y", "--type", typ, "--predicate", pred, target)
			if rep, err := sign.Verify(ctx, ref, d.Digest, []*sign.Verifier{cv}, sign.VerifyOptions{}, plain); err != nil || rep.Matches[0].Layout != "bundle" {
				t.Fatalf("airlock verify of cosign v3's signature: %v %+v", err, rep)
			}
			if _, err := sign.Verify(ctx, ref, d.Digest, []*sign.Verifier{cv}, sign.VerifyOptions{PredicateType: typ}, plain); err != nil {
				t.Fatalf("airlock verify of cosign v3's attestation: %v", err)
			}
		})
	}
}
