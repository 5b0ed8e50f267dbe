package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/registry/sign"
)

// predicateTypes are the short names attest and verify --attestations
// accept (DESIGN.md §3); anything else must be a full URI.
var predicateTypes = map[string]string{
	"eval":      "https://airlock.dev/attestations/eval/v1",
	"bench":     "https://airlock.dev/attestations/bench/v1",
	"verdict":   "https://airlock.dev/attestations/verdict/v1",
	"promotion": "https://airlock.dev/attestations/promotion/v1",
	"cyclonedx": "https://cyclonedx.org/bom",
	"custom":    "https://cosign.sigstore.dev/attestation/v1",
}

// predicateType expands a short name; a full URI passes through.
func expandPredicateType(s string) (string, error) {
	if u, ok := predicateTypes[s]; ok {
		return u, nil
	}
	if strings.Contains(s, "://") {
		return s, nil
	}
	return "", usagef("predicate type %q: want a URI or one of eval, bench, verdict, promotion, cyclonedx, custom", s)
}

func newAttestCmd(g *globals) *cobra.Command {
	var keyPath, typ, predicatePath string
	cmd := &cobra.Command{
		Use:   "attest REF --key NAME.key --type TYPE --predicate FILE",
		Short: "Attach a signed in-toto attestation to a release",
		Long: `Attest resolves REF to its digest, wraps the predicate (a JSON object read
from FILE, or - for stdin) in an in-toto statement about that digest, signs
it as a DSSE envelope and attaches it as a Sigstore bundle referrer whose
annotations name the predicate type, so readers can filter without
fetching (cosign attest --new-bundle-format writes the same).

TYPE is a URI or one of: eval, bench, verdict, promotion
(https://airlock.dev/attestations/<name>/v1), cyclonedx
(https://cyclonedx.org/bom), custom (cosign's custom type). Check with
  airlock verify REF --key NAME.pub --attestations TYPE`,
		Example: `  airlock attest localhost:5000/support-bot:1.4.0 --key cosign.key --type eval --predicate report.json`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if keyPath == "" || typ == "" || predicatePath == "" {
				return usagef("--key, --type and --predicate are required")
			}
			pt, err := expandPredicateType(typ)
			if err != nil {
				return err
			}
			ref, err := parsePinnedRef(a[0])
			if err != nil {
				return err
			}
			var pred []byte
			if predicatePath == "-" {
				pred, err = io.ReadAll(g.stdin)
			} else {
				pred, err = os.ReadFile(predicatePath)
			}
			if err != nil {
				return err
			}
			var obj map[string]any
			if err := json.Unmarshal(pred, &obj); err != nil {
				return fmt.Errorf("%s: the predicate must be a JSON object: %w", predicatePath, err)
			}
			s, err := loadSigner(g, keyPath)
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
			if err := sign.Attest(cmd.Context(), ref, desc.Digest, s, pt, pred, g.signRemote(ref)); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "Attested %s (%s) with key %s\n", desc.Digest, pt, s.KeyID[:16])
			fmt.Fprintln(g.stdout, ref.WithDigest(desc.Digest))
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file")
	cmd.Flags().StringVar(&typ, "type", "", "predicate type: a URI, or eval, bench, verdict, promotion, cyclonedx, custom")
	cmd.Flags().StringVar(&predicatePath, "predicate", "", "JSON file holding the predicate (- for stdin)")
	return cmd
}
