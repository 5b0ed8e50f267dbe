package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/spf13/cobra"
)

// packFlags are shared by pack and push.
type packFlags struct {
	file    string
	noCache bool
}

func (f *packFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", pack.DefaultFile, "release file, relative to DIR")
	cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "hash every file even if its digest is cached")
}

func newPackCmd(g *globals) *cobra.Command {
	var pf packFlags
	var layout, pushRef string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pack [DIR]",
		Short: "Build the OCI artifact of a release directory and print its digest",
		Long: `Pack reads DIR/airlock.yaml (default DIR: .), checks it, hashes every file
it names (once, several files at a time) and builds a CNCF ModelPack
manifest: one raw layer per file, annotated with its path and role, and the
release file as the dev.airlock.release annotation.

The digest depends only on the files' contents and paths and on the release
file, never on the machine or file times; set SOURCE_DATE_EPOCH to stamp a
creation time. The digest is printed last on stdout.

--oci-layout writes the artifact to an OCI image layout directory, tagged
with the release version; --push sends it to a registry (like airlock push).`,
		Example: `  airlock pack examples/support-bot
  airlock pack examples/support-bot --oci-layout ./out
  airlock pack . --push localhost:5000/support-bot:1.4.0`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			dir := "."
			if len(a) == 1 {
				dir = a[0]
			}
			created, err := sourceDateEpoch()
			if err != nil {
				return err
			}
			l, err := pack.Load(dir, pf.file)
			if err != nil {
				return err
			}
			if pushRef != "" {
				ref, err := parseRef(pushRef)
				if err != nil {
					return err
				}
				return pushDir(cmd, g, l, ref, created, hashCache(pf.noCache), false, asJSON)
			}
			var total int64
			for _, e := range l.Entries {
				total += e.Size
			}
			p := newProgress(g, "hashing", total)
			art, err := pack.Pack(cmd.Context(), l, pack.Options{Created: created, Cache: hashCache(pf.noCache), Progress: p.add})
			p.finish()
			if err != nil {
				return err
			}
			if layout != "" {
				if _, err := client.WriteLayout(cmd.Context(), art, layout, l.Metadata.Version); err != nil {
					return err
				}
			}
			desc := art.Descriptor()
			if asJSON {
				out := packJSON{Digest: desc.Digest.String(), MediaType: desc.MediaType, ArtifactType: desc.ArtifactType,
					Size: desc.Size, Name: l.Metadata.Name, Version: l.Metadata.Version, Layout: layout}
				for _, ly := range art.Layers {
					out.Layers = append(out.Layers, layerJSON{Path: ly.File.Path, Role: string(ly.File.Role), MediaType: ly.MediaType, Digest: ly.Digest.String(), Size: ly.Size})
				}
				return writeJSON(g.stdout, out)
			}
			printLayers(g.stderr, art)
			if layout != "" {
				fmt.Fprintf(g.stderr, "wrote %s:%s\n", layout, l.Metadata.Version)
			}
			fmt.Fprintln(g.stdout, desc.Digest)
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&layout, "oci-layout", "", "also write the artifact to this OCI image layout directory")
	cmd.Flags().StringVar(&pushRef, "push", "", "also push the artifact to this reference (HOST/REPO[:TAG])")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

type packJSON struct {
	Name         string      `json:"name"`
	Version      string      `json:"version"`
	Digest       string      `json:"digest"`
	MediaType    string      `json:"mediaType"`
	ArtifactType string      `json:"artifactType"`
	Size         int64       `json:"size"`
	Layout       string      `json:"layout,omitempty"`
	Layers       []layerJSON `json:"layers"`
}

type layerJSON struct {
	Path      string `json:"path"`
	Role      string `json:"role"`
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

func printLayers(w io.Writer, art *pack.Artifact) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tPATH\tSIZE\tDIGEST")
	for _, l := range art.Layers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.File.Role, l.File.Path, bytesHuman(l.Size), l.Digest.Encoded()[:12])
	}
	tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
