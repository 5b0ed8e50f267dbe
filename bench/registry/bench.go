package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/registry/regtest"
)

// The timed steps, in the order each run performs them.
const (
	opPut     = "monolithic PUT"
	opGetCold = "GET, cold"
	opGetWarm = "GET, warm"
	opChunked = "chunked PATCH"
	opRelease = "release push (20 files)"
	opSHA     = "Go sha256 (in-process)"
)

var ops = []string{opPut, opGetCold, opGetWarm, opChunked, opRelease}

// sample is one step of one run against one registry.
type sample struct {
	wall time.Duration
	cpu  time.Duration // the registry process's user+system time
	rss  int64         // the registry's peak RSS during the step
}

type runner struct {
	cfg     config
	root    string // repository root
	tmp     string
	airlock string // built binary
	bins    map[string]string
	blobA   blob // monolithic PUT and GET
	blobB   blob // chunked upload
	release string
	relSize int64
	results map[string]map[string][]sample // registry -> op -> per run
	sha     []time.Duration
	facts   facts
}

// blob is a file of random bytes with its digest.
type blob struct {
	path   string
	digest string // "sha256:<hex>"
	size   int64
}

func bench(ctx context.Context, cfg config) (err error) {
	b := &runner{cfg: cfg, bins: map[string]string{}, results: map[string]map[string][]sample{}}
	if b.root, err = regtest.RepoRoot(); err != nil {
		return err
	}
	for _, r := range cfg.registries {
		if r == "airlock" {
			continue
		}
		if b.bins[r], err = regtest.FindTool(r); err != nil {
			return fmt.Errorf("%w (run `bash .ci/install-tools.sh bench`)", err)
		}
	}
	if b.tmp, err = os.MkdirTemp("", "airlock-registry-bench-"); err != nil {
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
	// Two source blobs, the release (half of -size), one registry's copies
	// of all of them, and a margin.
	if free, err := benchkit.FreeDisk(b.tmp); err == nil && free < 6*cfg.size+1<<30 {
		return fmt.Errorf("%s has %s free; a %s benchmark needs about %s", b.tmp, benchkit.Human(free),
			benchkit.Human(cfg.size), benchkit.Human(6*cfg.size+1<<30))
	}

	benchkit.Logf("building airlock")
	b.airlock = filepath.Join(b.tmp, "airlock")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.airlock, "./cmd/airlock")
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/airlock: %w\n%s", err, out)
	}
	benchkit.Logf("writing two %s blobs and a 20-file release of random bytes", benchkit.Human(cfg.size))
	if b.blobA, err = writeRandom(filepath.Join(b.tmp, "blob-a"), cfg.size); err != nil {
		return err
	}
	if b.blobB, err = writeRandom(filepath.Join(b.tmp, "blob-b"), cfg.size); err != nil {
		return err
	}
	if err := b.makeRelease(); err != nil {
		return err
	}
	b.facts = gatherFacts(ctx, b)

	for run := 1; run <= cfg.runs; run++ {
		d, err := timeSHA(b.blobA.path)
		if err != nil {
			return err
		}
		b.sha = append(b.sha, d)
		for _, r := range cfg.registries {
			if err := b.runOne(ctx, r, run); err != nil {
				return fmt.Errorf("run %d, %s: %w", run, r, err)
			}
		}
	}

	report := b.report()
	fmt.Print(report)
	return benchkit.WriteReport(b.root, cfg.out, report)
}

// start runs a fresh registry of kind name with its storage under dir.
func (b *runner) start(ctx context.Context, name, dir string) (*regtest.Proc, error) {
	if name == "airlock" {
		return regtest.RunAirlock(ctx, regtest.AirlockConfig{Binary: b.airlock, Dir: dir})
	}
	// distribution v3 reads the same configuration as 2.8; access logs stay
	// on at level warn for both, as Airlock's access log is on.
	return regtest.RunDistribution(ctx, regtest.DistributionConfig{Dir: dir, Binary: b.bins[name]})
}

