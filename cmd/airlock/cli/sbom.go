package cli

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/registry/sbom"
	"github.com/airlock-dev/airlock/registry/sign"
)

func newSBOMCmd(g *globals) *cobra.Command {
	var out, keyPath string
	var attach bool
	cmd := &cobra.Command{
		Use:   "sbom REF [-o FILE] [--attach --key NAME.key]",
		Short: "Write a release's CycloneDX 1.6 ML-BOM",
		Long: `Sbom reads a release's manifest (verified against its digest; no layer is
downloaded) and writes its ML-BOM as CycloneDX 1.6 JSON: the release with
its owner, license and purl; the model as a machine-learning-model
component with its model card (architecture, datasets) and base-model
lineage; tokenizer, prompts, safety settings, eval suites and docs as data
components; every file with its SHA-256, which is its layer digest; the
datasets with their licenses; and the dependencies from the release to its
parts. The same release gives the same bytes: the serial number is derived
from the manifest digest, and a timestamp is written only when
SOURCE_DATE_EPOCH is set. See docs/sbom.md.

--attach also signs the BOM as an in-toto attestation (predicate type
https://cyclonedx.org/bom) and attaches it to the release as a referrer,
as airlock attest --type cyclonedx does; check it with
  airlock verify REF --key NAME.pub --attestations cyclonedx

Exit codes: 0 written (and attached), 2 error or not a release, 64 usage.`,
		Example: `  airlock sbom localhost:5000/support-bot:1.4.0 > support-bot.cdx.json
  airlock sbom localhost:5000/support-bot:1.4.0 -o support-bot.cdx.json --attach --key cosign.key`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if attach != (keyPath != "") {
				return usagef("--attach and --key go together: --attach --key NAME.key")
			}
			ref, err := parsePinnedRef(a[0])
			if err != nil {
				return err
			}
			ts, err := sourceDateEpoch()
			if err != nil {
				return err
			}
			var s *sign.Signer
			if attach {
				if s, err = loadSigner(g, keyPath); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			in, err := c.Inspect(cmd.Context(), ref)
			if err != nil {
				return err
			}
			bom, err := sbom.Build(in.Descriptor, in.Manifest, in.File, sbom.Options{
				Repository: ref.Name(), Timestamp: ts, ToolVersion: version(),
			})
			if err != nil {
				return fmt.Errorf("%s: %w", in.Ref, err)
			}
			var buf bytes.Buffer
			if err := sbom.Encode(&buf, bom); err != nil {
				return err
			}
			if out == "" || out == "-" {
				if _, err := g.stdout.Write(buf.Bytes()); err != nil {
					return err
				}
			} else if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return err
			}
			if attach {
				if err := sign.Attest(cmd.Context(), in.Ref, in.Descriptor.Digest, s, sbom.PredicateType, buf.Bytes(), g.signRemote(in.Ref)); err != nil {
					return fmt.Errorf("attaching the ML-BOM: %w", err)
				}
				fmt.Fprintf(g.stderr, "Attached the ML-BOM to %s (%s) with key %s\n", in.Ref, sbom.PredicateType, s.KeyID[:16])
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the BOM to FILE instead of stdout")
	cmd.Flags().BoolVar(&attach, "attach", false, "also sign the BOM and attach it to the release as an attestation (needs --key)")
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file for --attach")
	return cmd
}
