package gatewayapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/airlock-dev/airlock/gate/canary"
	"github.com/airlock-dev/airlock/gate/canary/gatewayapi"
)

var routesGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// routeJSON is an HTTPRoute as a cluster returns it: two rules, the first
// splitting between three backendRefs, with matches, filters, hostnames,
// parentRefs, labels, annotations and a status that the actuator must leave
// alone.
const routeJSON = `{
  "apiVersion": "gateway.networking.k8s.io/v1",
  "kind": "HTTPRoute",
  "metadata": {
    "name": "chat", "namespace": "serving", "resourceVersion": "41", "generation": 7,
    "uid": "0b5c1b9e-2f0e-4d8e-9d55-0d1f7d1c2a11",
    "labels": {"app": "chat"},
    "annotations": {"team": "support"}
  },
  "spec": {
    "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateways", "sectionName": "https"}],
    "hostnames": ["chat.example.com", "chat.internal"],
    "rules": [
      {
        "name": "completions",
        "matches": [{"path": {"type": "PathPrefix", "value": "/v1/chat"}, "headers": [{"name": "x-tier", "value": "paid"}]}],
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-route", "value": "chat"}]}}],
        "timeouts": {"request": "30s"},
        "backendRefs": [
          {"group": "", "kind": "Service", "name": "chat-stable", "port": 8000, "weight": 100},
          {"name": "chat-canary", "port": 8000, "weight": 0,
           "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-variant", "value": "canary"}]}}]},
          {"name": "chat-shadow", "namespace": "shadow", "port": 8001, "weight": 0}
        ]
      },
      {
        "matches": [{"path": {"type": "Exact", "value": "/healthz"}}],
        "backendRefs": [{"name": "chat-stable", "port": 8000}]
      }
    ]
  },
  "status": {"parents": [{"parentRef": {"name": "public"}, "controllerName": "example.com/gateway",
    "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "lastTransitionTime": "2026-01-02T03:04:05Z", "message": "", "observedGeneration": 7}]}]}
}`

func seedRoute(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON([]byte(routeJSON)); err != nil {
		t.Fatal(err)
	}
	return &u
}

var cfg = canary.GatewayAPIConfig{
	Namespace:       "serving",
	Route:           "chat",
	Rule:            0,
	BaselineBackend: "chat-stable",
	CanaryBackend:   "chat-canary",
}

