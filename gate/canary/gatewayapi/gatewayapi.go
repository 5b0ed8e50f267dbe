package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/airlock-dev/airlock/gate/canary"
)

// Annotations the actuator keeps on the route, so that whoever looks at the
// route (kubectl, another controller, an incident) sees what Airlock did and
// why.
const (
	// AnnotationCanaryWeight is the percent of traffic the actuator last
	// sent to the canary.
	AnnotationCanaryWeight = "airlock.dev/canary-weight"
	// AnnotationKillSwitch is "on" while the kill-switch holds all traffic
	// on the baseline; it is absent otherwise.
	AnnotationKillSwitch = "airlock.dev/kill-switch"
	// AnnotationKillSwitchReason is the reason given when the kill-switch
	// was turned on.
	AnnotationKillSwitchReason = "airlock.dev/kill-switch-reason"
	// AnnotationKillSwitchTime is when the kill-switch was turned on
	// (RFC 3339, UTC).
	AnnotationKillSwitchTime = "airlock.dev/kill-switch-time"
)

// Defaults.
const (
	// DefaultNamespace is the route's namespace when canary.yaml names none.
	DefaultNamespace = "default"
	// DefaultAttempts is how many times a write is tried when the route
	// changed between the read and the write.
	DefaultAttempts = 5
	// FieldManager is the manager name Airlock's writes carry, shown in the
	// route's managedFields.
	FieldManager = "airlock"
)

// ErrKillSwitchOn says SetWeight was asked to send traffic to the canary
// while the kill-switch is on: the kill-switch holds all traffic on the
// baseline whatever the weights say, so it must be turned off first.
var ErrKillSwitchOn = errors.New("the kill-switch is on")

// Options tune an Actuator; the zero value is the documented default.
type Options struct {
	// Now stamps the kill-switch annotation (default time.Now).
	Now func() time.Time
	// Attempts bounds the read-modify-write when another writer changes
	// the route in between (default DefaultAttempts).
	Attempts int
	// Logger receives a line per write and per retry (default silent).
	Logger *slog.Logger
}

// Actuator moves traffic between the baseline and the canary by the
// weights of two backendRefs of one rule of an HTTPRoute.
type Actuator struct {
	routes   dynamic.ResourceInterface
	cfg      canary.GatewayAPIConfig
	now      func() time.Time
	attempts int
	log      *slog.Logger
}

var _ canary.Actuator = (*Actuator)(nil)

// httpRoutes is the resource the actuator edits: Gateway API v1, where
// backendRef weights are stable.
func httpRoutes() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
}

