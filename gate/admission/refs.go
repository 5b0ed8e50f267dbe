package admission

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reference is one artifact an object would run or mount.
type Reference struct {
	// Field is where it is written ("spec.template.spec.containers[0].image").
	Field string
	// Value is the reference as written, without an oci:// scheme.
	Value string
}

// ErrNotChecked is returned by Extract for a kind the webhook does not
// read: such objects pass through.
var ErrNotChecked = fmt.Errorf("kind not checked")

// KServe names. KServe injects a storage-initializer init container that
// downloads the storageUri in its arguments, and for oci:// models a
// modelcar container (and modelcar-init) whose image is the model: that
// image is read like any container's.
const (
	kserveGroup            = "serving.kserve.io"
	storageInitializerName = "storage-initializer"
)

// Extract lists the references in an object of kind gvk (raw is its JSON).
// Pods and the pod templates of Deployments, ReplicaSets, StatefulSets,
// DaemonSets, Jobs and CronJobs are read whole (containers, init and
// ephemeral containers, image volumes, storage-initializer arguments);
// KServe InferenceServices by their storageUri and storageUris (oci://
// ones) and component containers. Other kinds give ErrNotChecked. An
// object that does not decode is an error.
func Extract(gvk metav1.GroupVersionKind, raw []byte) ([]Reference, error) {
	read, ok := readers[metav1.GroupKind{Group: gvk.Group, Kind: gvk.Kind}]
	if !ok {
		return nil, ErrNotChecked
	}
	refs, err := read(raw)
	if err != nil {
		return nil, fmt.Errorf("the %s object does not decode: %w", gvk.Kind, err)
	}
	return refs, nil
}

// readers read the kinds Extract knows, each decoded into its own type.
var readers = map[metav1.GroupKind]func([]byte) ([]Reference, error){
	{Kind: "Pod"}:                        pods("spec", func(o *corev1.Pod) *corev1.PodSpec { return &o.Spec }),
	{Group: "apps", Kind: "Deployment"}:  pods("spec.template.spec", func(o *appsv1.Deployment) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	{Group: "apps", Kind: "ReplicaSet"}:  pods("spec.template.spec", func(o *appsv1.ReplicaSet) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	{Group: "apps", Kind: "StatefulSet"}: pods("spec.template.spec", func(o *appsv1.StatefulSet) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	{Group: "apps", Kind: "DaemonSet"}:   pods("spec.template.spec", func(o *appsv1.DaemonSet) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	{Group: "batch", Kind: "Job"}:        pods("spec.template.spec", func(o *batchv1.Job) *corev1.PodSpec { return &o.Spec.Template.Spec }),
	{Group: "batch", Kind: "CronJob"}: pods("spec.jobTemplate.spec.template.spec",
		func(o *batchv1.CronJob) *corev1.PodSpec { return &o.Spec.JobTemplate.Spec.Template.Spec }),
	{Group: kserveGroup, Kind: "InferenceService"}: func(raw []byte) ([]Reference, error) {
		var o struct {
			Spec map[string]any `json:"spec"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		return inferenceServiceRefs(o.Spec), nil
	},
}

// pods reads a kind T whose pod spec (at field path at) spec returns.
func pods[T any](at string, spec func(*T) *corev1.PodSpec) func([]byte) ([]Reference, error) {
	return func(raw []byte) ([]Reference, error) {
		var o T
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		return podRefs(at, spec(&o)), nil
	}
}

func podRefs(at string, s *corev1.PodSpec) []Reference {
	var out []Reference
	add := func(field, v string) {
		if v != "" {
			out = append(out, Reference{Field: field, Value: v})
		}
	}
	containers := func(kind string, cs []corev1.Container) {
		for i, c := range cs {
			field := fmt.Sprintf("%s.%s[%d]", at, kind, i)
			add(field+".image", c.Image)
			if c.Name == storageInitializerName {
				for j, a := range c.Args {
					if v, ok := strings.CutPrefix(a, "oci://"); ok {
						add(fmt.Sprintf("%s.args[%d]", field, j), v)
					}
				}
			}
		}
	}
	containers("initContainers", s.InitContainers)
	containers("containers", s.Containers)
	for i, c := range s.EphemeralContainers {
		add(fmt.Sprintf("%s.ephemeralContainers[%d].image", at, i), c.Image)
	}
	for i, v := range s.Volumes {
		if v.Image != nil {
			add(fmt.Sprintf("%s.volumes[%d].image.reference", at, i), v.Image.Reference)
		}
	}
	return out
}

// inferenceServiceRefs reads an InferenceService's components (predictor,
// transformer, explainer): every storageUri and storageUris entry with
// the oci:// scheme, at any depth of the component (model, or a framework
// such as sklearn), and the images of its containers. Other schemes (s3://,
// hf://) are not OCI releases and are not references here.
func inferenceServiceRefs(spec map[string]any) []Reference {
	var out []Reference
	oci := func(field string, v any) {
		s, ok := v.(string)
		if !ok {
			return
		}
		if rest, ok := strings.CutPrefix(s, "oci://"); ok {
			out = append(out, Reference{Field: field, Value: rest})
		}
	}
	var walk func(field string, v any)
	walk = func(field string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				f := field + "." + k
				switch k {
				case "storageUri":
					oci(f, v[k])
				case "storageUris":
					if list, ok := v[k].([]any); ok {
						for i, e := range list {
							fi := fmt.Sprintf("%s[%d]", f, i)
							if m, ok := e.(map[string]any); ok {
								oci(fi+".uri", m["uri"])
							} else {
								oci(fi, e)
							}
						}
					}
				case "image":
					if s, ok := v[k].(string); ok && s != "" {
						out = append(out, Reference{Field: f, Value: s})
					}
				default:
					walk(f, v[k])
				}
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", field, i), e)
			}
		}
	}
	for _, c := range []string{"predictor", "transformer", "explainer"} {
		if comp, ok := spec[c]; ok {
			walk("spec."+c, comp)
		}
	}
	return out
}