// runOne starts the registry, runs every step against it and stops it.
func (b *runner) runOne(ctx context.Context, name string, run int) (err error) {
	dir := filepath.Join(b.tmp, fmt.Sprintf("%s-%d", name, run))
	p, err := b.start(ctx, name, dir)
	if err != nil {
		return err
	}
	defer func() {
		if serr := p.Stop(); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			err = fmt.Errorf("%w\nregistry log (last lines):\n%s", err, benchkit.Tail(p.Logs(), 20))
		}
		// The storage of a finished run is only needed with -keep.
		if !b.cfg.keep {
			_ = os.RemoveAll(dir)
		}
	}()
	steps := []struct {
		op string
		fn func(context.Context, string) error
	}{
		{opPut, func(ctx context.Context, host string) error { return b.upload(ctx, host, b.blobA, 0) }},
		{opGetCold, func(ctx context.Context, host string) error { return b.get(ctx, host, b.blobA) }},
		{opGetWarm, func(ctx context.Context, host string) error { return b.get(ctx, host, b.blobA) }},
		{opChunked, func(ctx context.Context, host string) error { return b.upload(ctx, host, b.blobB, b.cfg.chunk) }},
		{opRelease, b.pushRelease},
	}
	for _, s := range steps {
		benchkit.Settle()
		if s.op == opGetCold {
			// Registries differ in what they leave in the page cache after
			// an upload; a cold GET reads from disk for all of them.
			if err := benchkit.Evict(p.Root); err != nil {
				return fmt.Errorf("evicting %s from the page cache: %w", p.Root, err)
			}
		}
		if err := benchkit.ResetPeakRSS(p.PID); err != nil {
			return fmt.Errorf("resetting peak RSS (needs Linux 4.0+ and permission on /proc/PID/clear_refs): %w", err)
		}
		cpu0 := benchkit.CPUTime(p.PID)
		sctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
		start := time.Now()
		err := s.fn(sctx, p.Host)
		wall := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", s.op, err)
		}
		smp := sample{wall: wall, cpu: benchkit.CPUTime(p.PID) - cpu0, rss: benchkit.PeakRSS(p.PID)}
		if b.results[name] == nil {
			b.results[name] = map[string][]sample{}
		}
		b.results[name][s.op] = append(b.results[name][s.op], smp)
		benchkit.Logf("run %d/%d %-16s %-24s %7.2fs  cpu %5.2fs  peak RSS %s", run, b.cfg.runs, name, s.op,
			wall.Seconds(), smp.cpu.Seconds(), benchkit.Human(smp.rss))
	}
	// The downloaded blob was not hashed by the client; check the stored
	// one once, outside the timings, so that a registry that stored wrong
	// bytes cannot post a fast time.
	return b.verifyStored(ctx, p.Host, b.blobB)
}

const repo = "bench/blobs"

// upload sends a blob the way the steps time it: POST, then with chunk 0
// one PUT ?digest= carrying the whole file (monolithic), else PATCHes of
// chunk bytes with Content-Range and an empty PUT ?digest=.
func (b *runner) upload(ctx context.Context, host string, bl blob, chunk int64) error {
	c := benchkit.RawClient()
	defer c.CloseIdleConnections()
	f, err := os.Open(bl.path)
	if err != nil {
		return err
	}
	defer f.Close()
	loc, err := benchkit.RawDo(ctx, c, http.MethodPost, uploadsURL(host), nil, 0, nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	octets := http.Header{"Content-Type": {"application/octet-stream"}}
	if chunk == 0 {
		_, err = benchkit.RawDo(ctx, c, http.MethodPut, withDigest(loc, bl.digest), f, bl.size, octets, http.StatusCreated)
		return err
	}
	for off := int64(0); off < bl.size; off += chunk {
		n := min(chunk, bl.size-off)
		hdr := http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", off, off+n-1)},
		}
		// A SectionReader is not an *os.File, so net/http copies it: the
		// client pays one copy per byte here, the same for every registry.
		if loc, err = benchkit.RawDo(ctx, c, http.MethodPatch, loc, io.NewSectionReader(f, off, n), n, hdr, http.StatusAccepted, http.StatusNoContent); err != nil {
			return fmt.Errorf("chunk at %d: %w", off, err)
		}
	}
	_, err = benchkit.RawDo(ctx, c, http.MethodPut, withDigest(loc, bl.digest), nil, 0, nil, http.StatusCreated)
	return err
}

// get downloads the blob and discards it, checking only the length.
func (b *runner) get(ctx context.Context, host string, bl blob) error {
	_, n, err := fetch(ctx, host, bl, false)
	if err != nil {
		return err
	}
	if n != bl.size {
		return fmt.Errorf("GET: %d bytes, want %d", n, bl.size)
	}
	return nil
}

// verifyStored downloads the blob and checks its digest.
func (b *runner) verifyStored(ctx context.Context, host string, bl blob) error {
	got, _, err := fetch(ctx, host, bl, true)
	if err != nil {
		return err
	}
	if got != bl.digest {
		return fmt.Errorf("the registry serves %s as %s", bl.digest, got)
	}
	return nil
}

