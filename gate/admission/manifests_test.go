package admission_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifestDir holds the deployment manifests of docs/admission.md.
const manifestDir = "../../docs/deploy/admission"

// The names the manifests and docs/admission.md agree on.
const (
	systemNamespace = "airlock-system"
	webhookName     = "airlock-admission"
	deploymentName  = "airlock-webhook"
	servingPort     = 8443
	optInLabel      = "airlock.dev/admission"
	maxTimeout      = 10 // seconds; reference/admission.md §(e) 6
)

// manifests are the decoded objects, each typed by its kind.
type manifests struct {
	namespaces      []*corev1.Namespace
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	services        []*corev1.Service
	serviceAccounts []*corev1.ServiceAccount
	deployments     []*appsv1.Deployment
	pdbs            []*policyv1.PodDisruptionBudget
	priorityClasses []*schedulingv1.PriorityClass
	webhooks        []*admissionregistrationv1.ValidatingWebhookConfiguration
	issuers         []certManagerObject
	certificates    []certManagerObject
}

// certManagerObject is an Issuer or Certificate. cert-manager's types are
// not in k8s.io/api, so they are checked as maps.
type certManagerObject struct {
	where     string
	name      string
	namespace string
	spec      map[string]any
}

func TestManifests(t *testing.T) {
	m := loadManifests(t)

	t.Run("namespaces", func(t *testing.T) { checkNamespaces(t, m) })
	dep := findDeployment(t, m)
	t.Run("webhook", func(t *testing.T) { checkWebhook(t, m, dep) })
	t.Run("deployment", func(t *testing.T) { checkDeployment(t, m, dep) })
	t.Run("pdb", func(t *testing.T) { checkPDB(t, m, dep) })
	t.Run("service", func(t *testing.T) { checkService(t, m, dep) })
	t.Run("cert-manager", func(t *testing.T) { checkCertManager(t, m) })
	t.Run("admission.yaml", func(t *testing.T) { checkAdmissionConfig(t, m) })
}

// docSeparator splits multi-document YAML.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", manifestDir)
	}
	m := &manifests{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			where := fmt.Sprintf("%s (document %d)", filepath.Base(f), i+1)
			if err := m.add(where, []byte(doc)); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// add decodes one document strictly into the type of its kind.
func (m *manifests) add(where string, doc []byte) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil // comments only
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(j, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		return decodeInto(j, &m.namespaces)
	case "v1 ConfigMap":
		return decodeInto(j, &m.configMaps)
	case "v1 Secret":
		return decodeInto(j, &m.secrets)
	case "v1 Service":
		return decodeInto(j, &m.services)
	case "v1 ServiceAccount":
		return decodeInto(j, &m.serviceAccounts)
	case "apps/v1 Deployment":
		return decodeInto(j, &m.deployments)
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(j, &m.pdbs)
	case "scheduling.k8s.io/v1 PriorityClass":
		return decodeInto(j, &m.priorityClasses)
	case "admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration":
		return decodeInto(j, &m.webhooks)
	case "cert-manager.io/v1 Issuer", "cert-manager.io/v1 Certificate":
		o, err := decodeCertManager(where, j)
		if err != nil {
			return err
		}
		if tm.Kind == "Issuer" {
			m.issuers = append(m.issuers, o)
		} else {
			m.certificates = append(m.certificates, o)
		}
		return nil
	}
	return fmt.Errorf("apiVersion %q kind %q is not one the test knows; add it to manifests.add", tm.APIVersion, tm.Kind)
}

// decodeInto decodes j into a new T, refusing unknown fields and trailing
// data, and appends it to list.
func decodeInto[T any](j []byte, list *[]*T) error {
	v := new(T)
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the object")
	}
	*list = append(*list, v)
	return nil
}

func decodeCertManager(where string, j []byte) (certManagerObject, error) {
	var o struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec map[string]any `json:"spec"`
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return certManagerObject{}, err
	}
	if o.Metadata.Name == "" || o.Metadata.Namespace == "" {
		return certManagerObject{}, errors.New("metadata.name and metadata.namespace are required")
	}
	if o.Spec == nil {
		return certManagerObject{}, errors.New("spec is required")
	}
	return certManagerObject{where: where, name: o.Metadata.Name, namespace: o.Metadata.Namespace, spec: o.Spec}, nil
}

