package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// facts describe the machine and the programs measured.
type facts struct {
	date     time.Time
	cpus     int
	cpuModel string
	memory   string
	kernel   string
	goVer    string
	versions map[string]string // registry -> version, with the Go it was built with
}

func gatherFacts(ctx context.Context, b *runner) facts {
	f := facts{date: time.Now().UTC(), cpus: runtime.NumCPU(), goVer: runtime.Version(), versions: map[string]string{}}
	f.cpuModel = benchkit.ProcField("/proc/cpuinfo", "model name")
	var kb int64
	if _, err := fmt.Sscanf(benchkit.ProcField("/proc/meminfo", "MemTotal"), "%d kB", &kb); err == nil {
		f.memory = benchkit.Human(kb << 10)
	}
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.kernel = "Linux " + strings.TrimSpace(string(k))
	}
	out := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = b.root
		o, err := cmd.Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(o))
	}
	builtWith := func(bin string) string {
		v := out("go", "version", bin)
		if i := strings.LastIndex(v, " "); i >= 0 {
			return ", built with " + v[i+1:]
		}
		return ""
	}
	for name, bin := range b.bins {
		// "PATH github.com/…/distribution[/v3] VERSION": keep the version.
		v := out(bin, "--version")
		if fields := strings.Fields(v); len(fields) > 0 {
			v = fields[len(fields)-1]
		}
		f.versions[name] = v + builtWith(bin)
	}
	f.versions["airlock"] = out("git", "describe", "--always", "--dirty") + builtWith(b.airlock)
	return f
}

// ratio is one claim: time(peer) ÷ time(airlock) for an op, so above 1
// means airlock is faster.
type ratio struct {
	op, peer string
	target   float64 // minimum; 0 means none
}

var ratios = []ratio{
	{opPut, "distribution-v3", 2.5},
	{opGetCold, "distribution-v3", 0},
	{opGetWarm, "distribution-v3", 0},
	{opChunked, "distribution-v3", 0},
	{opRelease, "distribution-v3", 0},
	{opPut, "docker-registry", 0},
	{opGetCold, "docker-registry", 0},
	{opGetWarm, "docker-registry", 0},
	{opChunked, "docker-registry", 0},
	{opRelease, "docker-registry", 0},
}

// rssLimit is the target for airlock's peak RSS while moving a large blob.
const rssLimit = 64 << 20

func (b *runner) opSize(op string) int64 {
	if op == opRelease {
		return b.relSize
	}
	return b.cfg.size
}

func (b *runner) median(name, op string) (wall, cpu time.Duration, rss int64, ok bool) {
	ss := b.results[name][op]
	if len(ss) == 0 {
		return 0, 0, 0, false
	}
	var walls, cpus []time.Duration
	for _, s := range ss {
		walls = append(walls, s.wall)
		cpus = append(cpus, s.cpu)
		rss = max(rss, s.rss)
	}
	return benchkit.Median(walls), benchkit.Median(cpus), rss, true
}

