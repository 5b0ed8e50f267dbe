package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	gaterego "github.com/airlock-dev/airlock/gate/rego"
	"github.com/airlock-dev/airlock/policies"
)

// Policy bundles are OPA bundles (.tar.gz, as opa build writes them) in
// an OCI artifact, as OPA's own OCI downloader reads them.
var policyBundleTypes = []string{
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.opa.bundle.layer.v1+gzip",
}

const maxPolicyBundle = 64 << 20

func pullPolicyBundle(ctx context.Context, g *globals, spec string) ([]gaterego.Module, error) {
	ref, err := parseRef(spec)
	if err != nil {
		return nil, fmt.Errorf("policy bundle: %w", err)
	}
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	b, desc, err := c.FetchLayer(ctx, ref, policyBundleTypes, maxPolicyBundle)
	if err != nil {
		return nil, fmt.Errorf("policy bundle: %w", err)
	}
	fmt.Fprintf(g.stderr, "policies: bundle %s (%s)\n", ref, desc.Digest)
	return gaterego.LoadBundle(bytes.NewReader(b), ref.Name())
}

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with gate policies: run their tests",
	}
	cmd.AddCommand(newPolicyTestCmd(g))
	return cmd
}

func newPolicyTestCmd(g *globals) *cobra.Command {
	var noBuiltin, asJSON bool
	var minCoverage float64
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test [DIR…]",
		Short: "Run the Rego tests of the built-in policies and of user policies, with coverage",
		Long: `Policy test runs every test_ rule (as opa test does) of the built-in
policies and of the user policies in each DIR (*.rego; tests live in
*_test.rego). User tests can import the built-ins (data.airlock.gate.NAME)
and their helpers (data.airlock.lib.evidence). It prints each failure, the
line coverage of each policy file (not of the tests), and the total.

Exit codes: 0 every test passed (and coverage reached --min-coverage);
1 a test failed or coverage is short; 2 a policy does not parse or compile;
64 usage.`,
		Example: `  airlock policy test
  airlock policy test ./policies --min-coverage 90
  airlock policy test ./policies --no-builtin --json`,
		RunE: func(cmd *cobra.Command, a []string) error {
			var ms []gaterego.Module
			if !noBuiltin {
				b, err := gaterego.LoadFS(policies.FS, true)
				if err != nil {
					return err
				}
				ms = b
			}
			for _, d := range a {
				um, err := gaterego.LoadDir(d)
				if err != nil {
					return err
				}
				ms = append(ms, um...)
			}
			if len(ms) == 0 {
				return usagef("no policies: give a DIR, or leave out --no-builtin")
			}
			rep, err := gaterego.RunTests(cmd.Context(), ms, timeout)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(g.stdout, rep); err != nil {
					return err
				}
			} else {
				for _, r := range rep.Results {
					if r.Pass || r.Skipped {
						continue
					}
					fmt.Fprintf(g.stdout, "FAIL %s.%s (%s)\n", r.Package, r.Name, r.File)
					if r.Error != "" {
						fmt.Fprintf(g.stdout, "     %s\n", r.Error)
					}
					if r.Output != "" {
						fmt.Fprintf(g.stdout, "     %s\n", strings.ReplaceAll(strings.TrimSpace(r.Output), "\n", "\n     "))
					}
				}
				fmt.Fprintln(g.stdout, "coverage:")
				for _, f := range rep.Files {
					if strings.HasSuffix(f.File, "_test.rego") {
						continue
					}
					missed := ""
					if len(f.Missed) > 0 {
						missed = "  not covered: lines " + strings.Join(f.Missed, ", ")
					}
					fmt.Fprintf(g.stdout, "  %-40s %5.1f%%%s\n", f.File, f.Coverage, missed)
				}
				fmt.Fprintf(g.stdout, "%d passed, %d failed; %.1f%% of policy lines covered\n", rep.Passed, rep.Failed, rep.Coverage)
			}
			if rep.Failed > 0 {
				return exitErr{ExitDeny, fmt.Errorf("%d policy tests failed", rep.Failed)}
			}
			if rep.Coverage < minCoverage {
				return exitErr{ExitDeny, fmt.Errorf("coverage %.1f%% is under --min-coverage %.1f%%", rep.Coverage, minCoverage)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noBuiltin, "no-builtin", false, "leave the built-in policies out")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print results and coverage as JSON")
	cmd.Flags().Float64Var(&minCoverage, "min-coverage", 0, "fail (exit 1) when the policies' line coverage is under this percentage")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "longest one test may run")
	return cmd
}