func checkNamespaces(t *testing.T, m *manifests) {
	if !slices.ContainsFunc(m.namespaces, func(n *corev1.Namespace) bool { return n.Name == systemNamespace }) {
		t.Errorf("no Namespace %s", systemNamespace)
	}
	namespaced := map[string]string{}
	for _, o := range m.configMaps {
		namespaced["ConfigMap "+o.Name] = o.Namespace
	}
	for _, o := range m.secrets {
		namespaced["Secret "+o.Name] = o.Namespace
	}
	for _, o := range m.services {
		namespaced["Service "+o.Name] = o.Namespace
	}
	for _, o := range m.serviceAccounts {
		namespaced["ServiceAccount "+o.Name] = o.Namespace
	}
	for _, o := range m.deployments {
		namespaced["Deployment "+o.Name] = o.Namespace
	}
	for _, o := range m.pdbs {
		namespaced["PodDisruptionBudget "+o.Name] = o.Namespace
	}
	for _, o := range append(slices.Clone(m.issuers), m.certificates...) {
		namespaced[o.where+" "+o.name] = o.namespace
	}
	for what, ns := range namespaced {
		if ns != systemNamespace {
			t.Errorf("%s: namespace %q, want %s", what, ns, systemNamespace)
		}
	}
}

func findDeployment(t *testing.T, m *manifests) *appsv1.Deployment {
	t.Helper()
	for _, d := range m.deployments {
		if d.Name == deploymentName {
			return d
		}
	}
	t.Fatalf("no Deployment %s", deploymentName)
	return nil
}

