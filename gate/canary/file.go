package canary

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/airlock-dev/airlock/gate"
	"gopkg.in/yaml.v3"
)

// FileProvider reads observations from a static file (provider: file: in
// canary.yaml), for tests and for replaying a canary offline. The file
// holds cumulative observations at offsets from the canary's start:
//
//	# observations are cumulative since the canary started; "at" is the offset from the start
//	observations:
//	  - {at: 30s, metric: ttft, variant: canary, n: 40, mean: 0.071, stddev: 0.012}
//	  - {at: 30s, metric: errors, variant: canary, requests: 400, events: 3}
//
// A mean metric gives n, mean and var or stddev; a count or proportion
// metric gives requests and events. An entry may name a digest, and then
// answers only for that deployment of the variant. Observe answers with
// the latest entry at or before the query's window (End − Start).
type FileProvider struct {
	series map[fileKey][]fileEntry // by at, ascending
}

var _ Provider = (*FileProvider)(nil)

type fileKey struct{ metric, variant string }

type fileEntry struct {
	line   int
	at     time.Duration
	digest string
	counts bool // requests/events, else n/mean/var
	obs    Observation
}

// fileDoc is the file as written.
type fileDoc struct {
	Observations []fileObservation `yaml:"observations"`
}

type fileObservation struct {
	At      *gate.Duration `yaml:"at"`
	Metric  string         `yaml:"metric"`
	Variant string         `yaml:"variant"`
	Digest  string         `yaml:"digest"`
	// A mean metric's.
	N      *float64 `yaml:"n"`
	Mean   *float64 `yaml:"mean"`
	Var    *float64 `yaml:"var"`
	StdDev *float64 `yaml:"stddev"`
	// A count or proportion metric's.
	Requests *float64 `yaml:"requests"`
	Events   *float64 `yaml:"events"`
}

// LoadFile reads an observations file.
func LoadFile(path string) (*FileProvider, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the observations file: %w", err)
	}
	p, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ParseFile reads an observations file's contents, YAML or JSON. Unknown
// fields are errors, and every problem is reported at once with its line.
func ParseFile(b []byte) (*FileProvider, error) {
	var doc fileDoc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, errors.New("observations file: the file is empty; it needs observations: (see docs/promotion.md)")
	} else if err != nil {
		return nil, fmt.Errorf("observations file: %w", err)
	}
	// The lines of the entries, which the decoded structs do not keep.
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("observations file: %w", err)
	}
	lines := entryLines(&root)

	p := &FileProvider{series: map[fileKey][]fileEntry{}}
	var errs []error
	for i, o := range doc.Observations {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		e, err := o.entry(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: observations[%d]: %w", line, i, err))
			continue
		}
		k := fileKey{o.Metric, o.Variant}
		p.series[k] = append(p.series[k], e)
	}
	for k, es := range p.series {
		sort.SliceStable(es, func(i, j int) bool { return es[i].at < es[j].at })
		for i := 1; i < len(es); i++ {
			if es[i].at == es[i-1].at && es[i].digest == es[i-1].digest {
				errs = append(errs, fmt.Errorf("line %d: a second observation of %s for %s at %v (the first is on line %d)",
					es[i].line, k.metric, variantName(k.variant, es[i].digest), es[i].at, es[i-1].line))
			}
			if es[i].counts != es[i-1].counts {
				errs = append(errs, fmt.Errorf("line %d: %s for %s is given as %s here and as %s on line %d; use one form per metric",
					es[i].line, k.metric, k.variant, form(es[i].counts), form(es[i-1].counts), es[i-1].line))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("observations file: %w", err)
	}
	return p, nil
}

func form(counts bool) string {
	if counts {
		return "requests and events"
	}
	return "n and mean"
}

func variantName(v, digest string) string {
	if digest == "" {
		return v
	}
	return v + " (" + digest + ")"
}

// entryLines returns the line of each item of the observations sequence.
func entryLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "observations" {
			continue
		}
		var lines []int
		for _, item := range m.Content[i+1].Content {
			lines = append(lines, item.Line)
		}
		return lines
	}
	return nil
}

