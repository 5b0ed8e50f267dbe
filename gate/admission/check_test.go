package admission

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/registry"
)

// countingReader is a fake registry: it counts reads, can hold them until
// released, and can fail. (cmd/airlock's TestWebhookCorpus uses a real
// registry; this one counts what a real one cannot report.)
type countingReader struct {
	reads   atomic.Int32
	hold    chan struct{}
	fail    error
	verdict func(d string) []*gate.Verdict
}

func (r *countingReader) Verdicts(ctx context.Context, ref registry.Ref) ([]*gate.Verdict, error) {
	r.reads.Add(1)
	if r.hold != nil {
		select {
		case <-r.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r.fail != nil {
		return nil, r.fail
	}
	return r.verdict(ref.Digest.String()), nil
}

const testDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func testConfig(t *testing.T) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(`releases: [{registry: reg.example, repository: "models/*"}]
trust: [k.pub]
environments: [{namespace: "prod-*", environment: prod}]
timeout: 2s
cache: {ttl: 1m, size: 2}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	c.TrustPEM = [][]byte{[]byte("key")}
	return c
}

func passFor(expires time.Time) func(string) []*gate.Verdict {
	return func(d string) []*gate.Verdict {
		return []*gate.Verdict{{Subject: gate.Subject{Digest: d}, Environment: "prod", Outcome: gate.Pass, Expires: expires, DecisionID: "d"}}
	}
}

func podRequest(t *testing.T, image string) *admissionv1.AdmissionRequest {
	t.Helper()
	raw, err := json.Marshal(corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "prod-a",
		Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}
}

func TestConcurrentChecksShareOneRead(t *testing.T) {
	r := &countingReader{hold: make(chan struct{}), verdict: passFor(time.Now().Add(time.Hour))}
	c := NewChecker(testConfig(t), r, Options{})
	req := podRequest(t, "reg.example/models/a@"+testDigest)
	var wg sync.WaitGroup
	answers := make([]*admissionv1.AdmissionResponse, 20)
	for i := range answers {
		wg.Go(func() { answers[i] = c.Review(context.Background(), req) })
	}
	// Let every check reach the read, then answer it once.
	deadline := time.Now().Add(5 * time.Second)
	for r.reads.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(r.hold)
	wg.Wait()
	for i, a := range answers {
		if !a.Allowed {
			t.Fatalf("answer %d: %+v", i, a.Result)
		}
	}
	if n := r.reads.Load(); n != 1 {
		t.Errorf("20 concurrent checks of one digest read the registry %d times, want 1", n)
	}
	// Warm: no read at all.
	if a := c.Review(context.Background(), req); !a.Allowed || r.reads.Load() != 1 {
		t.Errorf("warm check: allowed %t, reads %d", a.Allowed, r.reads.Load())
	}
}

func TestOnlyPassesAreCached(t *testing.T) {
	r := &countingReader{verdict: func(string) []*gate.Verdict { return nil }}
	c := NewChecker(testConfig(t), r, Options{})
	req := podRequest(t, "reg.example/models/a@"+testDigest)
	for range 3 {
		if a := c.Review(context.Background(), req); a.Allowed {
			t.Fatal("a release without a verdict was admitted")
		}
	}
	if n := r.reads.Load(); n != 3 {
		t.Errorf("a denial was cached: %d reads for 3 checks", n)
	}
	r.fail = errors.New("connection refused")
	a := c.Review(context.Background(), req)
	if a.Allowed || !strings.Contains(a.Result.Message, "could not be read: connection refused") {
		t.Errorf("registry down, cold cache: %+v", a.Result)
	}
}

func TestCacheEntryEndsWithTheVerdict(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	clock := now
	r := &countingReader{verdict: passFor(now.Add(30 * time.Second))} // expires before the 1m TTL
	c := NewChecker(testConfig(t), r, Options{Now: func() time.Time { return clock }})
	req := podRequest(t, "reg.example/models/a@"+testDigest)
	if a := c.Review(context.Background(), req); !a.Allowed {
		t.Fatal(a.Result)
	}
	clock = now.Add(20 * time.Second)
	if a := c.Review(context.Background(), req); !a.Allowed || r.reads.Load() != 1 {
		t.Fatalf("within the verdict's life: allowed %t, reads %d", a.Allowed, r.reads.Load())
	}
	clock = now.Add(31 * time.Second)
	if a := c.Review(context.Background(), req); a.Allowed {
		t.Fatal("admitted on a cached verdict that has expired")
	}
	if r.reads.Load() != 2 {
		t.Errorf("reads %d, want 2: the expired entry must be read again", r.reads.Load())
	}
}

func TestCacheIsBounded(t *testing.T) {
	c := newCache(2)
	until := time.Now().Add(time.Hour)
	for _, k := range []string{"a", "b", "c"} {
		c.put(k, until)
	}
	if c.Len() != 2 || c.get("a", time.Now()) || !c.get("c", time.Now()) {
		t.Errorf("LRU of 2 after a, b, c: len %d", c.Len())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", "empty config"},
		{"releases: []\n", "releases: name at least one"},
		{"releases: [{registry: r, repository: \"[\"}]\ntrust: [k]\nenvironments: [{namespace: a, environment: b}]\n", "not a valid pattern"},
		{"releases: [{registry: r}]\ntrust: [k]\nenvironments: [{namespace: a, environment: b}]\nmode: block\n", `mode: "block" is not enforce or warn`},
		{"releases: [{registry: r}]\ntrust: [k]\nenvironments: [{namespace: a, environment: b}]\nrevoked: [nope]\n", "is not a digest"},
		{"releases: [{registry: r}]\ntrust: [k]\nenvironments: [{namespace: a, environment: b}]\nbogus: 1\n", "field bogus not found"},
		{"releases: [{registry: r}]\ntrust: [k]\nenvironments: [{namespace: a}]\n", "environment is required"},
		{"releases: [{registry: r}]\ntrust: [k]\nenvironments: [{namespace: a, environment: b}]\nregistry_unavailable: maybe\n", "not deny or allow"},
	} {
		_, err := ParseConfig([]byte(tc.yaml), ".")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestAPolicyThatFailsDenies(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package airlock.gate.broken\n\ndeny contains msg if {\n\tn := to_number(input.admission.namespace)\n\tmsg := sprintf(\"%v\", [n])\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Policies.Dirs = []string{dir}
	e, err := cfg.Engine(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := &countingReader{verdict: passFor(time.Now().Add(time.Hour))}
	c := NewChecker(cfg, r, Options{Policies: e})
	a := c.Review(context.Background(), podRequest(t, "reg.example/models/a@"+testDigest))
	if a.Allowed || !strings.Contains(a.Result.Message, "policy engine") {
		t.Fatalf("a policy that errors must deny, saying so: %+v", a.Result)
	}
}
