package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/registry/regtest"
)

// The steps timed in every run, in report order.
const (
	opSHA     = "sha256 (Go, in-process)"
	opPush    = "airlock push"
	opPut     = "regctl artifact put"
	opPull    = "airlock pull"
	opGet     = "regctl artifact get"
	modelType = "application/vnd.cncf.model.manifest.v1+json"
)

var ops = []string{opSHA, opRawPut, opRawMono, opPush, opPut, opRawGet, opPull, opGet}

// weightsPath is the big file inside the release directory.
const weightsPath = "model/weights.safetensors"

// smallFiles are the rest of the release, checked byte for byte after a pull.
var smallFiles = map[string]string{
	"airlock.yaml": `apiVersion: airlock.dev/v1
kind: Release
metadata:
  name: bench
  version: 1.0.0
model:
  path: model
prompts:
  - name: system
    path: system.md
`,
	"model/config.json":    `{"architectures":["BenchForCausalLM"],"hidden_size":4096,"num_hidden_layers":32}` + "\n",
	"model/tokenizer.json": `{"version":"1.0","model":{"type":"BPE","vocab":{}}}` + "\n",
	"system.md":            "You are a benchmark. Answer nothing.\n",
}

// registryKind is one registry the steps run against.
type registryKind struct {
	name  string // short name for tables
	about string // one line for the report
	start func(ctx context.Context, b *runner, dir string) (server, error)
}

// server is a running registry.
type server interface {
	Host() string
	Stop() error
	Logs() string
}

// procServer is a registry run by registry/regtest; it reads the
// process's peak resident memory just before stopping it.
type procServer struct {
	*regtest.Proc
	peak int64
}

func (d *procServer) Host() string { return d.Proc.Host }

func (d *procServer) Stop() error {
	if d.peak == 0 {
		d.peak = benchkit.PeakRSS(d.PID)
	}
	return d.Proc.Stop()
}

// PeakRSS is known after Stop.
func (d *procServer) PeakRSS() int64 { return d.peak }

// runner holds what every run shares.
type runner struct {
	cfg       config
	root      string // repository root
	tmp       string
	airlock   string // built binary
	regctl    string
	dist      string // docker-registry binary
	release   string // release directory
	weights   string // its weights file
	digest    string // sha256 hex of the weights file
	regHome   string // HOME for regctl
	dockerCfg string // DOCKER_CONFIG for airlock: empty, so no credentials are read
	kinds     []registryKind
	results   map[string]map[string][]time.Duration // registry -> op -> per run
	peakRSS   map[string]int64                      // registry -> highest peak resident memory, when known
	facts     facts
}