func (b *runner) report() string {
	var w strings.Builder
	f := b.facts
	fmt.Fprintf(&w, "# Registry benchmark\n\n")
	fmt.Fprintf(&w, "Measured %s on %d CPUs (%s), %s RAM, %s, %s.\n\n", f.date.Format("2006-01-02 15:04 UTC"), f.cpus, f.cpuModel, f.memory, f.kernel, f.goVer)
	fmt.Fprintf(&w, "Command: `go run ./bench/registry -size %s -chunk %s -runs %d` (make bench-registry).\n\n", benchkit.SizeFlag(b.cfg.size), benchkit.SizeFlag(b.cfg.chunk), b.cfg.runs)
	for _, r := range b.cfg.registries {
		about := map[string]string{
			"airlock":         "`airlock registry serve`: filesystem blobs, bbolt metadata, access log on",
			"distribution-v3": "distribution v3 `registry serve`: filesystem storage, log level warn",
			"docker-registry": "Debian's docker-registry (distribution 2.8): filesystem storage, log level warn",
		}[r]
		fmt.Fprintf(&w, "- **%s** %s — %s\n", r, f.versions[r], about)
	}
	fmt.Fprintf(&w, "\nEach registry runs as its own process, fresh with empty storage for every run. Blobs of %s; the release has 20 files, %s. Times are medians of %d runs (MB/s = 10⁶ bytes/s); CPU is the registry's user+system time; RSS is the registry's peak resident memory during the step (max over runs).\n\n",
		benchkit.Human(b.cfg.size), benchkit.Human(b.relSize), b.cfg.runs)

	fmt.Fprintf(&w, "| step |")
	for _, r := range b.cfg.registries {
		fmt.Fprintf(&w, " %s |", r)
	}
	fmt.Fprintf(&w, "\n|---|%s\n", strings.Repeat("---|", len(b.cfg.registries)))
	for _, op := range ops {
		fmt.Fprintf(&w, "| %s |", op)
		for _, r := range b.cfg.registries {
			wall, cpu, rss, ok := b.median(r, op)
			if !ok {
				fmt.Fprintf(&w, " – |")
				continue
			}
			fmt.Fprintf(&w, " %.2f s, %.0f MB/s; CPU %.2f s; RSS %s |", wall.Seconds(), benchkit.MBps(b.opSize(op), wall), cpu.Seconds(), benchkit.Human(rss))
		}
		fmt.Fprintln(&w)
	}
	sha := benchkit.Median(b.sha)
	fmt.Fprintf(&w, "\n%s of the %s blob: %.2f s, %.0f MB/s (the hashing floor of a verifying ingest).\n\n", opSHA, benchkit.Human(b.cfg.size), sha.Seconds(), benchkit.MBps(b.cfg.size, sha))

	fmt.Fprintf(&w, "| ratio (time of peer ÷ time of airlock; > 1: airlock faster) | value | target |\n|---|---|---|\n")
	for _, r := range ratios {
		aw, _, _, ok1 := b.median("airlock", r.op)
		pw, _, _, ok2 := b.median(r.peer, r.op)
		if !ok1 || !ok2 {
			continue
		}
		v := pw.Seconds() / aw.Seconds()
		target := "–"
		if r.target > 0 {
			verdict := "met"
			if v < r.target {
				verdict = "NOT met"
			}
			target = fmt.Sprintf("≥ %.1f (%s)", r.target, verdict)
		}
		fmt.Fprintf(&w, "| %s vs %s | %.2f× | %s |\n", r.op, r.peer, v, target)
	}
	if aw, _, _, ok := b.median("airlock", opPut); ok {
		fmt.Fprintf(&w, "| airlock %s ÷ %s (time) | %.2f× | – |\n", opPut, opSHA, aw.Seconds()/sha.Seconds())
	}
	var peak int64
	for _, op := range []string{opPut, opGetCold, opGetWarm, opChunked} {
		if _, _, rss, ok := b.median("airlock", op); ok {
			peak = max(peak, rss)
		}
	}
	if peak > 0 {
		verdict := "met"
		if peak >= rssLimit {
			verdict = "NOT met"
		}
		fmt.Fprintf(&w, "| airlock peak RSS moving %s | %s | < %s (%s) |\n", benchkit.Human(b.cfg.size), benchkit.Human(peak), benchkit.Human(rssLimit), verdict)
	}
	fmt.Fprintf(&w, "\nPer run (wall seconds):\n\n| registry | step | runs |\n|---|---|---|\n")
	for _, r := range b.cfg.registries {
		for _, op := range ops {
			var ts []string
			for _, s := range b.results[r][op] {
				ts = append(ts, fmt.Sprintf("%.2f", s.wall.Seconds()))
			}
			fmt.Fprintf(&w, "| %s | %s | %s |\n", r, op, strings.Join(ts, ", "))
		}
	}
	return w.String()
}
