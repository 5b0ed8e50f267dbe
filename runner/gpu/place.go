package gpu

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Need is what a job asks of the GPUs. The zero value needs none.
type Need struct {
	// GPUs is how many distinct GPUs or MIG instances the job uses.
	GPUs int
	// MemoryBytes is the free memory the job needs on each of them.
	MemoryBytes uint64
	// AllowMIG lets a one-GPU job run on a MIG instance. A CUDA process
	// sees at most one MIG instance, so larger jobs get whole GPUs only.
	AllowMIG bool
}

// Place picks need.GPUs devices for a job and returns their UUIDs ("GPU-…"
// or "MIG-…", what CUDA_VISIBLE_DEVICES accepts), so that the choice holds
// when the job's engine renumbers devices. Candidates are the GPUs that are
// neither lost nor in MIG mode and, with AllowMIG, the MIG instances; of
// those with MemoryBytes free, it picks the least loaded: the lowest load
// (the larger of the share of memory in use and the utilization, when
// known), then the most bytes free, then the lowest index. The choice
// depends on its arguments only. reason says what was chosen or why
// nothing fits.
func Place(devs []Device, need Need) (chosen []string, ok bool, reason string) {
	if need.GPUs <= 0 {
		return []string{}, true, "no GPU needed"
	}
	var cands, fit []candidate
	lost, migMode := 0, 0
	for _, d := range devs {
		switch {
		case d.Lost:
			lost++
		case !d.MIG:
			cands = append(cands, candidate{d.UUID, fmt.Sprintf("GPU %d", d.Index), d.Index, d.MemoryFree, d.MemoryTotal, d.Utilization})
		case need.AllowMIG && need.GPUs == 1:
			for _, m := range d.MIGInstances {
				name := fmt.Sprintf("GPU %d MIG %d/%d", d.Index, m.GPUInstanceID, m.ComputeInstanceID)
				cands = append(cands, candidate{m.UUID, name, d.Index, m.MemoryFree, m.MemoryTotal, nil})
			}
		default:
			migMode++
		}
	}
	for _, c := range cands {
		if c.free >= need.MemoryBytes {
			fit = append(fit, c)
		}
	}
	if len(fit) < need.GPUs {
		var why []string
		if lost > 0 {
			why = append(why, fmt.Sprintf("%d lost", lost))
		}
		if migMode > 0 {
			why = append(why, fmt.Sprintf("%d in MIG mode not usable", migMode))
		}
		msg := fmt.Sprintf("need %d GPU(s) with %s free: %d of %d candidate(s) fit",
			need.GPUs, gib(need.MemoryBytes), len(fit), len(cands))
		if len(why) > 0 {
			msg += " (" + strings.Join(why, ", ") + ")"
		}
		return nil, false, msg
	}
	slices.SortStableFunc(fit, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.load(), b.load()), cmp.Compare(b.free, a.free),
			cmp.Compare(a.index, b.index), cmp.Compare(a.uuid, b.uuid))
	})
	names := make([]string, need.GPUs)
	chosen = make([]string, need.GPUs)
	for i, c := range fit[:need.GPUs] {
		chosen[i], names[i] = c.uuid, fmt.Sprintf("%s (%s free)", c.name, gib(c.free))
	}
	return chosen, true, fmt.Sprintf("least loaded %d of %d fitting: %s", need.GPUs, len(fit), strings.Join(names, ", "))
}

type candidate struct {
	uuid, name  string
	index       int
	free, total uint64
	util        *float64
}

// load is how busy the candidate is: the larger of its memory share in
// use and its utilization, where known (MIG instances have none).
func (c candidate) load() float64 {
	if c.util != nil {
		return max(c.usedShare(), *c.util)
	}
	return c.usedShare()
}

// usedShare is the share of memory in use; unknown memory counts as full.
func (c candidate) usedShare() float64 {
	if c.total == 0 || c.free > c.total {
		return 1
	}
	return 1 - float64(c.free)/float64(c.total)
}

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