func bench(ctx context.Context, cfg config) (err error) {
	b := &runner{cfg: cfg, results: map[string]map[string][]time.Duration{}, peakRSS: map[string]int64{}}
	if b.root, err = regtest.RepoRoot(); err != nil {
		return err
	}
	if b.regctl, err = regtest.FindTool("regctl"); err != nil {
		return err
	}
	if b.dist, err = regtest.FindTool("docker-registry"); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "airlock-bench-"); err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(os.Stderr, "kept %s\n", b.tmp)
			return
		}
		if rerr := os.RemoveAll(b.tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := checkRoom(b.tmp, cfg.size); err != nil {
		return err
	}
	b.kinds = []registryKind{
		{
			name:  "docker-registry",
			about: "Debian's docker-registry (CNCF distribution), filesystem storage in the temp dir, started fresh for each run by registry/regtest.RunDistribution",
			start: func(ctx context.Context, b *runner, dir string) (server, error) {
				p, err := regtest.RunDistribution(ctx, regtest.DistributionConfig{Dir: dir, Binary: b.dist})
				if err != nil {
					return nil, err
				}
				return &procServer{Proc: p}, nil
			},
		},
		{
			name:  "airlock",
			about: "Airlock's own registry, `airlock registry serve` (the binary under test) with filesystem blobs and bbolt metadata in the temp dir, as a separate process, fresh for each run",
			start: func(ctx context.Context, b *runner, dir string) (server, error) {
				p, err := regtest.RunAirlock(ctx, regtest.AirlockConfig{Binary: b.airlock, Dir: dir})
				if err != nil {
					return nil, err
				}
				return &procServer{Proc: p}, nil
			},
		},
		{
			name:  "ggcr",
			about: "go-containerregistry's pkg/registry, in memory, served over loopback HTTP by a separate process (this program with -serve-ggcr), fresh for each run",
			start: func(ctx context.Context, b *runner, dir string) (server, error) {
				return startGGCR(ctx, dir)
			},
		},
	}

	benchkit.Logf("building airlock")
	b.airlock = filepath.Join(b.tmp, "airlock")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.airlock, "./cmd/airlock")
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/airlock: %w\n%s", err, out)
	}
	b.regHome = filepath.Join(b.tmp, "home")
	b.dockerCfg = filepath.Join(b.tmp, "docker")
	for _, d := range []string{b.regHome, b.dockerCfg} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := b.makeRelease(); err != nil {
		return err
	}
	b.facts = gatherFacts(ctx, b)

	for run := 1; run <= cfg.runs; run++ {
		for _, k := range b.kinds {
			if err := b.runOne(ctx, k, run); err != nil {
				return fmt.Errorf("run %d, %s: %w", run, k.name, err)
			}
		}
	}

	report := b.report()
	fmt.Print(report)
	return benchkit.WriteReport(b.root, cfg.out, report)
}