// webhookContainer is the container that runs `airlock webhook serve`.
func webhookContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i, c := range d.Spec.Template.Spec.Containers {
		if len(c.Args) >= 2 && c.Args[0] == "webhook" && c.Args[1] == "serve" {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("Deployment %s: no container runs `webhook serve`", d.Name)
	return nil
}

func checkWebhook(t *testing.T, m *manifests, dep *appsv1.Deployment) {
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	for _, w := range m.webhooks {
		if w.Name == webhookName {
			vwc = w
		}
	}
	if vwc == nil {
		t.Fatalf("no ValidatingWebhookConfiguration %s", webhookName)
	}
	if len(vwc.Webhooks) == 0 {
		t.Fatal("no webhooks")
	}
	inject := vwc.Annotations["cert-manager.io/inject-ca-from"]
	if !slices.ContainsFunc(m.certificates, func(c certManagerObject) bool { return c.namespace+"/"+c.name == inject }) {
		t.Errorf("cert-manager.io/inject-ca-from %q names no Certificate in the manifests", inject)
	}
	ownSA := "system:serviceaccount:" + dep.Namespace + ":" + dep.Spec.Template.Spec.ServiceAccountName

	// What the webhook must see (DESIGN.md §8): group, resource, operation.
	want := map[string]bool{
		"/pods/CREATE":                               false,
		"/pods/ephemeralcontainers/UPDATE":           false,
		"serving.kserve.io/inferenceservices/CREATE": false,
		"serving.kserve.io/inferenceservices/UPDATE": false,
	}
	for _, r := range []string{"deployments", "replicasets", "statefulsets", "daemonsets"} {
		want["apps/"+r+"/CREATE"], want["apps/"+r+"/UPDATE"] = false, false
	}
	for _, r := range []string{"jobs", "cronjobs"} {
		want["batch/"+r+"/CREATE"], want["batch/"+r+"/UPDATE"] = false, false
	}

	for _, w := range vwc.Webhooks {
		t.Run(w.Name, func(t *testing.T) {
			if w.TimeoutSeconds == nil || *w.TimeoutSeconds < 1 || *w.TimeoutSeconds > maxTimeout {
				t.Errorf("timeoutSeconds %v, want set and at most %d", deref(w.TimeoutSeconds), maxTimeout)
			}
			if w.FailurePolicy == nil {
				t.Error("failurePolicy is not set")
			}
			if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
				t.Errorf("sideEffects %v, want None", deref(w.SideEffects))
			}
			if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
				t.Errorf("admissionReviewVersions %v, want [v1]", w.AdmissionReviewVersions)
			}
			checkClientConfig(t, m, w.ClientConfig)
			checkOptIn(t, w.NamespaceSelector)

			if len(w.MatchConditions) == 0 {
				t.Error("no matchConditions")
			}
			var exprs []string
			for _, c := range w.MatchConditions {
				exprs = append(exprs, c.Expression)
			}
			all := strings.Join(exprs, "\n")
			for _, s := range []string{"'kube-system'", "'kube-node-lease'", "'" + systemNamespace + "'", "'" + ownSA + "'"} {
				if !strings.Contains(all, s) {
					t.Errorf("matchConditions do not exclude %s", s)
				}
			}

			if len(w.Rules) == 0 {
				t.Error("no rules")
			}
			for i, r := range w.Rules {
				for _, g := range r.APIGroups {
					if strings.Contains(g, "*") {
						t.Errorf("rules[%d]: apiGroup %q matches too much", i, g)
					}
				}
				for _, res := range r.Resources {
					base, _, _ := strings.Cut(res, "/")
					if strings.Contains(res, "*") || slices.Contains([]string{"leases", "nodes", "endpoints", "endpointslices"}, base) {
						t.Errorf("rules[%d]: resource %q must never go through this webhook", i, res)
					}
					for _, g := range r.APIGroups {
						for _, op := range r.Operations {
							if op == admissionregistrationv1.OperationAll {
								t.Errorf("rules[%d]: operation * matches DELETE and CONNECT too", i)
							}
							if _, ok := want[g+"/"+res+"/"+string(op)]; ok {
								want[g+"/"+res+"/"+string(op)] = true
							}
						}
					}
				}
			}
		})
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no rule sends %s to the webhook", k)
		}
	}

	// admission.yaml's own deadline must end before the API server gives up.
	if cfg := admissionConfig(t, m); cfg != nil {
		if s, ok := cfg["timeout"].(string); ok {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Errorf("admission.yaml timeout %q: %v", s, err)
			}
			for _, w := range vwc.Webhooks {
				if w.TimeoutSeconds != nil && d >= time.Duration(*w.TimeoutSeconds)*time.Second {
					t.Errorf("admission.yaml timeout %s is not under %s timeoutSeconds %d", d, w.Name, *w.TimeoutSeconds)
				}
			}
		}
	}
}

func checkClientConfig(t *testing.T, m *manifests, cc admissionregistrationv1.WebhookClientConfig) {
	t.Helper()
	if cc.URL != nil || cc.Service == nil {
		t.Error("clientConfig must name the Service, not a URL")
		return
	}
	s := cc.Service
	if deref(s.Path) != "/validate" {
		t.Errorf("clientConfig.service.path %q, want /validate", deref(s.Path))
	}
	port := int32(443)
	if s.Port != nil {
		port = *s.Port
	}
	for _, svc := range m.services {
		if svc.Name == s.Name && svc.Namespace == s.Namespace {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
				t.Errorf("Service %s has no port %d", svc.Name, port)
			}
			return
		}
	}
	t.Errorf("clientConfig names Service %s/%s, which is not in the manifests", s.Namespace, s.Name)
}

// checkOptIn requires the namespace label opt-in: only namespaces
// labelled enforce or warn are sent to the webhook.
func checkOptIn(t *testing.T, sel *metav1.LabelSelector) {
	t.Helper()
	if sel == nil {
		t.Error("no namespaceSelector: every namespace would be sent to the webhook")
		return
	}
	if len(sel.MatchLabels) > 0 {
		t.Errorf("namespaceSelector.matchLabels %v: use the %s In [enforce, warn] expression", sel.MatchLabels, optInLabel)
	}
	for _, e := range sel.MatchExpressions {
		if e.Key == optInLabel && e.Operator == metav1.LabelSelectorOpIn &&
			slices.Equal(slices.Sorted(slices.Values(e.Values)), []string{"enforce", "warn"}) {
			return
		}
	}
	t.Errorf("namespaceSelector has no %s In [enforce, warn]", optInLabel)
}