// New returns the actuator for the route cfg names, reached through client
// (FromKubeconfig, or a fake in tests). It checks cfg but does not contact
// the cluster: the first SetWeight does.
func New(client dynamic.Interface, cfg canary.GatewayAPIConfig, opts Options) (*Actuator, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	var errs []error
	if client == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if cfg.Route == "" {
		errs = append(errs, errors.New("route: required (the HTTPRoute's name)"))
	}
	if cfg.Rule < 0 {
		errs = append(errs, fmt.Errorf("rule: %d is negative; it is the index of the route's rule, from 0", cfg.Rule))
	}
	if cfg.BaselineBackend == "" || cfg.CanaryBackend == "" {
		errs = append(errs, errors.New("baseline_backend and canary_backend: required (the backendRefs' names)"))
	} else if cfg.BaselineBackend == cfg.CanaryBackend {
		errs = append(errs, fmt.Errorf("baseline_backend and canary_backend: both are %q", cfg.CanaryBackend))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("gateway_api actuator: %w", err)
	}
	a := &Actuator{
		routes:   client.Resource(httpRoutes()).Namespace(cfg.Namespace),
		cfg:      cfg,
		now:      opts.Now,
		attempts: opts.Attempts,
		log:      opts.Logger,
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.attempts <= 0 {
		a.attempts = DefaultAttempts
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// FromKubeconfig connects to a cluster as kubectl does: with the kubeconfig
// file at path when it is not empty; otherwise by client-go's default
// loading rules, which read the files $KUBECONFIG lists, else
// ~/.kube/config, and fall back to the pod's service account (in-cluster
// configuration) when there are none.
func FromKubeconfig(path string) (dynamic.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if path != "" {
			return nil, fmt.Errorf("loading the kubeconfig %s: %w", path, err)
		}
		return nil, fmt.Errorf("loading the kubeconfig ($KUBECONFIG, ~/.kube/config or in-cluster): %w", err)
	}
	rc.UserAgent = "airlock"
	c, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("connecting to Kubernetes at %s: %w", rc.Host, err)
	}
	return c, nil
}

// SetWeight gives the canary backendRef weight percent and the baseline
// 100−percent, and records percent in AnnotationCanaryWeight. While the
// kill-switch is on, only 0 is accepted (ErrKillSwitchOn otherwise).
func (a *Actuator) SetWeight(ctx context.Context, percent int) error {
	err := func() error {
		if percent < 0 || percent > 100 {
			return fmt.Errorf("canary weight %d is not a percentage (0 to 100)", percent)
		}
		return a.update(ctx, func(route *unstructured.Unstructured) error {
			ann := route.GetAnnotations()
			if percent > 0 && ann[AnnotationKillSwitch] == "on" {
				return fmt.Errorf("%w (%s: %q); turn it off before sending traffic to the canary", ErrKillSwitchOn, ann[AnnotationKillSwitchTime], ann[AnnotationKillSwitchReason])
			}
			if err := a.setWeights(route, percent); err != nil {
				return err
			}
			setAnnotations(route, map[string]string{AnnotationCanaryWeight: strconv.Itoa(percent)}, nil)
			return nil
		})
	}()
	if err != nil {
		return fmt.Errorf("setting weights on HTTPRoute %s/%s: %w", a.cfg.Namespace, a.cfg.Route, err)
	}
	return nil
}

// KillSwitch, when on, gives the canary weight 0 (all traffic to the
// baseline) and records reason and the time in the route's annotations.
// When off, it removes those annotations and leaves the weights as they
// are: the promoter sets them next.
func (a *Actuator) KillSwitch(ctx context.Context, on bool, reason string) error {
	err := a.update(ctx, func(route *unstructured.Unstructured) error {
		if !on {
			setAnnotations(route, nil, []string{AnnotationKillSwitch, AnnotationKillSwitchReason, AnnotationKillSwitchTime})
			return nil
		}
		if err := a.setWeights(route, 0); err != nil {
			return err
		}
		setAnnotations(route, map[string]string{
			AnnotationKillSwitch:       "on",
			AnnotationKillSwitchReason: reason,
			AnnotationKillSwitchTime:   a.now().UTC().Format(time.RFC3339),
			AnnotationCanaryWeight:     "0",
		}, nil)
		return nil
	})
	if err != nil {
		state := "off"
		if on {
			state = "on"
		}
		return fmt.Errorf("turning the kill-switch %s on HTTPRoute %s/%s: %w", state, a.cfg.Namespace, a.cfg.Route, err)
	}
	return nil
}

// update reads the route, applies mutate and writes it back with the
// resourceVersion it read, so that a concurrent change is never lost: on a
// conflict it reads again and reapplies mutate, up to a.attempts times. A
// mutation that changes nothing writes nothing.
func (a *Actuator) update(ctx context.Context, mutate func(*unstructured.Unstructured) error) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		route, err := a.routes.Get(ctx, a.cfg.Route, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading the route: %w", a.explain(err))
		}
		before := route.DeepCopy()
		if err := mutate(route); err != nil {
			return err
		}
		if reflect.DeepEqual(before.Object, route.Object) {
			return nil
		}
		_, err = a.routes.Update(ctx, route, metav1.UpdateOptions{FieldManager: FieldManager})
		if err == nil {
			a.log.InfoContext(ctx, "updated HTTPRoute", "namespace", a.cfg.Namespace, "route", a.cfg.Route,
				"resource_version", route.GetResourceVersion(), "attempt", attempt)
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("writing the route: %w", a.explain(err))
		}
		if attempt >= a.attempts {
			return fmt.Errorf("writing the route: it changed under every one of %d attempts: %w", attempt, err)
		}
		a.log.InfoContext(ctx, "HTTPRoute changed since read; retrying", "namespace", a.cfg.Namespace, "route", a.cfg.Route,
			"resource_version", route.GetResourceVersion(), "attempt", attempt)
	}
}

