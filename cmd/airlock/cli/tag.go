package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/registry"
)

func newTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag REF TAG…",
		Short: "Point tags at the release REF resolves to",
		Long: `Tag points each TAG, in REF's repository, at the manifest REF resolves to,
as crane tag does. On a registry whose environment tags are protected
(airlock registry serve with verdicts:), a tag such as prod moves only to
a digest with a valid signed pass verdict for that environment; the
registry's refusal says why.

Exit codes: 0 tagged, 1 refused by the registry's tag guard, 2 error.`,
		Example: `  airlock tag localhost:5000/support-bot@sha256:… prod
  airlock tag localhost:5000/support-bot:1.5.0 staging latest`,
		Args: args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ref, err := parseRef(a[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, tag := range a[1:] {
				out, err := c.Tag(cmd.Context(), ref, tag)
				if err != nil {
					return tagRefused(err)
				}
				fmt.Fprintln(g.stdout, out)
			}
			return nil
		},
	}
}

// tagRefused makes the registry's refusal (DENIED) a deny, exit 1.
func tagRefused(err error) error {
	if errors.Is(err, registry.ErrDenied) {
		return exitErr{ExitDeny, err}
	}
	return err
}
