package promtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// OpenMetrics writes OpenMetrics text for Backfill: metric families, each
// with its samples in order, every sample with a timestamp. Within a
// family, write each series' samples in increasing time (for a histogram,
// all of one labelset's buckets, _count and _sum at one time before the
// next time); promtool rejects a sample older than the last of its series.
type OpenMetrics struct {
	b    strings.Builder
	seen map[string]bool
}

// Family starts a metric family: typ is counter, gauge, histogram or
// summary, and name is without the _total, _bucket, _count or _sum of its
// samples. A family may not be started twice: OpenMetrics forbids
// interleaving them.
func (o *OpenMetrics) Family(name, typ string) {
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	if o.seen[name] {
		panic("promtest: OpenMetrics family " + name + " started twice")
	}
	o.seen[name] = true
	fmt.Fprintf(&o.b, "# TYPE %s %s\n", name, typ)
}

// Sample writes one sample of the current family: name is the sample's
// full name (with _total, _bucket, …), labels alternate names and values.
func (o *OpenMetrics) Sample(name string, value float64, at time.Time, labels ...string) {
	if len(labels)%2 != 0 {
		panic("promtest: OpenMetrics labels must alternate names and values")
	}
	o.b.WriteString(name)
	if len(labels) > 0 {
		o.b.WriteByte('{')
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				o.b.WriteByte(',')
			}
			o.b.WriteString(labels[i])
			o.b.WriteString(`="`)
			o.b.WriteString(escape(labels[i+1]))
			o.b.WriteByte('"')
		}
		o.b.WriteByte('}')
	}
	fmt.Fprintf(&o.b, " %s %s\n", strconv.FormatFloat(value, 'g', -1, 64), strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
}

// Bytes returns the text with its "# EOF" line.
func (o *OpenMetrics) Bytes() []byte {
	return []byte(o.b.String() + "# EOF\n")
}

// escape escapes a label value as OpenMetrics requires.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