// explain adds what a user can do to the API errors that have one answer.
func (a *Actuator) explain(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("no HTTPRoute %q in namespace %q, or no Gateway API v1 in the cluster (check route and namespace under actuator.gateway_api in canary.yaml): %w",
			a.cfg.Route, a.cfg.Namespace, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("the actuator needs get and update on httproutes.gateway.networking.k8s.io in namespace %q: %w", a.cfg.Namespace, err)
	}
	return err
}

// setWeights gives the canary backendRef weight percent and the baseline
// 100−percent in the configured rule, touching nothing else.
func (a *Actuator) setWeights(route *unstructured.Unstructured, percent int) error {
	refs, err := backendRefs(route, a.cfg.Rule)
	if err != nil {
		return err
	}
	found := map[string]map[string]any{}
	count := map[string]int{}
	var names []string
	for _, r := range refs {
		ref, ok := r.(map[string]any)
		if !ok {
			continue
		}
		name, _ := ref["name"].(string)
		names = append(names, strconv.Quote(name))
		count[name]++
		found[name] = ref
	}
	var missing []string
	for _, want := range []string{a.cfg.BaselineBackend, a.cfg.CanaryBackend} {
		switch count[want] {
		case 0:
			missing = append(missing, strconv.Quote(want))
		case 1:
		default:
			return fmt.Errorf("rule %d has %d backendRefs named %q; the actuator cannot tell which to weigh", a.cfg.Rule, count[want], want)
		}
	}
	if len(missing) > 0 {
		has := "none"
		if len(names) > 0 {
			has = strings.Join(names, ", ")
		}
		return fmt.Errorf("rule %d has no backendRef named %s (its backendRefs: %s)", a.cfg.Rule, strings.Join(missing, " or "), has)
	}
	found[a.cfg.BaselineBackend]["weight"] = int64(100 - percent)
	found[a.cfg.CanaryBackend]["weight"] = int64(percent)
	return nil
}

// backendRefs returns the backendRefs of the route's rule i, as the
// route's own slice, so that edits to its elements land in the route.
func backendRefs(route *unstructured.Unstructured, i int) ([]any, error) {
	spec, _ := route.Object["spec"].(map[string]any)
	rules, _ := spec["rules"].([]any)
	if i < 0 || i >= len(rules) {
		return nil, fmt.Errorf("rule %d is out of range: the route has %s", i, plural(len(rules), "rule"))
	}
	rule, ok := rules[i].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rule %d is not an object", i)
	}
	refs, _ := rule["backendRefs"].([]any)
	return refs, nil
}

// setAnnotations sets set and deletes del in the route's annotations,
// leaving the route as it was when that changes nothing.
func setAnnotations(route *unstructured.Unstructured, set map[string]string, del []string) {
	before := route.GetAnnotations()
	ann := maps.Clone(before)
	if ann == nil {
		ann = map[string]string{}
	}
	maps.Copy(ann, set)
	for _, k := range del {
		delete(ann, k)
	}
	switch {
	case maps.Equal(before, ann):
	case len(ann) == 0:
		route.SetAnnotations(nil)
	default:
		route.SetAnnotations(ann)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