// makeRelease writes the release directory: a random weights file of the
// requested size (hashed as it is written) and a few small files.
func (b *runner) makeRelease() error {
	b.release = filepath.Join(b.tmp, "release")
	b.weights = filepath.Join(b.release, filepath.FromSlash(weightsPath))
	benchkit.Logf("writing %s of random weights", benchkit.Human(b.cfg.size))
	if err := os.MkdirAll(filepath.Dir(b.weights), 0o755); err != nil {
		return err
	}
	for name, content := range smallFiles {
		if err := os.WriteFile(filepath.Join(b.release, filepath.FromSlash(name)), []byte(content), 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(b.weights)
	if err != nil {
		return err
	}
	defer f.Close()
	var seed [32]byte
	copy(seed[:], fmt.Sprint(time.Now().UnixNano()))
	rng := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for left := b.cfg.size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = rng.Read(buf[:n]) // never fails
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		return err
	}
	b.digest = hex.EncodeToString(h.Sum(nil))
	return nil
}

// runOne runs every step once against a fresh registry of kind k.
func (b *runner) runOne(ctx context.Context, k registryKind, run int) (err error) {
	dir := filepath.Join(b.tmp, fmt.Sprintf("run%d-%s", run, k.name))
	benchkit.Logf("run %d/%d: %s: starting", run, b.cfg.runs, k.name)
	srv, err := k.start(ctx, b, filepath.Join(dir, "registry"))
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.Stop(); serr != nil && err == nil {
			err = serr
		}
		if p, ok := srv.(interface{ PeakRSS() int64 }); ok && p.PeakRSS() > 0 {
			benchkit.Logf("run %d/%d: %s: peak resident memory %s", run, b.cfg.runs, k.name, benchkit.Human(p.PeakRSS()))
			b.peakRSS[k.name] = max(b.peakRSS[k.name], p.PeakRSS())
		}
		if err != nil && ctx.Err() == nil {
			if logs := srv.Logs(); logs != "" {
				err = fmt.Errorf("%w\nregistry log (tail):\n%s", err, benchkit.Tail(logs, 40))
			}
		}
		if !b.cfg.keep {
			os.RemoveAll(dir)
		}
	}()
	host := srv.Host()
	if _, err := b.cmd(ctx, b.regctlEnv(), b.regctl, "registry", "set", "--tls", "disabled", host); err != nil {
		return err
	}
	res := b.results[k.name]
	if res == nil {
		res = map[string][]time.Duration{}
		b.results[k.name] = res
	}
	record := func(op string, d time.Duration) {
		res[op] = append(res[op], d)
		benchkit.Logf("run %d/%d: %s: %-24s %7.2fs  %7.0f MiB/s", run, b.cfg.runs, k.name, op, d.Seconds(), benchkit.MiBps(b.cfg.size, d))
	}

	// One untimed upload first: the in-memory registry's first multi-GiB
	// upload also grows its heap, which in a VM means faulting in fresh
	// pages, and whichever step came first would pay for it.
	benchkit.Settle()
	if _, err := b.rawUpload(ctx, host); err != nil {
		return fmt.Errorf("warm-up upload: %w", err)
	}
	if err := b.rawDelete(ctx, host); err != nil {
		return fmt.Errorf("warm-up delete: %w", err)
	}

	benchkit.Settle()
	d, err := b.timeSHA()
	if err != nil {
		return err
	}
	record(opSHA, d)

	airRef := host + "/bench/airlock:v1"
	regRef := host + "/bench/regctl:v1"
	push := func() error {
		cache := filepath.Join(dir, fmt.Sprintf("cache-%d", time.Now().UnixNano()))
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return err
		}
		benchkit.Settle()
		d, out, err := b.timed(ctx, b.airlockEnv(cache), b.airlock, "push", b.release, airRef, "--no-progress", "--json")
		if err != nil {
			return err
		}
		var pr struct {
			Uploaded int   `json:"uploaded"`
			Bytes    int64 `json:"bytes"`
		}
		if err := json.Unmarshal(out, &pr); err != nil {
			return fmt.Errorf("airlock push --json: %w: %s", err, out)
		}
		if pr.Bytes < b.cfg.size {
			return fmt.Errorf("airlock push sent %d bytes in %d blobs, fewer than the weights file's %d: it skipped the upload, so its time means nothing", pr.Bytes, pr.Uploaded, b.cfg.size)
		}
		record(opPush, d)
		return nil
	}
	put := func() error {
		benchkit.Settle()
		d, _, err := b.timed(ctx, b.regctlEnv(), b.regctl, "artifact", "put",
			"--artifact-type", modelType, "--file", b.weights, "--file-title", "--strip-dirs", regRef)
		if err != nil {
			return err
		}
		record(opPut, d)
		return nil
	}
	pull := func() error {
		out := filepath.Join(dir, "pulled-airlock")
		os.RemoveAll(out)
		defer os.RemoveAll(out)
		benchkit.Settle()
		d, _, err := b.timed(ctx, b.airlockEnv(filepath.Join(dir, "cache-pull")), b.airlock, "pull", airRef, "-o", out, "--no-cache", "--no-progress")
		if err != nil {
			return err
		}
		if err := b.verify(filepath.Join(out, filepath.FromSlash(weightsPath))); err != nil {
			return fmt.Errorf("airlock pull: %w", err)
		}
		for name, content := range smallFiles {
			if name == "airlock.yaml" {
				continue // rewritten from the manifest, not copied
			}
			got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(name)))
			if err != nil {
				return fmt.Errorf("airlock pull: %w", err)
			}
			if string(got) != content {
				return fmt.Errorf("airlock pull: %s differs from the source", name)
			}
		}
		record(opPull, d)
		return nil
	}
	get := func() error {
		out := filepath.Join(dir, "pulled-regctl")
		os.RemoveAll(out)
		defer os.RemoveAll(out)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		benchkit.Settle()
		d, _, err := b.timed(ctx, b.regctlEnv(), b.regctl, "artifact", "get", regRef, "--output", out)
		if err != nil {
			return err
		}
		if err := b.verify(filepath.Join(out, filepath.Base(b.weights))); err != nil {
			return fmt.Errorf("regctl artifact get: %w", err)
		}
		record(opGet, d)
		return nil
	}
	rawPut := func() error {
		benchkit.Settle()
		d, err := b.rawUpload(ctx, host)
		if err != nil {
			return fmt.Errorf("raw upload: %w", err)
		}
		record(opRawPut, d)
		return nil
	}
	rawMono := func() error {
		benchkit.Settle()
		d, err := b.rawUploadMono(ctx, host)
		if err != nil {
			return fmt.Errorf("raw upload: %w", err)
		}
		record(opRawMono, d)
		return nil
	}
	rawGet := func() error {
		benchkit.Settle()
		d, err := b.rawDownload(ctx, host)
		if err != nil {
			return fmt.Errorf("raw download: %w", err)
		}
		record(opRawGet, d)
		return b.rawDelete(ctx, host)
	}
	// Alternate which tool goes first, so neither always meets a registry
	// that has just taken in or handed out the whole file.
	// The floors go first and their blob is deleted before the tools
	// push, so the in-memory registry never holds more than two copies.
	steps := []func() error{rawPut, rawMono, rawGet, push, put, pull, get}
	if run%2 == 0 {
		steps = []func() error{rawMono, rawPut, rawGet, put, push, get, pull}
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// timeSHA hashes the weights file in-process with a 1 MiB buffer.
func (b *runner) timeSHA() (time.Duration, error) {
	start := time.Now()
	sum, err := hashFile(b.weights)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if sum != b.digest {
		return 0, fmt.Errorf("sha256 of %s changed: %s, wrote %s", b.weights, sum, b.digest)
	}
	return d, nil
}

func hashFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verify checks a pulled weights file against the source, untimed.
func (b *runner) verify(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("pulled weights: %w", err)
	}
	if fi.Size() != b.cfg.size {
		return fmt.Errorf("pulled weights %s: %d bytes, want %d", name, fi.Size(), b.cfg.size)
	}
	sum, err := hashFile(name)
	if err != nil {
		return err
	}
	if sum != b.digest {
		return fmt.Errorf("pulled weights %s: sha256 %s, want %s", name, sum, b.digest)
	}
	return nil
}

