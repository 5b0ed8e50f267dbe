// Command sign measures that signing a release costs the same whatever
// its size, and how long verifying takes, with the registry local:
//
//   - `airlock sign` of a release with one large weights file (10 GiB by
//     default) against the same for a 10 KiB one, as a ratio: signing signs
//     the manifest digest and reads no layer, so the ratio should be 1;
//   - `airlock verify` of the large release (both signature layouts).
//
// Both releases are pushed to a fresh `airlock registry serve` on loopback
// first (untimed). Every timed step is the whole command, process start to
// exit, as a user or CI step runs it; -runs of each, reported as medians.
//
// Usage (from the repository root):
//
//	go run ./bench/sign                 # 10 GiB against 10 KiB, 20 runs
//	go run ./bench/sign -large 64MiB -runs 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/registry/regtest"
)

const small = 10 << 10

type config struct {
	large int64
	runs  int
	out   string
	keep  bool
}

func main() { os.Exit(run()) }

func run() int {
	cfg := config{large: 10 << 30}
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/sign [flags]\n\n"+
			"Times airlock sign of a large release against a 10 KiB one, and airlock\n"+
			"verify, against a local airlock registry serve.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Func("large", "weights size of the large release, e.g. 10GiB, 64MiB (default 10GiB)", func(s string) error {
		n, err := benchkit.ParseSize(s)
		if err == nil {
			cfg.large = n
		}
		return err
	})
	fs.IntVar(&cfg.runs, "runs", 20, "timed runs of each command; the report gives medians")
	fs.StringVar(&cfg.out, "out", "bench/results/sign.md", "markdown results file, relative to the repository root unless absolute (empty: none)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 64
	}
	if fs.NArg() > 0 || cfg.runs < 1 || cfg.large <= small {
		fmt.Fprintln(os.Stderr, "sign: want no arguments, -runs ≥ 1 and -large over 10KiB")
		return 64
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "sign: %v\n", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, cfg config) (err error) {
	root, err := regtest.RepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "airlock-sign-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "kept %s\n", tmp)
		} else if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if free, err := benchkit.FreeDisk(tmp); err == nil && free < 2*cfg.large+1<<30 {
		return fmt.Errorf("%s has %s free; this needs about %s", tmp, benchkit.Human(free), benchkit.Human(2*cfg.large+1<<30))
	}
	bin := filepath.Join(tmp, "airlock")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/airlock")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	p, err := regtest.RunAirlock(ctx, regtest.AirlockConfig{Binary: bin, Dir: filepath.Join(tmp, "registry")})
	if err != nil {
		return err
	}
	defer func() {
		if serr := p.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	env := append(os.Environ(), "AIRLOCK_PASSWORD=bench", "AIRLOCK_CACHE_DIR="+filepath.Join(tmp, "cache"), "DOCKER_CONFIG="+filepath.Join(tmp, "docker"))
	airlock := func(args ...string) (time.Duration, string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env, cmd.Dir = env, tmp
		var stdout strings.Builder
		cmd.Stdout = &stdout
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return d, "", fmt.Errorf("airlock %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return d, strings.TrimSpace(stdout.String()), nil
	}
	if _, _, err := airlock("key", "generate", "--output-key-prefix", filepath.Join(tmp, "bench")); err != nil {
		return err
	}
	refs := map[string]string{}
	for _, rel := range []struct {
		name string
		size int64
	}{{"small", small}, {"large", cfg.large}} {
		dir := filepath.Join(tmp, rel.name)
		if err := writeRelease(dir, rel.size); err != nil {
			return err
		}
		benchkit.Logf("pushing the %s release (%s)", rel.name, benchkit.Human(rel.size))
		_, out, err := airlock("push", "--no-progress", dir, p.Host+"/bench/"+rel.name+":v1")
		if err != nil {
			return err
		}
		refs[rel.name] = out[strings.LastIndex(out, "\n")+1:]
	}

	// The large push leaves gigabytes to write back; let that finish
	// before timing commands that take milliseconds.
	benchkit.Settle()
	times := map[string][]time.Duration{}
	key, pub := filepath.Join(tmp, "bench.key"), filepath.Join(tmp, "bench.pub")
	for i := 0; i < cfg.runs; i++ {
		// Alternate, so drift in the machine hits both alike.
		for _, name := range []string{"small", "large"} {
			d, _, err := airlock("sign", refs[name], "--key", key)
			if err != nil {
				return err
			}
			times["sign "+name] = append(times["sign "+name], d)
		}
		d, _, err := airlock("verify", refs["large"], "--key", pub)
		if err != nil {
			return err
		}
		times["verify large"] = append(times["verify large"], d)
	}
	report := renderReport(cfg, times)
	fmt.Print(report)
	return benchkit.WriteReport(root, cfg.out, report)
}

// writeRelease writes a release whose weights file has size bytes (a
// sparse file: its content does not matter to signing, and it costs no
// disk until pushed) and a prompt.
func writeRelease(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "weights.safetensors"))
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "system.md"), []byte("You are a benchmark.\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(`apiVersion: airlock.dev/v1
kind: Release
metadata: {name: sign-bench, version: 1.0.0}
model: {path: weights.safetensors, format: safetensors}
prompts: [{name: system, path: system.md}]
`), 0o644)
}

func renderReport(cfg config, times map[string][]time.Duration) string {
	var w strings.Builder
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Fprintf(&w, "# Signing benchmark\n\nCommand: `go run ./bench/sign -large %s -runs %d`. Whole commands, process start to exit, against `airlock registry serve` on loopback; medians of %d runs.\n\n",
		benchkit.SizeFlag(cfg.large), cfg.runs, cfg.runs)
	fmt.Fprintf(&w, "| command | median | min | max |\n|---|---:|---:|---:|\n")
	for _, k := range []string{"sign small", "sign large", "verify large"} {
		ds := times[k]
		lo, hi := ds[0], ds[0]
		for _, d := range ds {
			lo, hi = min(lo, d), max(hi, d)
		}
		label := map[string]string{
			"sign small":   "airlock sign, 10 KiB release",
			"sign large":   "airlock sign, " + benchkit.Human(cfg.large) + " release",
			"verify large": "airlock verify, " + benchkit.Human(cfg.large) + " release, both layouts",
		}[k]
		fmt.Fprintf(&w, "| %s | %.1f ms | %.1f ms | %.1f ms |\n", label, ms(benchkit.Median(ds)), ms(lo), ms(hi))
	}
	ratio := benchkit.Median(times["sign large"]).Seconds() / benchkit.Median(times["sign small"]).Seconds()
	verify := benchkit.Median(times["verify large"])
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(&w, "\n| claim | value | target |\n|---|---:|---|\n")
	fmt.Fprintf(&w, "| sign time, %s ÷ 10 KiB | %.2f× | ≈ 1 (≤ 1.2: %s) |\n", benchkit.Human(cfg.large), ratio, verdict(ratio <= 1.2))
	fmt.Fprintf(&w, "| verify, everything local | %.1f ms | < 50 ms (%s) |\n", ms(verify), verdict(verify < 50*time.Millisecond))
	return w.String()
}
