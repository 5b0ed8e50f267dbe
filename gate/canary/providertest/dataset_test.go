package providertest_test

import (
	"reflect"
	"testing"

	"github.com/airlock-dev/airlock/gate/canary/providertest"
)

// TestDataset checks the promises implementations rely on to store the
// dataset without loss.
func TestDataset(t *testing.T) {
	d := providertest.NewDataset()
	if !reflect.DeepEqual(d, providertest.NewDataset()) {
		t.Fatal("NewDataset is not deterministic")
	}
	for i, s := range d.Samples {
		if s.At <= d.FirstRequest || s.At > d.Duration {
			t.Errorf("sample %d at %v, outside (%v, %v]", i, s.At, d.FirstRequest, d.Duration)
		}
		if s.At%d.Step == 0 {
			t.Errorf("sample %d at %v, a whole step", i, s.At)
		}
		if i > 0 && s.At < d.Samples[i-1].At {
			t.Errorf("sample %d at %v, before the one before it", i, s.At)
		}
		if s.Variant == d.Idle {
			t.Errorf("sample %d of the idle variant", i)
		}
	}
	for _, m := range d.Metrics {
		for _, v := range d.Variants {
			if o := d.Exact(m.Name, v, 10*d.Step); o.N < 10 {
				t.Errorf("%s of %s: %g samples in the first 10 steps, want 10 or more", m.Name, v.Name, o.N)
			}
		}
		if a, b := d.Exact(m.Name, d.Variants[1], d.Duration), d.Exact(m.Name, d.Variants[2], d.Duration); a == b {
			t.Errorf("%s: the two canaries' observations are equal: the digest case could not fail", m.Name)
		}
	}
	if e := d.Exact(providertest.Errors, d.Variants[0], d.Duration); e.Events == 0 || e.Events == e.N {
		t.Errorf("errors of stable: %+v, want some but not all", e)
	}
}
