package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is set at build time with
// -ldflags "-X github.com/airlock-dev/airlock/cmd/airlock/cli.buildVersion=v1.2.3".
var buildVersion string

// version is the build's version: the linker's, else the module's, else "dev".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print airlock's version",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.stdout, version())
			return nil
		},
	}
}
