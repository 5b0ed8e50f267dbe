package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
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
	dist     string
	regctl   string
	ggcr     string
	airlock  string
}

func gatherFacts(ctx context.Context, b *runner) facts {
	f := facts{date: time.Now().UTC(), cpus: runtime.NumCPU(), goVer: runtime.Version()}
	f.cpuModel = benchkit.ProcField("/proc/cpuinfo", "model name")
	if kb := benchkit.ProcField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		if _, err := fmt.Sscanf(kb, "%d kB", &n); err == nil {
			f.memory = benchkit.Human(n << 10)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	out := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = b.root
		cmd.Env = b.regctlEnv()
		o, err := cmd.Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(o))
	}
	if v := out("go", "version"); v != "?" {
		f.goVer = strings.TrimPrefix(v, "go version ")
	}
	// "PATH github.com/docker/distribution 2.8.2+ds1": keep the version.
	f.dist = out(b.dist, "--version")
	if fields := strings.Fields(f.dist); len(fields) > 0 {
		f.dist = fields[len(fields)-1]
	}
	if v := out("go", "version", b.dist); v != "?" {
		if i := strings.LastIndex(v, " "); i >= 0 {
			f.dist += ", built with " + v[i+1:]
		}
	}
	f.regctl = out(b.regctl, "version", "--format", "{{.VCSTag}}, built with {{.GoVer}}")
	f.ggcr = "?"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/google/go-containerregistry" {
				f.ggcr = d.Version
			}
		}
	}
	f.airlock = out("git", "describe", "--always", "--dirty")
	return f
}

// ratio is one claim checked against a target.
type ratio struct {
	name     string
	num, den string // ops: value = time(num) / time(den)
	target   float64
	atLeast  bool // target is a minimum (else a maximum; 0 means none)
	meaning  string
}

var ratios = []ratio{
	{"pull speedup", opGet, opPull, 2, true, "regctl artifact get ÷ airlock pull"},
	{"push vs regctl", opPut, opPush, 0, true, "regctl artifact put ÷ airlock push"},
	{"pack+push ÷ sha256", opPush, opSHA, 1.5, false, "airlock push ÷ Go sha256 of the weights file"},
	{"push ÷ registry floor", opPush, opRawPut, 0, false, "airlock push ÷ raw PATCH upload"},
	{"pull ÷ registry floor", opPull, opRawGet, 0, false, "airlock pull ÷ raw download"},
	{"upload floor ÷ sha256", opRawPut, opSHA, 0, false, "raw PATCH upload ÷ sha256: what a client that only sends bytes shows"},
	{"regctl get ÷ download floor", opGet, opRawGet, 0, true, "regctl artifact get ÷ raw download: the pull speedup of a client that neither hashes nor writes"},
}

func (b *runner) report() string {
	var w strings.Builder
	f := b.facts
	fmt.Fprintf(&w, "# Transfer benchmark results\n\n")
	fmt.Fprintf(&w, "- Date: %s\n", f.date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "- Weights file: %s of random bytes (`%s`) plus 4 small files; %d run(s), registries fresh each run\n", benchkit.Human(b.cfg.size), weightsPath, b.cfg.runs)
	fmt.Fprintf(&w, "- Machine: %d × %s, %s RAM, %s\n", f.cpus, f.cpuModel, f.memory, f.kernel)
	fmt.Fprintf(&w, "- Go: %s · airlock: %s · regctl: %s · docker-registry (distribution): %s · go-containerregistry: %s\n", f.goVer, f.airlock, f.regctl, f.dist, f.ggcr)
	fmt.Fprintf(&w, "- Reproduce: `go run ./bench/transfer -size %s -runs %d` (from the repository root)\n", benchkit.SizeFlag(b.cfg.size), b.cfg.runs)
	fmt.Fprintf(&w, "\nTimes are wall clock of the whole command (process start to exit); the sha256 is in-process with a 1 MiB buffer. MiB/s is the weights file's size over the median time. Ratios are of medians; targets are judged on medians.\n")
	for _, k := range b.kinds {
		res := b.results[k.name]
		fmt.Fprintf(&w, "\n## %s\n\n%s.", k.name, k.about)
		if p := b.peakRSS[k.name]; p > 0 {
			fmt.Fprintf(&w, " Peak resident memory of the registry process: %s.", benchkit.Human(p))
		}
		fmt.Fprintf(&w, "\n\n")
		fmt.Fprintf(&w, "| step | median s | min s | MiB/s | each run, s |\n|---|---:|---:|---:|---|\n")
		for _, op := range ops {
			ds := res[op]
			if len(ds) == 0 {
				continue
			}
			each := make([]string, len(ds))
			for i, d := range ds {
				each[i] = fmt.Sprintf("%.2f", d.Seconds())
			}
			fmt.Fprintf(&w, "| %s | %.2f | %.2f | %.0f | %s |\n", op, benchkit.Median(ds).Seconds(), slices.Min(ds).Seconds(),
				benchkit.MiBps(b.cfg.size, benchkit.Median(ds)), strings.Join(each, ", "))
		}
		fmt.Fprintf(&w, "\n| ratio | definition | median | from minimums | target | verdict |\n|---|---|---:|---:|---|---|\n")
		for _, r := range ratios {
			n, d := res[r.num], res[r.den]
			if len(n) == 0 || len(d) == 0 {
				continue
			}
			v := benchkit.Median(n).Seconds() / benchkit.Median(d).Seconds()
			vmin := slices.Min(n).Seconds() / slices.Min(d).Seconds()
			target, verdict := "—", "(no target)"
			if r.target > 0 {
				met := v <= r.target
				op := "≤"
				if r.atLeast {
					met, op = v >= r.target, "≥"
				}
				target = fmt.Sprintf("%s %.1f×", op, r.target)
				verdict = "**not met**"
				if met {
					verdict = "met"
				}
			}
			fmt.Fprintf(&w, "| %s | %s | %.2f× | %.2f× | %s | %s |\n", r.name, r.meaning, v, vmin, target, verdict)
		}
	}
	return w.String()
}