func checkDeployment(t *testing.T, m *manifests, d *appsv1.Deployment) {
	spec := d.Spec.Template.Spec
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 3 {
		t.Errorf("replicas %v, want at least 3", deref(d.Spec.Replicas))
	}
	podLabels := labels.Set(d.Spec.Template.Labels)
	if !slices.ContainsFunc(spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
		return c.TopologyKey == "kubernetes.io/hostname" && selects(c.LabelSelector, podLabels)
	}) {
		t.Error("no topologySpreadConstraint spreads the replicas across nodes (kubernetes.io/hostname)")
	}
	if pc := spec.PriorityClassName; pc != "" {
		if strings.HasPrefix(pc, "system-") {
			t.Errorf("priorityClassName %s: system classes are only allowed in kube-system", pc)
		} else if !slices.ContainsFunc(m.priorityClasses, func(p *schedulingv1.PriorityClass) bool { return p.Name == pc }) {
			t.Errorf("priorityClassName %s is not defined in the manifests", pc)
		}
	}

	// The webhook makes no Kubernetes API calls, so it gets no token.
	if spec.AutomountServiceAccountToken != nil && *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is true in the pod spec")
	}
	if i := slices.IndexFunc(m.serviceAccounts, func(sa *corev1.ServiceAccount) bool { return sa.Name == spec.ServiceAccountName }); i < 0 {
		t.Errorf("serviceAccountName %q is not defined in the manifests", spec.ServiceAccountName)
	} else if sa := m.serviceAccounts[i]; sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %s: automountServiceAccountToken must be false", sa.Name)
	}

	c := webhookContainer(t, d)
	if !strings.HasPrefix(c.Image, "ghcr.io/airlock-dev/airlock") {
		t.Errorf("image %s", c.Image)
	}
	wantArgs := []string{"webhook", "serve", "--config", "/etc/airlock/admission.yaml",
		"--tls-cert", "/etc/airlock/tls/tls.crt", "--tls-key", "/etc/airlock/tls/tls.key"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args %q, want %q", c.Args, wantArgs)
	}
	checkProbe(t, "readinessProbe", c, c.ReadinessProbe, "/readyz")
	checkProbe(t, "livenessProbe", c, c.LivenessProbe, "/healthz")

	// Security context: the container's setting wins over the pod's.
	nonRoot := spec.SecurityContext != nil && deref(spec.SecurityContext.RunAsNonRoot)
	if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		nonRoot = *sc.RunAsNonRoot
	}
	if !nonRoot {
		t.Error("runAsNonRoot is not true")
	}
	if sc := c.SecurityContext; sc == nil || !deref(sc.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}

	// GOMEMLIMIT must be set, below the memory limit.
	limit := c.Resources.Limits.Memory()
	if limit.IsZero() {
		t.Error("no memory limit")
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
		t.Error("no memory request")
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("no cpu request")
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("env %s: a literal is expected (Kubernetes cannot compute a fraction of the limit)", e.Name)
		}
		env[e.Name] = e.Value
	}
	if v, ok := env["GOMEMLIMIT"]; !ok {
		t.Error("GOMEMLIMIT is not set")
	} else if n, err := parseGoMemLimit(v); err != nil {
		t.Errorf("GOMEMLIMIT %q: %v", v, err)
	} else if n <= 0 || n >= limit.Value() {
		t.Errorf("GOMEMLIMIT %s (%d bytes) is not below the memory limit %s", v, n, limit)
	}
	if env["GOGC"] == "off" && env["GOMEMLIMIT"] == "" {
		t.Error("GOGC=off without GOMEMLIMIT lets the heap grow until the container is killed")
	}

	// Every file the args and admission.yaml name is mounted.
	files := mountedFiles(t, m, c, spec.Volumes)
	need := []string{wantArgs[3], wantArgs[5], wantArgs[7]}
	if cfg := admissionConfig(t, m); cfg != nil {
		trust, _ := cfg["trust"].([]any)
		for _, k := range trust {
			if p, ok := k.(string); ok && !path.IsAbs(p) {
				need = append(need, path.Join(path.Dir(wantArgs[3]), p))
			} else if ok {
				need = append(need, p)
			}
		}
	}
	for _, f := range need {
		if !files[f] {
			t.Errorf("%s is not mounted (mounted: %v)", f, slices.Sorted(maps.Keys(files)))
		}
	}
}

