// Package cli holds airlock's commands, one small file each, and the one
// place where errors become exit codes (DESIGN.md §6).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/airlock-dev/airlock/registry/sign"
	"github.com/spf13/cobra"
)

// Exit codes (DESIGN.md §6). Scripts and the GitHub Action rely on them.
const (
	ExitOK    = 0
	ExitDeny  = 1  // a policy denied (gate, verify)
	ExitError = 2  // an error, bad input, or an indeterminate result
	ExitUsage = 64 // the command line is wrong (sysexits EX_USAGE)
)

// usageError marks a wrong command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// exitErr carries an outcome's exit code: eval's "inferior" (1) or
// "insufficient evidence" (2) are results, not failures to run.
type exitErr struct {
	code int
	err  error
}

func (e exitErr) Error() string { return e.err.Error() }
func (e exitErr) Unwrap() error { return e.err }

// globals are the flags every command shares.
type globals struct {
	plainHTTP   bool
	insecure    bool
	concurrency int
	noProgress  bool
	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer
}

// client builds a registry client from the global flags.
func (g *globals) client() (*client.Client, error) {
	return client.New(client.Options{
		PlainHTTP:   g.plainHTTP,
		Insecure:    g.insecure,
		Concurrency: g.concurrency,
		UserAgent:   "airlock/" + version(),
	})
}

// hashCache is the digest cache, unless disabled.
func hashCache(disabled bool) *pack.HashCache {
	if disabled {
		return nil
	}
	d := cacheDir()
	if d == "" {
		return nil
	}
	return &pack.HashCache{Dir: d + "/digests"}
}

// Run executes the command line and returns the exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "airlock",
		Short: "Package, move, sign, gate and promote AI releases as OCI artifacts",
		Long: `Airlock packages an AI release — model weights, tokenizer, prompts, safety
settings and eval suites, described in airlock.yaml — as one reproducible
CNCF ModelPack OCI artifact, and moves it through any OCI registry.

Exit codes: 0 success, 1 policy deny, 2 error or bad input, 64 usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.BoolVar(&g.plainHTTP, "plain-http", false, "speak plain HTTP to the registry (automatic for loopback addresses)")
	pf.BoolVar(&g.insecure, "insecure", false, "skip TLS certificate verification")
	pf.IntVar(&g.concurrency, "concurrency", 4, "blobs transferred at once")
	pf.BoolVar(&g.noProgress, "no-progress", false, "hide progress (it is hidden anyway when stderr is not a terminal)")

	root.AddCommand(
		newPackCmd(g),
		newPushCmd(g),
		newPullCmd(g),
		newInspectCmd(g),
		newRegistryCmd(g),
		newKeyCmd(g),
		newSignCmd(g),
		newVerifyCmd(g),
		newAttestCmd(g),
		newSBOMCmd(g),
		newBenchCmd(g),
		newEvalCmd(g),
		newGateCmd(g),
		newPolicyCmd(g),
		newTagCmd(g),
		newWebhookCmd(g),
		newDemoModelCmd(g),
		newRouterCmd(g),
		newPromoteCmd(g),
		newJudgeCmd(g),
		newVersionCmd(g),
	)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	return report(stderr, err)
}

// report prints an error and picks the exit code.
func report(w io.Writer, err error) int {
	var ve *pack.ValidationError
	var ue usageError
	var xe exitErr
	switch {
	case errors.As(err, &xe):
		fmt.Fprintf(w, "airlock: %v\n", err)
		return xe.code
	case errors.As(err, &ve):
		// Compiler-style lines: file:line:col: field: problem.
		fmt.Fprintln(w, ve.Error())
		return ExitError
	case errors.Is(err, sign.ErrNotVerified):
		fmt.Fprintf(w, "airlock: %v\n", err)
		return ExitDeny
	case errors.As(err, &ue), isCobraUsage(err):
		fmt.Fprintf(w, "airlock: %v\nRun 'airlock --help' for usage.\n", err)
		return ExitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(w, "airlock: interrupted")
		return ExitError
	default:
		fmt.Fprintf(w, "airlock: %v\n", err)
		return ExitError
	}
}

// isCobraUsage recognises cobra's own argument errors, which are not typed.
func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "accepts ") ||
		strings.HasPrefix(s, "requires at least") || strings.HasPrefix(s, "accepts at most") ||
		strings.HasPrefix(s, "unknown flag") || strings.HasPrefix(s, "unknown shorthand flag")
}

// args wraps a cobra argument validator so its errors are usage errors.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// parsePinnedRef parses a reference that must name a tag or a digest.
func parsePinnedRef(s string) (registry.Ref, error) {
	r, err := parseRef(s)
	if err != nil {
		return r, err
	}
	if r.Tag == "" && r.Digest == "" {
		return r, usagef("%s names no tag or digest; add :TAG or @sha256:…", r)
	}
	return r, nil
}

// parseRef parses a command-line reference; a bad one is a usage error.
func parseRef(s string) (registry.Ref, error) {
	r, err := registry.ParseRef(s)
	if err != nil {
		return r, usageError{err}
	}
	return r, nil
}
