package cli

import (
	"fmt"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/spf13/cobra"
)

func newPullCmd(g *globals) *cobra.Command {
	var out string
	var roles, paths []string
	var noCache, asJSON bool
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Download a release, or some of its parts, into a directory",
		Long: `Pull writes a release's files into a directory, verifying every byte
against the manifest's digests. --role and --path select parts; only their
layers are downloaded. Files already in place with the right content are
not downloaded again. An interrupted download resumes where it stopped
(HTTP Range), within the same run after a broken connection, or on the
next run from .airlock-partial/ in the output directory; nothing
unverified is ever written under a file's final name.

A full pull also writes airlock.yaml from the manifest, so the directory
packs again to the same digest, and, when the release was signed with
airlock sign, model.sig: its OpenSSF Model Signing (OMS v1.0) bundle,
which model_signing verify checks against the directory.

Roles: model, tokenizer, prompt, safety, eval, doc, code.`,
		Example: `  airlock pull localhost:5000/support-bot:1.4.0 -o ./support-bot
  airlock pull localhost:5000/support-bot:1.4.0 --role prompt,safety
  airlock pull localhost:5000/support-bot@sha256:… --path 'tokenizer/*'`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := parsePinnedRef(a[0])
			if err != nil {
				return err
			}
			opts := client.PullOptions{Paths: paths, Cache: hashCache(noCache)}
			for _, r := range roles {
				for _, s := range strings.Split(r, ",") {
					role := registry.Role(strings.TrimSpace(s))
					if !role.Valid() {
						return usagef("--role %q: not a role (model, tokenizer, prompt, safety, eval, doc, code)", s)
					}
					opts.Roles = append(opts.Roles, role)
				}
			}
			for _, p := range paths {
				if _, err := path.Match(p, ""); err != nil {
					return usagef("--path %q: %v", p, err)
				}
			}
			if out == "" {
				out = path.Base(ref.Repository)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			p := newProgress(g, "pulling", 0)
			opts.Progress = p.add
			start := time.Now()
			res, err := c.Pull(cmd.Context(), ref, out, opts)
			p.finish()
			if err != nil {
				return err
			}
			took := time.Since(start)
			if asJSON {
				return writeJSON(g.stdout, map[string]any{
					"ref": res.Release.Ref.String(), "digest": res.Release.Descriptor.Digest.String(),
					"dir": out, "files": res.Files, "bytes": res.Bytes, "releaseFile": res.ReleaseFile, "omsFile": res.OMSFile, "seconds": took.Seconds(),
				})
			}
			tw := tabwriter.NewWriter(g.stderr, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROLE\tPATH\tSIZE\tSTATUS")
			for _, f := range res.Files {
				status := "downloaded"
				switch {
				case f.Present:
					status = "already present"
				case f.Resumed > 0:
					status = fmt.Sprintf("resumed at %s", bytesHuman(f.Resumed))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Role, f.Path, bytesHuman(f.Size), status)
			}
			tw.Flush()
			fmt.Fprintf(g.stderr, "pulled %d of %d files (%s downloaded) into %s in %s\n",
				len(res.Files), len(res.Release.Manifest.Layers), bytesHuman(res.Bytes), out, took.Round(time.Millisecond))
			if res.OMSFile != "" {
				fmt.Fprintf(g.stderr, "wrote %s: the release's OpenSSF Model Signing signature\n", res.OMSFile)
			}
			fmt.Fprintln(g.stdout, res.Release.Ref)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "directory to write into (default: the repository's last path component)")
	cmd.Flags().StringSliceVar(&roles, "role", nil, "pull only these roles (comma-separated or repeated)")
	cmd.Flags().StringSliceVar(&paths, "path", nil, "pull only paths matching these globs (repeatable; a directory keeps what is under it)")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "re-hash files already in place instead of trusting the digest cache")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
