package rego_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/rego"
)

// BenchmarkDecide is one prepared decision on base.yaml with 200 metrics
// and 200 limits (bench/gate measures the same against opa eval).
func BenchmarkDecide(b *testing.B) {
	var base map[string]any
	readYAML(&testing.T{}, "../../policies/testdata/base.yaml", &base)
	in := normalise(base).(map[string]any)
	metrics := in["metrics"].(map[string]any)
	limits := in["slo"].(map[string]any)["metrics"].(map[string]any)
	for i := range 200 {
		n := fmt.Sprintf("bench.custom_%03d", i)
		metrics[n] = float64(i)
		limits[n] = map[string]any{"max": float64(i + 1)}
	}
	raw, err := json.Marshal(in)
	if err != nil {
		b.Fatal(err)
	}
	e, err := rego.New(context.Background(), builtins(b), rego.Options{Now: func() time.Time { return caseNow }})
	if err != nil {
		b.Fatal(err)
	}
	if d := e.DecideJSON(context.Background(), raw); d.Outcome != gate.Pass {
		b.Fatalf("outcome %s: %v", d.Outcome, d.Deny)
	}
	b.ResetTimer()
	for b.Loop() {
		e.DecideJSON(context.Background(), raw)
	}
}
