// Command transfer measures how fast airlock pushes and pulls a large model
// release, as ratios against peers measured in the same run:
//
//   - Go's crypto/sha256 over the weights file, in-process: the floor for a
//     push, which must hash every byte once;
//   - regctl artifact put / regctl artifact get of the same weights file to
//     the same registry;
//   - the registry's floors: in-process uploads and a download by a client
//     that neither hashes nor copies, which bound any client from below.
//
// Each run starts two registries in turn, both plain HTTP on loopback:
// Debian's docker-registry (CNCF distribution 2.8.2, filesystem storage) and
// go-containerregistry's pkg/registry (in memory), served by a separate
// process (this program re-executed with -serve-ggcr) so that client and
// server each get a core. Every timed step is a whole command, process start
// to exit, and every pull is verified against the source digest outside the
// timed region, so a broken run cannot report a fast time.
//
// Usage (from the repository root):
//
//	go run ./bench/transfer                      # 2 GiB, 3 runs
//	go run ./bench/transfer -size 256MiB -runs 1 # quick check
//
// Results go to stdout and, as markdown, to bench/results/transfer.md.
// External programs (regctl, docker-registry) are found by registry/regtest;
// .ci/install-tools.sh installs them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// serveFlag is the hidden first argument that turns this program into the
// go-containerregistry server; it is not a registered flag, so -h does not
// list it.
const serveFlag = "-serve-ggcr"

func main() {
	if len(os.Args) == 3 && os.Args[1] == serveFlag {
		if err := serveGGCR(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "serve-ggcr: %v\n", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run())
}

// config is the command line.
type config struct {
	size    int64
	runs    int
	out     string
	keep    bool
	timeout time.Duration
}

func run() int {
	cfg := config{size: 2 << 30}
	fs := flag.NewFlagSet("transfer", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/transfer [flags]\n\n"+
			"Times airlock push/pull against regctl artifact put/get and Go's sha256\n"+
			"on one large weights file, against docker-registry and go-containerregistry.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Func("size", "size of the weights file, e.g. 2GiB, 256MiB, 1000000 (default 2GiB)", func(s string) error {
		n, err := benchkit.ParseSize(s)
		if err != nil {
			return err
		}
		cfg.size = n
		return nil
	})
	fs.IntVar(&cfg.runs, "runs", 3, "number of runs; medians and minimums are over runs")
	fs.StringVar(&cfg.out, "out", "bench/results/transfer.md", "markdown results file, relative to the repository root unless absolute (empty: none)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (release, registry storage, logs) for debugging")
	fs.DurationVar(&cfg.timeout, "timeout", 15*time.Minute, "limit for each command run")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 64
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "transfer: unexpected arguments %q\n", fs.Args())
		return 64
	}
	if cfg.runs < 1 || cfg.size < 1<<20 {
		fmt.Fprintln(os.Stderr, "transfer: -runs must be at least 1 and -size at least 1MiB")
		return 64
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, cfg); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "transfer: interrupted; registries stopped and temporary files removed")
			return 1
		}
		fmt.Fprintf(os.Stderr, "transfer: %v\n", err)
		return 1
	}
	return 0
}
