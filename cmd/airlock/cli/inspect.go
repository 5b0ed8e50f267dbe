package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/spf13/cobra"
)

func newInspectCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show a release's parts, sizes, roles, annotations and referrers",
		Long: `Inspect reads a release's manifest and config (verified against their
digests) and lists the manifests that refer to it — signatures, SBOMs,
attestations — through the OCI 1.1 referrers API, or the referrers tag
schema on registries without it. No layer is downloaded.`,
		Example: `  airlock inspect localhost:5000/support-bot:1.4.0
  airlock inspect localhost:5000/support-bot:1.4.0 --json | jq .manifest.layers`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := parsePinnedRef(a[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			in, err := c.Inspect(cmd.Context(), ref)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g.stdout, inspectJSON{
					Ref: in.Ref.String(), Descriptor: in.Descriptor, Manifest: json.RawMessage(in.Raw),
					Config: in.Config, Release: in.File, Referrers: in.Referrers, ReferrersError: in.ReferrersError, SignatureTag: in.SignatureTag,
				})
			}
			printInspection(g, in)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print manifest, config, release file and referrers as JSON")
	return cmd
}

type inspectJSON struct {
	Ref            string          `json:"ref"`
	Descriptor     any             `json:"descriptor"`
	Manifest       json.RawMessage `json:"manifest"`
	Config         any             `json:"config,omitempty"`
	Release        any             `json:"release,omitempty"`
	Referrers      any             `json:"referrers"`
	ReferrersError string          `json:"referrersError,omitempty"`
	SignatureTag   any             `json:"signatureTag,omitempty"`
}

func printInspection(g *globals, in *client.Inspection) {
	w := g.stdout
	m := in.Manifest
	fmt.Fprintf(w, "Reference:     %s\n", in.Ref)
	fmt.Fprintf(w, "Digest:        %s\n", in.Descriptor.Digest)
	fmt.Fprintf(w, "Artifact type: %s\n", m.ArtifactType)
	if !registry.IsModelArtifact(m.ArtifactType, m.Config.MediaType) {
		fmt.Fprintf(w, "               (not a ModelPack release; config %s)\n", m.Config.MediaType)
	}
	if f := in.File; f != nil {
		fmt.Fprintf(w, "Release:       %s %s", f.Metadata.Name, f.Metadata.Version)
		if f.Metadata.Owner != "" {
			fmt.Fprintf(w, " (owner %s)", f.Metadata.Owner)
		}
		fmt.Fprintln(w)
		if f.Metadata.License != "" {
			fmt.Fprintf(w, "License:       %s\n", f.Metadata.License)
		}
		if f.Model != nil {
			fmt.Fprintf(w, "Model:         format=%s architecture=%s params=%s precision=%s\n",
				dash(f.Model.Format), dash(f.Model.Architecture), dash(f.Model.ParamSize), dash(f.Model.Precision))
		}
		if len(f.DataScopes) > 0 {
			fmt.Fprintf(w, "Data scopes:   %v\n", f.DataScopes)
		}
		if f.BaseModel != "" {
			fmt.Fprintf(w, "Base model:    %s\n", f.BaseModel)
		}
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	fmt.Fprintf(w, "Size:          %s in %d layers\n\nParts:\n", bytesHuman(total), len(m.Layers))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROLE\tPATH\tSIZE\tMEDIA TYPE\tDIGEST")
	for _, l := range m.Layers {
		p, err := client.LayerPath(l)
		if err != nil {
			p = "(" + err.Error() + ")"
		}
		role := string(client.Role(l))
		if part := l.Annotations[registry.AnnotationPart]; part != "" {
			role += ":" + part
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", dash(role), p, bytesHuman(l.Size), l.MediaType, l.Digest)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nAnnotations:")
	keys := make([]string, 0, len(m.Annotations))
	for k := range m.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m.Annotations[k]
		if k == registry.AnnotationRelease && len(v) > 80 {
			v = v[:77] + "..."
		}
		fmt.Fprintf(w, "  %s: %s\n", k, v)
	}
	fmt.Fprintln(w, "\nReferrers:")
	switch {
	case in.ReferrersError != "":
		fmt.Fprintf(w, "  (%s)\n", in.ReferrersError)
	case len(in.Referrers) == 0:
		fmt.Fprintln(w, "  none")
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range in.Referrers {
			what := dash(r.ArtifactType)
			if pt := r.Annotations[registry.AnnotationBundlePredicateType]; pt != "" {
				what += " (" + pt + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", what, r.Digest, bytesHuman(r.Size))
		}
		tw.Flush()
	}
	if in.SignatureTag != nil {
		d := in.Descriptor.Digest
		fmt.Fprintf(w, "\nCosign signature tag: %s-%s.sig (%s)\n", d.Algorithm(), d.Encoded(), in.SignatureTag.Digest)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