// newCluster is a fake dynamic client holding objs that, like the API
// server, refuses an update whose resourceVersion is not the stored one
// and bumps the resourceVersion of every write.
func newCluster(t *testing.T, objs ...runtime.Object) *fake.FakeDynamicClient {
	t.Helper()
	c := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{routesGVR: "HTTPRouteList"}, objs...)
	c.PrependReactor("update", "httproutes", func(action k8stesting.Action) (bool, runtime.Object, error) {
		ua := action.(k8stesting.UpdateActionImpl)
		if ua.UpdateOptions.FieldManager != gatewayapi.FieldManager {
			t.Errorf("update with field manager %q, want %q", ua.UpdateOptions.FieldManager, gatewayapi.FieldManager)
		}
		obj := ua.GetObject().(*unstructured.Unstructured).DeepCopy()
		stored, err := get(c, ua.GetNamespace(), obj.GetName())
		if err != nil {
			return true, nil, err
		}
		if obj.GetResourceVersion() != stored.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(routesGVR.GroupResource(), obj.GetName(),
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		rv, _ := strconv.Atoi(stored.GetResourceVersion())
		obj.SetResourceVersion(strconv.Itoa(rv + 1))
		if err := c.Tracker().Update(routesGVR, obj, ua.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	})
	return c
}

func get(c *fake.FakeDynamicClient, ns, name string) (*unstructured.Unstructured, error) {
	o, err := c.Tracker().Get(routesGVR, ns, name)
	if err != nil {
		return nil, err
	}
	return o.(*unstructured.Unstructured), nil
}

func stored(t *testing.T, c *fake.FakeDynamicClient) *unstructured.Unstructured {
	t.Helper()
	u, err := get(c, "serving", "chat")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newActuator(t *testing.T, c *fake.FakeDynamicClient, cfg canary.GatewayAPIConfig, opts gatewayapi.Options) *gatewayapi.Actuator {
	t.Helper()
	a, err := gatewayapi.New(c, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func count(c *fake.FakeDynamicClient, verb string) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == verb {
			n++
		}
	}
	return n
}

// backendRef returns rule i's backendRef j of u, for building expectations.
func backendRef(u *unstructured.Unstructured, i, j int) map[string]any {
	rules := u.Object["spec"].(map[string]any)["rules"].([]any)
	return rules[i].(map[string]any)["backendRefs"].([]any)[j].(map[string]any)
}

func weights(u *unstructured.Unstructured) [3]any {
	return [3]any{backendRef(u, 0, 0)["weight"], backendRef(u, 0, 1)["weight"], backendRef(u, 0, 2)["weight"]}
}

func mustJSON(t *testing.T, u *unstructured.Unstructured) string {
	t.Helper()
	b, err := json.MarshalIndent(u.Object, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSetWeight(t *testing.T) {
	for _, p := range []int{0, 5, 25, 100} {
		t.Run(strconv.Itoa(p), func(t *testing.T) {
			c := newCluster(t, seedRoute(t))
			a := newActuator(t, c, cfg, gatewayapi.Options{})
			if err := a.SetWeight(t.Context(), p); err != nil {
				t.Fatal(err)
			}
			// Everything but the two weights, the annotation and the
			// resourceVersion is exactly as it was.
			want := seedRoute(t)
			backendRef(want, 0, 0)["weight"] = int64(100 - p)
			backendRef(want, 0, 1)["weight"] = int64(p)
			want.SetAnnotations(map[string]string{"team": "support", gatewayapi.AnnotationCanaryWeight: strconv.Itoa(p)})
			want.SetResourceVersion("42")
			if got, want := mustJSON(t, stored(t, c)), mustJSON(t, want); got != want {
				t.Errorf("route after SetWeight(%d):\n%s\nwant:\n%s", p, got, want)
			}
		})
	}
}

func TestSetWeightUnchangedWritesNothing(t *testing.T) {
	c := newCluster(t, seedRoute(t))
	a := newActuator(t, c, cfg, gatewayapi.Options{})
	for range 3 {
		if err := a.SetWeight(t.Context(), 25); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(c, "update"); n != 1 {
		t.Errorf("%d updates for the same weight three times, want 1", n)
	}
	if rv := stored(t, c).GetResourceVersion(); rv != "42" {
		t.Errorf("resourceVersion %s, want 42", rv)
	}
}

func TestSetWeightErrors(t *testing.T) {
	dup := seedRoute(t)
	backendRef(dup, 0, 2)["name"] = "chat-canary"
	tests := []struct {
		name    string
		route   *unstructured.Unstructured
		cfg     func(*canary.GatewayAPIConfig)
		percent int
		want    []string
		is      func(error) bool
	}{
		{
			name:  "missing route",
			route: seedRoute(t),
			cfg:   func(c *canary.GatewayAPIConfig) { c.Route = "chatt" },
			want:  []string{`setting weights on HTTPRoute serving/chatt: `, `no HTTPRoute "chatt" in namespace "serving"`, "canary.yaml"},
			is:    apierrors.IsNotFound,
		},
		{
			name:  "route in another namespace",
			route: seedRoute(t),
			cfg:   func(c *canary.GatewayAPIConfig) { c.Namespace = "" },
			want:  []string{`HTTPRoute default/chat`, `no HTTPRoute "chat" in namespace "default"`},
			is:    apierrors.IsNotFound,
		},
		{
			name:  "missing canary backend",
			route: seedRoute(t),
			cfg:   func(c *canary.GatewayAPIConfig) { c.CanaryBackend = "chat-next" },
			want:  []string{`rule 0 has no backendRef named "chat-next" (its backendRefs: "chat-stable", "chat-canary", "chat-shadow")`},
		},
		{
			name:  "both backends missing",
			route: seedRoute(t),
			cfg:   func(c *canary.GatewayAPIConfig) { c.BaselineBackend, c.CanaryBackend = "a", "b" },
			want:  []string{`no backendRef named "a" or "b"`},
		},
		{
			name:  "backend only in another rule",
			route: seedRoute(t),
			cfg:   func(c *canary.GatewayAPIConfig) { c.Rule = 1 },
			want:  []string{`rule 1 has no backendRef named "chat-canary" (its backendRefs: "chat-stable")`},
		},
		{
			name:  "rule out of range",
			route: seedRoute(t),
			cfg:   func(c *canary.GatewayAPIConfig) { c.Rule = 2 },
			want:  []string{"rule 2 is out of range: the route has 2 rules"},
		},
		{
			name:  "ambiguous backend",
			route: dup,
			want:  []string{`rule 0 has 2 backendRefs named "chat-canary"`},
		},
		{
			name:    "above 100",
			route:   seedRoute(t),
			percent: 101,
			want:    []string{"canary weight 101 is not a percentage"},
		},
		{
			name:    "negative",
			route:   seedRoute(t),
			percent: -1,
			want:    []string{"canary weight -1 is not a percentage"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, tt.route.DeepCopy())
			conf := cfg
			if tt.cfg != nil {
				tt.cfg(&conf)
			}
			a := newActuator(t, c, conf, gatewayapi.Options{})
			percent := tt.percent
			if percent == 0 {
				percent = 5
			}
			err := a.SetWeight(t.Context(), percent)
			if err == nil {
				t.Fatal("SetWeight succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("error %q is not of the expected kind", err)
			}
			if n := count(c, "update"); n != 0 {
				t.Errorf("%d updates after a failed SetWeight, want 0", n)
			}
			if got, want := mustJSON(t, stored(t, c)), mustJSON(t, tt.route); got != want {
				t.Errorf("route changed:\n%s", got)
			}
		})
	}
}

// interlope makes another writer change the route (an annotation of its
// own) just before each of the actuator's first n updates reaches the
// store, so that the update carries a stale resourceVersion.
func interlope(t *testing.T, c *fake.FakeDynamicClient, n int) {
	var mu sync.Mutex
	done := 0
	c.PrependReactor("update", "httproutes", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if done >= n {
			return false, nil, nil
		}
		done++
		u, err := get(c, "serving", "chat")
		if err != nil {
			t.Error(err)
			return false, nil, nil
		}
		u = u.DeepCopy()
		ann := u.GetAnnotations()
		ann["other-controller/seen"] = strconv.Itoa(done)
		u.SetAnnotations(ann)
		rv, _ := strconv.Atoi(u.GetResourceVersion())
		u.SetResourceVersion(strconv.Itoa(rv + 1))
		if err := c.Tracker().Update(routesGVR, u, "serving"); err != nil {
			t.Error(err)
		}
		return false, nil, nil
	})
}

func TestConflict(t *testing.T) {
	tests := []struct {
		name      string
		conflicts int
		attempts  int
		wantErr   bool
		updates   int
	}{
		{name: "once, then retried", conflicts: 1, attempts: 0, updates: 2},
		{name: "up to the last attempt", conflicts: 2, attempts: 3, updates: 3},
		{name: "every attempt", conflicts: 3, attempts: 3, wantErr: true, updates: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, seedRoute(t))
			interlope(t, c, tt.conflicts)
			a := newActuator(t, c, cfg, gatewayapi.Options{Attempts: tt.attempts})
			err := a.SetWeight(t.Context(), 25)
			if n := count(c, "update"); n != tt.updates {
				t.Errorf("%d updates, want %d", n, tt.updates)
			}
			if n := count(c, "get"); n != tt.updates {
				t.Errorf("%d reads, want %d: every attempt reads the route again", n, tt.updates)
			}
			got := stored(t, c)
			seen := got.GetAnnotations()["other-controller/seen"]
			if seen != strconv.Itoa(tt.conflicts) {
				t.Errorf("the other writer's annotation is %q, want %d: its change was lost", seen, tt.conflicts)
			}
			if tt.wantErr {
				if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "3 attempts") {
					t.Errorf("error %v, want a conflict after 3 attempts", err)
				}
				if w := weights(got); w != [3]any{int64(100), int64(0), int64(0)} {
					t.Errorf("weights %v after a failed SetWeight", w)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w := weights(got); w != [3]any{int64(75), int64(25), int64(0)} {
				t.Errorf("weights %v, want [75 25 0]", w)
			}
		})
	}
}

func TestKillSwitch(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	type op struct {
		kill    *bool // KillSwitch(*kill, reason); nil: SetWeight(weight)
		weight  int
		wantErr error
		// after the op:
		weights [3]any
		ann     map[string]string
		writes  int // updates so far
	}
	on, off := true, false
	const reason = "latency p95 regressed 31% (mSPRT, step 2)"
	killed := map[string]string{
		"team":                                "support",
		gatewayapi.AnnotationCanaryWeight:     "0",
		gatewayapi.AnnotationKillSwitch:       "on",
		gatewayapi.AnnotationKillSwitchReason: reason,
		gatewayapi.AnnotationKillSwitchTime:   "2026-03-04T04:06:07Z",
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{name: "on then off", ops: []op{
			{weight: 25, weights: [3]any{int64(75), int64(25), int64(0)},
				ann: map[string]string{"team": "support", gatewayapi.AnnotationCanaryWeight: "25"}, writes: 1},
			{kill: &on, weights: [3]any{int64(100), int64(0), int64(0)}, ann: killed, writes: 2},
			{kill: &off, weights: [3]any{int64(100), int64(0), int64(0)},
				ann: map[string]string{"team": "support", gatewayapi.AnnotationCanaryWeight: "0"}, writes: 3},
			{weight: 5, weights: [3]any{int64(95), int64(5), int64(0)},
				ann: map[string]string{"team": "support", gatewayapi.AnnotationCanaryWeight: "5"}, writes: 4},
		}},
		{name: "the kill-switch wins over weights", ops: []op{
			{kill: &on, weights: [3]any{int64(100), int64(0), int64(0)}, ann: killed, writes: 1},
			{weight: 25, wantErr: gatewayapi.ErrKillSwitchOn, weights: [3]any{int64(100), int64(0), int64(0)}, ann: killed, writes: 1},
			{weight: 0, weights: [3]any{int64(100), int64(0), int64(0)}, ann: killed, writes: 1},
		}},
		{name: "off when off writes nothing", ops: []op{
			{kill: &off, weights: [3]any{int64(100), int64(0), int64(0)}, ann: map[string]string{"team": "support"}, writes: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, seedRoute(t))
			a := newActuator(t, c, cfg, gatewayapi.Options{Now: func() time.Time { return now }})
			for i, o := range tt.ops {
				var err error
				if o.kill != nil {
					err = a.KillSwitch(t.Context(), *o.kill, reason)
				} else {
					err = a.SetWeight(t.Context(), o.weight)
				}
				if !errors.Is(err, o.wantErr) {
					t.Fatalf("op %d: error %v, want %v", i, err, o.wantErr)
				}
				got := stored(t, c)
				if w := weights(got); w != o.weights {
					t.Errorf("op %d: weights %v, want %v", i, w, o.weights)
				}
				if a := got.GetAnnotations(); !equalMaps(a, o.ann) {
					t.Errorf("op %d: annotations %v, want %v", i, a, o.ann)
				}
				if n := count(c, "update"); n != o.writes {
					t.Errorf("op %d: %d updates, want %d", i, n, o.writes)
				}
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A route whose only annotation is the kill-switch (set by hand, say) loses
// its annotations field when the kill-switch goes off, rather than keeping
// an empty one.
func TestKillSwitchOffRemovesEmptyAnnotations(t *testing.T) {
	r := seedRoute(t)
	r.SetAnnotations(map[string]string{gatewayapi.AnnotationKillSwitch: "on"})
	c := newCluster(t, r)
	a := newActuator(t, c, cfg, gatewayapi.Options{})
	if err := a.KillSwitch(t.Context(), false, ""); err != nil {
		t.Fatal(err)
	}
	md := stored(t, c).Object["metadata"].(map[string]any)
	if ann, ok := md["annotations"]; ok {
		t.Errorf("metadata.annotations is %v, want none", ann)
	}
}

func TestNew(t *testing.T) {
	c := newCluster(t)
	tests := []struct {
		name string
		cfg  func(*canary.GatewayAPIConfig)
		want string
	}{
		{name: "no route", cfg: func(c *canary.GatewayAPIConfig) { c.Route = "" }, want: "route: required"},
		{name: "no canary", cfg: func(c *canary.GatewayAPIConfig) { c.CanaryBackend = "" }, want: "canary_backend: required"},
		{name: "same backends", cfg: func(c *canary.GatewayAPIConfig) { c.CanaryBackend = c.BaselineBackend }, want: `both are "chat-stable"`},
		{name: "negative rule", cfg: func(c *canary.GatewayAPIConfig) { c.Rule = -1 }, want: "rule: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := cfg
			tt.cfg(&conf)
			_, err := gatewayapi.New(c, conf, gatewayapi.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
	if _, err := gatewayapi.New(nil, cfg, gatewayapi.Options{}); err == nil {
		t.Error("New accepted a nil client")
	}
}

func TestNamespaceDefault(t *testing.T) {
	r := seedRoute(t)
	r.SetNamespace("default")
	c := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{routesGVR: "HTTPRouteList"}, r)
	conf := cfg
	conf.Namespace = ""
	a := newActuator(t, c, conf, gatewayapi.Options{})
	if err := a.SetWeight(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	u, err := get(c, "default", "chat")
	if err != nil {
		t.Fatal(err)
	}
	if w := weights(u); w != [3]any{int64(95), int64(5), int64(0)} {
		t.Errorf("weights %v, want [95 5 0]", w)
	}
}

// apiServer is a fake of the Kubernetes API for one HTTPRoute, over real
// HTTP: it checks the path the dynamic client builds and refuses stale
// resourceVersions as the API server does.
type apiServer struct {
	mu    sync.Mutex
	route map[string]any
	puts  []string // query strings of the PUTs
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path != "/apis/gateway.networking.k8s.io/v1/namespaces/serving/httproutes/chat" {
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`, http.StatusNotFound)
		return
	}
	u := unstructured.Unstructured{Object: s.route}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		s.puts = append(s.puts, r.URL.RawQuery)
		b, _ := io.ReadAll(r.Body)
		var in unstructured.Unstructured
		if err := in.UnmarshalJSON(b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if in.GetResourceVersion() != u.GetResourceVersion() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409}`)
			return
		}
		rv, _ := strconv.Atoi(u.GetResourceVersion())
		in.SetResourceVersion(strconv.Itoa(rv + 1))
		s.route = in.Object
		u = in
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	b, _ := u.MarshalJSON()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func TestFromKubeconfig(t *testing.T) {
	api := &apiServer{route: seedRoute(t).Object}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "`+srv.URL+`"}}]
users: [{name: test, user: {token: t0ken}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
`), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := gatewayapi.FromKubeconfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	a, err := gatewayapi.New(client, cfg, gatewayapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetWeight(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	got := unstructured.Unstructured{Object: api.route}
	puts := api.puts
	api.mu.Unlock()
	if w := weights(&got); w != [3]any{int64(95), int64(5), int64(0)} {
		t.Errorf("weights %v, want [95 5 0]", w)
	}
	if got.GetResourceVersion() != "42" {
		t.Errorf("resourceVersion %s, want 42", got.GetResourceVersion())
	}
	if len(puts) != 1 || !strings.Contains(puts[0], "fieldManager=airlock") {
		t.Errorf("PUTs %q, want one with fieldManager=airlock", puts)
	}

	if _, err := gatewayapi.FromKubeconfig(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("FromKubeconfig accepted a missing file")
	}
}
