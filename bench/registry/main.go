// Command registry measures Airlock's embedded registry (`airlock registry
// serve`) against distribution v3 and Debian's docker-registry, in the same
// run, on the same machine:
//
//   - monolithic upload of one large blob: POST, then PUT ?digest= with the
//     whole blob as the body (what oras and regctl send for a known digest);
//   - download of that blob: GET, discarded by the client;
//   - chunked upload of another blob of the same size: POST, PATCH chunks
//     with Content-Range (1 MiB by default, as regctl sends), PUT ?digest=;
//   - `airlock push` of a release of 20 files (four weight shards of 1/8 of
//     -size each, and sixteen small files), the real client, unchanged
//     between registries.
//
// The uploads and the download use a plain net/http client that knows the
// digests in advance and sends files with sendfile, so the client costs
// almost nothing and the registry is what is timed. Every registry runs as
// its own process, started fresh for each run with empty filesystem
// storage; for each step the report gives its wall time, the registry's
// CPU time and its peak resident memory (VmHWM, reset before each step).
//
// Usage (from the repository root):
//
//	go run ./bench/registry                       # 2 GiB, 3 runs
//	go run ./bench/registry -size 256MiB -runs 1  # quick check
//
// Results go to stdout and, as markdown, to bench/results/registry.md.
// distribution v3 is found as "distribution-v3" by registry/regtest
// (.tools/bin, installed by `.ci/install-tools.sh bench`), docker-registry
// likewise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

type config struct {
	size       int64
	chunk      int64
	runs       int
	out        string
	keep       bool
	timeout    time.Duration
	registries []string
}

// allRegistries are the registries -registries may name, in report order.
var allRegistries = []string{"airlock", "distribution-v3", "docker-registry"}

func main() { os.Exit(run()) }

func run() int {
	cfg := config{size: 2 << 30, chunk: 1 << 20, registries: allRegistries}
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/registry [flags]\n\n"+
			"Times monolithic and chunked blob uploads, a blob download and a 20-file\n"+
			"release push against airlock registry serve, distribution v3 and Debian's\n"+
			"docker-registry, and reports throughput ratios, CPU time and peak RSS.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	sizeFlag := func(dst *int64) func(string) error {
		return func(s string) error {
			n, err := benchkit.ParseSize(s)
			if err == nil {
				*dst = n
			}
			return err
		}
	}
	fs.Func("size", "size of each large blob, e.g. 2GiB, 256MiB (default 2GiB)", sizeFlag(&cfg.size))
	fs.Func("chunk", "PATCH size of the chunked upload (default 1MiB)", sizeFlag(&cfg.chunk))
	fs.IntVar(&cfg.runs, "runs", 3, "number of runs; the report gives medians over runs")
	fs.StringVar(&cfg.out, "out", "bench/results/registry.md", "markdown results file, relative to the repository root unless absolute (empty: none)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (blobs, registry storage, logs)")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "limit for each step")
	fs.Func("registries", "comma-separated subset of "+strings.Join(allRegistries, ","), func(s string) error {
		cfg.registries = nil
		for _, r := range strings.Split(s, ",") {
			r = strings.TrimSpace(r)
			if !slices.Contains(allRegistries, r) {
				return fmt.Errorf("unknown registry %q (want %s)", r, strings.Join(allRegistries, ", "))
			}
			cfg.registries = append(cfg.registries, r)
		}
		return nil
	})
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 64
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "registry: unexpected arguments %q\n", fs.Args())
		return 64
	}
	if cfg.runs < 1 || cfg.size < 8<<20 || cfg.chunk < 1<<10 || cfg.chunk > cfg.size {
		fmt.Fprintln(os.Stderr, "registry: want -runs ≥ 1, -size ≥ 8MiB and 1KiB ≤ -chunk ≤ -size")
		return 64
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, cfg); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "registry: interrupted; registries stopped and temporary files removed")
			return 1
		}
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		return 1
	}
	return 0
}