// timed runs a command and returns its wall-clock time from process start
// to exit, and its stdout.
func (b *runner) timed(ctx context.Context, env []string, name string, args ...string) (time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = b.tmp
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v", b.cfg.timeout)
		}
		return d, stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return d, stdout.Bytes(), nil
}

// cmd runs an untimed command.
func (b *runner) cmd(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	_, out, err := b.timed(ctx, env, name, args...)
	return out, err
}

// baseEnv is the environment without variables that would change what
// the tools do (credentials, caches, config overrides).
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "DOCKER_CONFIG", k == "AIRLOCK_CACHE_DIR", k == "XDG_CACHE_HOME",
			strings.HasPrefix(k, "REGCTL_"), strings.HasPrefix(k, "REGISTRY_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (b *runner) regctlEnv() []string {
	return append(baseEnv(), "HOME="+b.regHome)
}

func (b *runner) airlockEnv(cache string) []string {
	return append(baseEnv(), "HOME="+b.regHome, "DOCKER_CONFIG="+b.dockerCfg, "AIRLOCK_CACHE_DIR="+cache)
}

// checkRoom fails early unless dir's file system has room for the source
// file, one registry's copy (two while an upload is being committed) and
// one pulled copy, with a margin.
func checkRoom(dir string, size int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if need := 5*size + 1<<30; free < need {
		return fmt.Errorf("%s has %s free; a %s benchmark needs about %s", dir, benchkit.Human(free), benchkit.Human(size), benchkit.Human(need))
	}
	if avail := benchkit.MemAvailable(); avail > 0 && avail < 4*size {
		benchkit.Logf("warning: %s of memory available; the in-memory registry holds about 3× %s at its peak", benchkit.Human(avail), benchkit.Human(size))
	}
	return nil
}