func checkProbe(t *testing.T, name string, c *corev1.Container, p *corev1.Probe, wantPath string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an HTTPS GET of %s", name, wantPath)
		return
	}
	g := p.HTTPGet
	if g.Path != wantPath || g.Scheme != corev1.URISchemeHTTPS || containerPort(c, g.Port) != servingPort {
		t.Errorf("%s: %s %s port %s, want HTTPS %s port %d", name, g.Scheme, g.Path, g.Port.String(), wantPath, servingPort)
	}
}

// containerPort resolves a numbered or named port of c.
func containerPort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// mountedFiles lists the files c sees from ConfigMaps and Secrets. A
// Secret that is not in the manifests must be the one a Certificate
// writes (tls.crt, tls.key, ca.crt).
func mountedFiles(t *testing.T, m *manifests, c *corev1.Container, volumes []corev1.Volume) map[string]bool {
	t.Helper()
	keysOf := func(kind, name string) []string {
		switch kind {
		case "ConfigMap":
			if i := slices.IndexFunc(m.configMaps, func(cm *corev1.ConfigMap) bool { return cm.Name == name }); i >= 0 {
				return slices.Collect(maps.Keys(m.configMaps[i].Data))
			}
		case "Secret":
			if i := slices.IndexFunc(m.secrets, func(s *corev1.Secret) bool { return s.Name == name }); i >= 0 {
				return append(slices.Collect(maps.Keys(m.secrets[i].Data)), slices.Collect(maps.Keys(m.secrets[i].StringData))...)
			}
			if slices.ContainsFunc(m.certificates, func(cert certManagerObject) bool { return cert.spec["secretName"] == name }) {
				return []string{"tls.crt", "tls.key", "ca.crt"}
			}
		}
		t.Errorf("%s %s is mounted but neither defined in the manifests nor written by a Certificate", kind, name)
		return nil
	}
	files := map[string]bool{}
	add := func(dir, kind, name string, items []corev1.KeyToPath) {
		keys := keysOf(kind, name)
		if len(items) == 0 {
			for _, k := range keys {
				files[path.Join(dir, k)] = true
			}
			return
		}
		for _, it := range items {
			if keys != nil && !slices.Contains(keys, it.Key) {
				t.Errorf("%s %s has no key %s", kind, name, it.Key)
			}
			files[path.Join(dir, it.Path)] = true
		}
	}
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			t.Errorf("volumeMount %s: no such volume", vm.Name)
			continue
		}
		if vm.SubPath != "" {
			t.Errorf("volumeMount %s: subPath mounts are not updated when the ConfigMap or Secret changes", vm.Name)
		}
		v := volumes[i]
		switch {
		case v.ConfigMap != nil:
			add(vm.MountPath, "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items)
		case v.Secret != nil:
			add(vm.MountPath, "Secret", v.Secret.SecretName, v.Secret.Items)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ConfigMap != nil:
					add(vm.MountPath, "ConfigMap", s.ConfigMap.Name, s.ConfigMap.Items)
				case s.Secret != nil:
					add(vm.MountPath, "Secret", s.Secret.Name, s.Secret.Items)
				}
			}
		}
	}
	return files
}

