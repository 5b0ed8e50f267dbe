package gpu

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// Ticker is the part of *time.Ticker a Sampler uses, so tests can drive
// one by hand.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// SamplerOptions configure StartSampler. The zero value samples once a
// second on a real ticker.
type SamplerOptions struct {
	Interval  time.Duration              // zero means one second
	NewTicker func(time.Duration) Ticker // nil means time.NewTicker
}

// Sampler records GPU samples during a run, such as a benchmark, and
// summarises them. It keeps running aggregates, not the samples, so its
// memory does not grow with the length of the run.
type Sampler struct {
	inv  Inventory
	stop chan struct{}
	done chan struct{}

	mu  sync.Mutex
	acc accumulator

	once    sync.Once
	summary Summary
}

// StartSampler takes a first sample, so that the run's energy is counted
// from now, and then samples at every tick until Stop or until ctx ends.
func StartSampler(ctx context.Context, inv Inventory, opts SamplerOptions) *Sampler {
	interval, newTicker := opts.Interval, opts.NewTicker
	if interval <= 0 {
		interval = time.Second
	}
	if newTicker == nil {
		newTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	s := &Sampler{inv: inv, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample(ctx)
	t := newTicker(interval)
	go func() {
		defer close(s.done)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			case <-t.C():
				s.sample(ctx)
			}
		}
	}()
	return s
}

// Stop ends sampling, after any sample under way, takes a last sample so
// that the run's energy is counted up to now, and returns the summary.
// Later calls return the same summary.
func (s *Sampler) Stop(ctx context.Context) Summary {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.sample(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.summary = s.acc.summary()
	})
	return s.summary
}

func (s *Sampler) sample(ctx context.Context) {
	samples, err := s.inv.Sample(ctx)
	failed := countErrors(err)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		failed = 0 // stopped, not failed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acc.add(samples, failed)
}

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Summary describes the GPUs over a run, for a benchmark report (energy per
// output token is EnergyJoules over the run's output tokens).
type Summary struct {
	Start, End time.Time // times of the first and last sample
	Samples    int       // Sample calls made
	Errors     int       // NVML calls that failed; unsupported fields are not errors
	GPUs       []GPUSummary
}

// GPUSummary describes one GPU or MIG instance over a run. A nil field was
// never known.
type GPUSummary struct {
	Index      int
	UUID       string
	ParentUUID string // set for MIG instances
	Name       string
	Samples    int // samples that saw this GPU

	PeakMemoryUsed  *uint64
	MeanUtilization *float64
	PeakUtilization *float64
	// EnergyJoules is the energy used between the first and last sample.
	// It is nil when the GPU does not report energy, when its counter went
	// backwards (EnergyReset: the driver reloaded or the GPU was reset,
	// so part of the run is missing) or when the GPU was lost.
	EnergyJoules *float64
	EnergyReset  bool
	Lost         bool
}

type accumulator struct {
	first, last time.Time
	samples     int
	errors      int
	order       []string
	gpus        map[string]*gpuAcc
}

type gpuAcc struct {
	GPUSummary
	utilSum    float64
	utilN      int
	lastEnergy *float64
	energy     float64
	energyN    int // increments summed
}

func (a *accumulator) add(samples []Sample, failed int) {
	a.samples++
	a.errors += failed
	if a.gpus == nil {
		a.gpus = map[string]*gpuAcc{}
	}
	for _, s := range samples {
		if a.first.IsZero() || s.Time.Before(a.first) {
			a.first = s.Time
		}
		if s.Time.After(a.last) {
			a.last = s.Time
		}
		key := s.UUID
		if key == "" {
			key = "index " + strconv.Itoa(s.Index)
		}
		g := a.gpus[key]
		if g == nil {
			g = &gpuAcc{GPUSummary: GPUSummary{Index: s.Index, UUID: s.UUID, ParentUUID: s.ParentUUID, Name: s.Name}}
			a.gpus[key] = g
			a.order = append(a.order, key)
		}
		g.add(s)
	}
}

func (g *gpuAcc) add(s Sample) {
	g.Samples++
	g.Lost = g.Lost || s.Lost
	if s.MemoryUsed != nil && (g.PeakMemoryUsed == nil || *s.MemoryUsed > *g.PeakMemoryUsed) {
		g.PeakMemoryUsed = ptr(*s.MemoryUsed)
	}
	if u := s.UtilizationGPU; u != nil {
		g.utilSum += *u
		g.utilN++
		if g.PeakUtilization == nil || *u > *g.PeakUtilization {
			g.PeakUtilization = ptr(*u)
		}
	}
	if e := s.EnergyJoules; e != nil {
		switch {
		case g.lastEnergy == nil:
		case *e < *g.lastEnergy:
			g.EnergyReset = true
		default:
			g.energy += *e - *g.lastEnergy
			g.energyN++
		}
		g.lastEnergy = ptr(*e)
	}
}

func (a *accumulator) summary() Summary {
	sum := Summary{Start: a.first, End: a.last, Samples: a.samples, Errors: a.errors, GPUs: []GPUSummary{}}
	for _, k := range a.order {
		g := a.gpus[k]
		out := g.GPUSummary
		if g.utilN > 0 {
			out.MeanUtilization = ptr(g.utilSum / float64(g.utilN))
		}
		if g.energyN > 0 && !g.EnergyReset && !g.Lost {
			out.EnergyJoules = ptr(g.energy)
		}
		sum.GPUs = append(sum.GPUs, out)
	}
	return sum
}
