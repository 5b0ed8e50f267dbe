package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/sign"
)

func newSignCmd(g *globals) *cobra.Command {
	var keyPath, layout string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sign REF --key NAME.key",
		Short: "Sign a release's manifest digest, as cosign does",
		Long: `Sign resolves REF to its manifest digest (a tag is resolved first and the
digest, not the tag, is signed) and signs that digest with the private key:
no layer is read, so signing takes the same time for any release size. No
transparency log or certificate authority is contacted.

By default it writes both layouts, so cosign v2 and cosign v3 verify it
without flags:
  tag     cosign v2's signature manifest, tagged sha256-<hex>.sig
  bundle  cosign v3's Sigstore bundle v0.3, an OCI 1.1 referrer of the
          release (the referrers tag schema on registries without the API)
--layout picks one. Verify with airlock verify, or with
  cosign verify --key NAME.pub --insecure-ignore-tlog REF@DIGEST

The key's password comes from AIRLOCK_PASSWORD or COSIGN_PASSWORD, else
from the terminal. The signed digest is printed last on stdout.`,
		Example: `  airlock sign localhost:5000/support-bot:1.4.0 --key cosign.key
  airlock sign localhost:5000/support-bot@sha256:… --key cosign.key --layout bundle`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if keyPath == "" {
				return usagef("--key is required")
			}
			lay, err := sign.ParseLayout(layout)
			if err != nil {
				return usageError{err}
			}
			ref, err := parsePinnedRef(a[0])
			if err != nil {
				return err
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
			if ref.Digest == "" {
				fmt.Fprintf(g.stderr, "Resolved %s to %s\n", ref, desc.Digest)
			}
			res, err := sign.Sign(cmd.Context(), ref, desc.Digest, s, lay, g.signRemote(ref))
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g.stdout, res)
			}
			fmt.Fprintf(g.stderr, "Signed with key %s (%v)\n", res.KeyID[:16], res.Written)
			fmt.Fprintln(g.stdout, ref.WithDigest(res.Digest))
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file (cosign's encrypted format, or an unencrypted PEM key)")
	cmd.Flags().StringVar(&layout, "layout", "both", "where to store the signature: both, tag (cosign v2) or bundle (cosign v3)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was written as JSON")
	return cmd
}

// signRemote is how the signing package reaches ref's registry:
// credentials as docker and cosign read them (DOCKER_CONFIG, credential
// helpers), plain HTTP as the global flags and loopback rule say.
func (g *globals) signRemote(ref registry.Ref) sign.Remote {
	return sign.Remote{
		PlainHTTP: g.plainHTTP || ref.Loopback(),
		Insecure:  g.insecure,
		UserAgent: "airlock/" + version(),
	}
}
