package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/spf13/cobra"
)

func newPushCmd(g *globals) *cobra.Command {
	var pf packFlags
	var hashFirst, asJSON bool
	cmd := &cobra.Command{
		Use:   "push DIR|LAYOUT[:TAG] REF",
		Short: "Pack a release directory (or take an OCI layout) and push it to a registry",
		Long: `Push sends a release to any OCI registry. Given a release directory it packs
and pushes in one pass: blobs the registry already has are skipped, several
layers upload at once, and large files are hashed while they upload so each
byte is read once. Given an OCI image layout (a directory with an oci-layout
file, as written by 'airlock pack --oci-layout') it copies the release from
it.

REF without a tag is tagged with the release's version. The pushed
reference, pinned to its digest, is printed last on stdout.

Credentials come from the Docker config (docker login, credential helpers).
Loopback registries are spoken to over plain HTTP; use --plain-http for
others that do not have TLS.`,
		Example: `  airlock push examples/support-bot localhost:5000/support-bot
  airlock push ./out:1.4.0 registry.example/team/support-bot:1.4.0`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := parseRef(a[1])
			if err != nil {
				return err
			}
			src, from := a[0], ""
			if isLayout(src) {
				return pushLayout(cmd, g, src, from, ref, asJSON)
			}
			if i := strings.LastIndex(src, ":"); i > 0 && isLayout(src[:i]) {
				return pushLayout(cmd, g, src[:i], src[i+1:], ref, asJSON)
			}
			created, err := sourceDateEpoch()
			if err != nil {
				return err
			}
			l, err := pack.Load(src, pf.file)
			if err != nil {
				return err
			}
			return pushDir(cmd, g, l, ref, created, hashCache(pf.noCache), hashFirst, asJSON)
		},
	}
	pf.register(cmd)
	cmd.Flags().BoolVar(&hashFirst, "hash-first", false, "hash every file before uploading, so no blob the registry has is sent even if this machine never pushed it (reads large files twice)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func isLayout(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "oci-layout"))
	return err == nil
}

func pushDir(cmd *cobra.Command, g *globals, l *pack.Loaded, ref registry.Ref, created *time.Time, cache *pack.HashCache, hashFirst, asJSON bool) error {
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = l.Metadata.Version
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	var total int64
	for _, e := range l.Entries {
		total += e.Size
	}
	p := newProgress(g, "pushing", total)
	start := time.Now()
	res, err := c.PushDir(cmd.Context(), l, ref, client.PushOptions{Created: created, Cache: cache, HashFirst: hashFirst, Progress: p.add})
	p.finish()
	if err != nil {
		return err
	}
	return printPush(g, res, time.Since(start), asJSON)
}

func pushLayout(cmd *cobra.Command, g *globals, dir, from string, ref registry.Ref, asJSON bool) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := c.PushLayout(cmd.Context(), dir, from, ref)
	if err != nil {
		return err
	}
	return printPush(g, res, time.Since(start), asJSON)
}

func printPush(g *globals, res *client.PushResult, took time.Duration, asJSON bool) error {
	if asJSON {
		return writeJSON(g.stdout, map[string]any{
			"ref": res.Ref.String(), "digest": res.Descriptor.Digest.String(), "size": res.Descriptor.Size,
			"uploaded": res.Uploaded, "skipped": res.Skipped, "bytes": res.Bytes, "seconds": took.Seconds(),
		})
	}
	fmt.Fprintf(g.stderr, "pushed %s (%s), skipped %d the registry had, in %s\n",
		plural(res.Uploaded, "blob"), bytesHuman(res.Bytes), res.Skipped, took.Round(time.Millisecond))
	fmt.Fprintln(g.stdout, res.Ref)
	return nil
}

// plural writes "1 blob", "2 blobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
