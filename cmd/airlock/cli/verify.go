package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/registry/sign"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var keyPaths []string
	var layout, predicateType string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify REF --key NAME.pub",
		Short: "Verify a release's signatures (cosign v2 and v3 layouts)",
		Long: `Verify resolves REF to its manifest digest and checks the signatures
stored for it in both of cosign's layouts (the sha256-<hex>.sig tag and
Sigstore bundle referrers) against the trusted public keys. It passes when
at least one signature by a trusted key verifies and nothing it found is
broken; it reports which key and which layout matched. Signatures by other
keys are listed and ignored; a malformed bundle, a statement about another
digest or a payload naming another image fail the verification.

--attestations TYPE checks in-toto attestations of that predicate type
instead of signatures: a URI, or eval, bench, verdict, promotion,
cyclonedx, custom (see airlock attest --help).

Exit codes: 0 verified, 1 not verified, 2 error.`,
		Example: `  airlock verify localhost:5000/support-bot:1.4.0 --key cosign.pub
  airlock verify localhost:5000/support-bot@sha256:… --key a.pub --key b.pub --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(keyPaths) == 0 {
				return usagef("--key is required")
			}
			lay, err := sign.ParseLayout(layout)
			if err != nil {
				return usageError{err}
			}
			if predicateType != "" {
				if predicateType, err = expandPredicateType(predicateType); err != nil {
					return err
				}
			}
			ref, err := parsePinnedRef(a[0])
			if err != nil {
				return err
			}
			keys, err := loadVerifiers(keyPaths)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			desc, err := c.Resolve(cmd.Context(), ref)
			if err != nil {
				return err
			}
			rep, verr := sign.Verify(cmd.Context(), ref, desc.Digest, keys, sign.VerifyOptions{Layout: lay, PredicateType: predicateType}, g.signRemote(ref))
			if rep == nil {
				return verr
			}
			if asJSON {
				if err := writeJSON(g.stdout, rep); err != nil {
					return err
				}
			} else {
				printVerify(g, ref.WithDigest(desc.Digest).String(), rep)
			}
			return verr // ErrNotVerified exits 1, anything else 2
		},
	}
	cmd.Flags().StringArrayVar(&keyPaths, "key", nil, "trusted public key (PEM); repeat for several")
	cmd.Flags().StringVar(&layout, "layout", "both", "which layouts count: both, tag (cosign v2) or bundle (cosign v3)")
	cmd.Flags().StringVar(&predicateType, "attestations", "", "verify attestations of this predicate type instead of signatures")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func printVerify(g *globals, ref string, rep *sign.Report) {
	for _, m := range rep.Matches {
		what := "signature"
		if m.PredicateType != "" && m.Layout == "bundle" {
			what = "bundle (" + m.PredicateType + ")"
		}
		fmt.Fprintf(g.stderr, "ok: %s in the %s layout, key %s (%s)\n", what, m.Layout, m.Key, m.KeyID[:16])
	}
	for _, f := range rep.Ignored {
		fmt.Fprintf(g.stderr, "ignored: %s\n", f.Reason)
	}
	for _, f := range rep.Problems {
		fmt.Fprintf(g.stderr, "problem: %s\n", f.Reason)
	}
	if rep.Verified {
		fmt.Fprintf(g.stdout, "Verified %s\n", ref)
	}
}

// loadVerifiers reads trusted public keys (PEM).
func loadVerifiers(paths []string) ([]*sign.Verifier, error) {
	var keys []*sign.Verifier
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		v, err := sign.LoadVerifier(b, p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, v)
	}
	return keys, nil
}