func checkPDB(t *testing.T, m *manifests, d *appsv1.Deployment) {
	for _, p := range m.pdbs {
		if !selects(p.Spec.Selector, labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.Type != intstr.Int {
			t.Errorf("PodDisruptionBudget %s: want minAvailable as a number", p.Name)
			return
		}
		n := p.Spec.MinAvailable.IntVal
		if n < 2 {
			t.Errorf("PodDisruptionBudget %s: minAvailable %d, want at least 2", p.Name, n)
		}
		if d.Spec.Replicas != nil && n >= *d.Spec.Replicas {
			t.Errorf("PodDisruptionBudget %s: minAvailable %d of %d replicas blocks every node drain", p.Name, n, *d.Spec.Replicas)
		}
		return
	}
	t.Errorf("no PodDisruptionBudget selects the pods of %s", d.Name)
}

func checkService(t *testing.T, m *manifests, d *appsv1.Deployment) {
	c := webhookContainer(t, d)
	for _, s := range m.services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.Port == 443 && containerPort(c, p.TargetPort) == servingPort {
				return
			}
		}
		t.Errorf("Service %s: want port 443 to target container port %d", s.Name, servingPort)
		return
	}
	t.Errorf("no Service selects the pods of %s", d.Name)
}

func checkCertManager(t *testing.T, m *manifests) {
	issuers := map[string]certManagerObject{}
	for _, is := range m.issuers {
		issuers[is.name] = is
		var kinds []string
		for _, k := range []string{"selfSigned", "ca", "acme", "vault", "venafi"} {
			if _, ok := is.spec[k]; ok {
				kinds = append(kinds, k)
			}
		}
		if len(kinds) != 1 {
			t.Errorf("%s: Issuer %s must have exactly one of selfSigned, ca, acme, vault, venafi; has %v", is.where, is.name, kinds)
		}
		if ca, ok := is.spec["ca"].(map[string]any); ok && str(ca["secretName"]) == "" {
			t.Errorf("%s: Issuer %s: ca.secretName is required", is.where, is.name)
		}
	}
	svc := "airlock-webhook." + systemNamespace + ".svc"
	serving := false
	for _, c := range m.certificates {
		if str(c.spec["secretName"]) == "" {
			t.Errorf("%s: Certificate %s: spec.secretName is required", c.where, c.name)
		}
		ref, _ := c.spec["issuerRef"].(map[string]any)
		name := str(ref["name"])
		if name == "" {
			t.Errorf("%s: Certificate %s: spec.issuerRef.name is required", c.where, c.name)
		} else if k := str(ref["kind"]); k == "" || k == "Issuer" {
			if _, ok := issuers[name]; !ok {
				t.Errorf("%s: Certificate %s: Issuer %s is not in the manifests", c.where, c.name, name)
			}
		}
		if c.spec["secretName"] == "airlock-webhook-tls" {
			serving = true
			dns, _ := c.spec["dnsNames"].([]any)
			if !slices.Contains(dns, any(svc)) {
				t.Errorf("%s: Certificate %s: dnsNames %v lack %s, the name the API server calls", c.where, c.name, dns, svc)
			}
		}
	}
	if !serving {
		t.Error("no Certificate writes Secret airlock-webhook-tls")
	}
}

func checkAdmissionConfig(t *testing.T, m *manifests) {
	cfg := admissionConfig(t, m)
	if cfg == nil {
		t.Fatal("no ConfigMap has an admission.yaml key")
	}
	for _, k := range []string{"releases", "trust", "environments"} {
		if l, ok := cfg[k].([]any); !ok || len(l) == 0 {
			t.Errorf("admission.yaml: %s must be a non-empty list", k)
		}
	}
}

// admissionConfig is admission.yaml from the ConfigMap, as a map; nil when
// there is none.
func admissionConfig(t *testing.T, m *manifests) map[string]any {
	t.Helper()
	for _, cm := range m.configMaps {
		s, ok := cm.Data["admission.yaml"]
		if !ok {
			continue
		}
		var cfg map[string]any
		if err := yaml.UnmarshalStrict([]byte(s), &cfg); err != nil {
			t.Errorf("ConfigMap %s: admission.yaml: %v", cm.Name, err)
			return nil
		}
		return cfg
	}
	return nil
}

// selects reports whether sel selects set; a missing or empty selector
// selects nothing here.
func selects(sel *metav1.LabelSelector, set labels.Set) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(set)
}

// parseGoMemLimit parses GOMEMLIMIT as the Go runtime does: a number of
// bytes with an optional B, KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