// entry checks one observation and makes it an entry.
func (o fileObservation) entry(line int) (fileEntry, error) {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.At == nil {
		add("at: required: the offset from the canary's start, such as 30s")
	}
	if o.Metric == "" {
		add("metric: required")
	}
	if o.Variant == "" {
		add("variant: required: the variant's name, such as canary or stable")
	}
	number := func(field string, p *float64) {
		if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0) || *p < 0) {
			add("%s: %g, want a non-negative number", field, *p)
		}
	}
	for _, f := range []struct {
		name string
		p    *float64
	}{{"n", o.N}, {"var", o.Var}, {"stddev", o.StdDev}, {"requests", o.Requests}, {"events", o.Events}} {
		number(f.name, f.p)
	}
	if o.Mean != nil && (math.IsNaN(*o.Mean) || math.IsInf(*o.Mean, 0)) {
		add("mean: %g, want a finite number", *o.Mean)
	}

	e := fileEntry{line: line, digest: o.Digest}
	if o.At != nil {
		e.at = o.At.Duration
	}
	meanForm := o.N != nil || o.Mean != nil || o.Var != nil || o.StdDev != nil
	countForm := o.Requests != nil || o.Events != nil
	switch {
	case meanForm && countForm:
		add("give n, mean and var or stddev (a mean metric) or requests and events (a count or proportion), not both")
	case countForm:
		e.counts = true
		if o.Requests == nil || o.Events == nil {
			add("a count or proportion needs both requests and events")
			break
		}
		n, k := *o.Requests, *o.Events
		if k > n {
			add("events: %g exceed requests: %g", k, n)
			break
		}
		e.obs = Observation{N: n, Events: k}
		if n > 0 {
			e.obs.Mean = k / n
			e.obs.Var = e.obs.Mean * (1 - e.obs.Mean)
		}
	case meanForm:
		if o.N == nil {
			add("n: required: the number of samples")
			break
		}
		e.obs.N = *o.N
		if o.Var != nil && o.StdDev != nil {
			add("give var or stddev, not both")
			break
		}
		if e.obs.N == 0 {
			break
		}
		if o.Mean == nil {
			add("mean: required when n is not 0")
			break
		}
		e.obs.Mean = *o.Mean
		switch {
		case o.Var != nil:
			e.obs.Var = *o.Var
		case o.StdDev != nil:
			e.obs.Var = *o.StdDev * *o.StdDev
		case e.obs.N >= 2:
			add("var or stddev: required when n is 2 or more")
		}
	default:
		add("give n, mean and var or stddev (a mean metric) or requests and events (a count or proportion)")
	}
	return e, errors.Join(errs...)
}

// Observe returns the latest observation of the metric for the variant at
// or before the window's length, or ErrNoData when there is none or it
// counts nothing. An entry with a digest answers only for that digest.
func (p *FileProvider) Observe(ctx context.Context, q Query) (Observation, error) {
	if err := ctx.Err(); err != nil {
		return Observation{}, err
	}
	w := q.Window()
	if w < 0 {
		return Observation{}, fmt.Errorf("observing %s: the window ends (%v) before it starts (%v)", q.Metric.Name, q.End, q.Start)
	}
	es := p.series[fileKey{q.Metric.Name, q.Variant.Name}]
	var found *fileEntry
	for i := range es {
		if es[i].at > w {
			break
		}
		if es[i].digest == "" || es[i].digest == q.Variant.Digest {
			found = &es[i]
		}
	}
	who := variantName(q.Variant.Name, q.Variant.Digest)
	if found == nil {
		return Observation{}, fmt.Errorf("%w: the file has no observation of %s for %s at or before %v", ErrNoData, q.Metric.Name, who, w)
	}
	switch {
	case q.Metric.Test == TestMean && found.counts:
		return Observation{}, fmt.Errorf("%s is a mean metric, but the observations file gives it as requests and events (line %d)", q.Metric.Name, found.line)
	case (q.Metric.Test == TestProportion || q.Metric.Test == TestCount) && !found.counts:
		return Observation{}, fmt.Errorf("%s is a %s metric, but the observations file gives it as n and mean (line %d); give requests and events", q.Metric.Name, q.Metric.Test, found.line)
	}
	if found.obs.N == 0 {
		return Observation{}, fmt.Errorf("%w: the file's observation of %s for %s at %v (line %d) has no samples", ErrNoData, q.Metric.Name, who, found.at, found.line)
	}
	return found.obs, nil
}