func fetch(ctx context.Context, host string, bl blob, hash bool) (string, int64, error) {
	c := benchkit.RawClient()
	defer c.CloseIdleConnections()
	u := "http://" + host + "/v2/" + repo + "/blobs/" + bl.digest
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	h := sha256.New()
	w := io.Discard
	if hash {
		w = h
	}
	n, err := io.CopyBuffer(w, resp.Body, make([]byte, 1<<20))
	if err != nil {
		return "", n, fmt.Errorf("GET %s: %w", u, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// pushRelease runs `airlock push` with an empty digest cache, so every run
// hashes and uploads everything.
func (b *runner) pushRelease(ctx context.Context, host string) error {
	cache, err := os.MkdirTemp(b.tmp, "cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	cmd := exec.CommandContext(ctx, b.airlock, "push", "--plain-http", "--no-progress", b.release, host+"/bench/release:v1")
	cmd.Env = append(os.Environ(), "AIRLOCK_CACHE_DIR="+cache, "DOCKER_CONFIG="+filepath.Join(b.tmp, "docker"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("airlock push: %w\n%s", err, out)
	}
	return nil
}

func uploadsURL(host string) *url.URL {
	return &url.URL{Scheme: "http", Host: host, Path: "/v2/" + repo + "/blobs/uploads/"}
}

func withDigest(loc *url.URL, d string) *url.URL {
	u := *loc
	q := u.Query()
	q.Set("digest", d)
	u.RawQuery = q.Encode()
	return &u
}

// writeRandom writes size random bytes to path and returns its digest.
func writeRandom(path string, size int64) (blob, error) {
	f, err := os.Create(path)
	if err != nil {
		return blob{}, err
	}
	defer f.Close()
	var seed [32]byte
	copy(seed[:], path+fmt.Sprint(time.Now().UnixNano()))
	rng := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		_, _ = rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return blob{}, err
		}
		h.Write(buf[:n])
		left -= n
	}
	if err := f.Close(); err != nil {
		return blob{}, err
	}
	return blob{path: path, digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), size: size}, nil
}

// makeRelease writes a release of 20 files: airlock.yaml, four weight
// shards of -size/8 each, and fifteen small files (configs, tokenizer,
// prompts, safety settings, evals, docs) of 200 B to 4 MiB.
func (b *runner) makeRelease() error {
	b.release = filepath.Join(b.tmp, "release")
	shard := b.cfg.size / 8
	small := map[string]int64{
		"model/config.json": 700, "model/generation_config.json": 200,
		"tokenizer/tokenizer.json": 4 << 20, "tokenizer/tokenizer_config.json": 2 << 10,
		"tokenizer/special_tokens_map.json": 500, "tokenizer/vocab.txt": 1 << 20,
		"prompts/system.md": 3 << 10, "prompts/refund.md": 2 << 10, "prompts/escalate.md": 2 << 10,
		"prompts/summary.md": 1 << 10, "safety.yaml": 1 << 10,
		"evals/golden.jsonl": 300 << 10, "evals/adversarial.jsonl": 120 << 10,
		"README.md": 6 << 10, "LICENSE": 11 << 10,
	}
	files := map[string]int64{}
	for k, v := range small {
		files[k] = v
	}
	for i := 1; i <= 4; i++ {
		files[fmt.Sprintf("model/model-%05d-of-00004.safetensors", i)] = shard
	}
	for name, size := range files {
		p := filepath.Join(b.release, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if _, err := writeRandom(p, size); err != nil {
			return err
		}
		b.relSize += size
	}
	manifest := `apiVersion: airlock.dev/v1
kind: Release
metadata:
  name: bench-release
  version: 1.0.0
  license: Apache-2.0
model:
  path: model/
  format: safetensors
  architecture: llama
  paramSize: 1B
  precision: bf16
tokenizer:
  path: tokenizer/
prompts:
  - {name: system, path: prompts/system.md}
  - {name: refund, path: prompts/refund.md}
  - {name: escalate, path: prompts/escalate.md}
  - {name: summary, path: prompts/summary.md}
safety:
  path: safety.yaml
evals:
  - {name: golden, path: evals/golden.jsonl}
  - {name: adversarial, path: evals/adversarial.jsonl}
docs:
  - path: README.md
  - path: LICENSE
`
	if err := os.WriteFile(filepath.Join(b.release, "airlock.yaml"), []byte(manifest), 0o644); err != nil {
		return err
	}
	b.relSize += int64(len(manifest))
	if len(files)+1 != 20 {
		return fmt.Errorf("the release has %d files, not 20", len(files)+1)
	}
	return os.MkdirAll(filepath.Join(b.tmp, "docker"), 0o755)
}

// timeSHA is Go's crypto/sha256 over the file, read from the page cache:
// the hashing floor for an ingest that verifies what it stores.
func timeSHA(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	if _, err := io.CopyBuffer(sha256.New(), f, make([]byte, 1<<20)); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
