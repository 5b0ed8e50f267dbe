package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/admission"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/airlock-dev/airlock/registry/sign"
)

// TestWebhookCorpus runs `airlock webhook serve` over HTTPS against a real
// registry holding releases with signed verdicts (made here with the
// gate's predicate and a real key, not by running the gate), and sends it
// AdmissionReview requests built from k8s.io/api types: allowed, denied
// for each rule, warn mode, malformed and oversized requests, kinds it
// does not read. Then the registry goes away: the warm cache keeps
// answering and a cold release is denied within the timeout. Then the
// certificate is replaced on disk and served without a restart.
func TestWebhookCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry and the webhook")
	}
	bin := buildAirlock(t)
	work := t.TempDir()
	ctx := context.Background()
	reg := regtest.Airlock(t, server.Config{})
	repo := reg.Host + "/acme/support-bot"

	// Releases: distinct digests from copies of the example.
	push := func(variant string) string {
		t.Helper()
		dir := filepath.Join(work, "src-"+variant)
		copyDir(t, filepath.Join("..", "..", "examples", "support-bot"), dir)
		f, err := os.OpenFile(filepath.Join(dir, "prompts", "system.md"), os.O_APPEND|os.O_WRONLY, 0)
		must(t, err)
		fmt.Fprintf(f, "\n<!-- %s -->\n", variant)
		must(t, f.Close())
		out, err := exec.Command(bin, "push", dir, repo+":"+variant).CombinedOutput()
		if err != nil {
			t.Fatalf("push %s: %v\n%s", variant, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		_, d, ok := strings.Cut(lines[len(lines)-1], "@")
		if !ok {
			t.Fatalf("push printed no digest:\n%s", out)
		}
		return d
	}
	priv, pub, err := sign.GenerateKeyPair([]byte("test"))
	must(t, err)
	signer, err := sign.LoadSigner(priv, []byte("test"))
	must(t, err)
	otherPriv, _, err := sign.GenerateKeyPair([]byte("test"))
	must(t, err)
	other, err := sign.LoadSigner(otherPriv, []byte("test"))
	must(t, err)
	now := time.Now().UTC()
	attest := func(s *sign.Signer, d, env, outcome string, expires time.Time) {
		t.Helper()
		v := gate.Verdict{Schema: gate.VerdictType, DecisionID: "test-" + env + "-" + outcome, Subject: gate.Subject{Ref: repo, Digest: d},
			Environment: env, Outcome: outcome, Revision: "sha256:test", Time: now.Add(-time.Hour), Expires: expires, Stage: "ci",
			Reasons: []gate.Reason{}, Warnings: []gate.Reason{}, Evidence: []gate.EvidenceRef{}}
		if outcome == gate.Fail {
			v.Reasons = []gate.Reason{{Policy: "quality", Rule: "deny", Msg: "suite \"golden\" passes 33.3%"}}
		}
		b, err := json.Marshal(v)
		must(t, err)
		ref, err := registry.ParseRef(repo)
		must(t, err)
		must(t, sign.Attest(ctx, ref, digest.Digest(d), s, gate.VerdictType, b, sign.Remote{PlainHTTP: true}))
	}
	later := now.Add(24 * time.Hour)
	good := push("good")
	attest(signer, good, "prod", gate.Pass, later)
	attest(signer, good, "staging", gate.Pass, later)
	cold := push("cold") // passes, but is never asked for before the outage
	attest(signer, cold, "prod", gate.Pass, later)
	unsigned := push("unsigned")
	failed := push("failed")
	attest(signer, failed, "prod", gate.Fail, later)
	expired := push("expired")
	attest(signer, expired, "prod", gate.Pass, now.Add(-time.Minute))
	stagingOnly := push("staging-only")
	attest(signer, stagingOnly, "staging", gate.Pass, later)
	untrusted := push("untrusted")
	attest(other, untrusted, "prod", gate.Pass, later)
	revoked := push("revoked")
	attest(signer, revoked, "prod", gate.Pass, later)
	// Outside acme/*: a model release found by its artifact type, and a
	// container image that is not one.
	out, err := exec.Command(bin, "push", filepath.Join(work, "src-unsigned"), reg.Host+"/other/bot:1").CombinedOutput()
	must(t, err)
	typedLines := strings.Split(strings.TrimSpace(string(out)), "\n")
	typed := typedLines[len(typedLines)-1]
	img, err := random.Image(512, 1)
	must(t, err)
	imgRef, err := name.ParseReference(reg.Host+"/other/server:1", name.Insecure)
	must(t, err)
	must(t, remote.Write(imgRef, img))
	imgDigest, err := img.Digest()
	must(t, err)

	at := func(d string) string { return repo + "@" + d }

	// Break-glass: a key for exceptions, exceptions made by the command
	// and by hand (expired, untrusted).
	bgPriv, bgPub, err := sign.GenerateKeyPair([]byte("test"))
	must(t, err)
	bgKey := filepath.Join(work, "breakglass.key")
	must(t, os.WriteFile(bgKey, bgPriv, 0o600))
	must(t, os.WriteFile(filepath.Join(work, "breakglass.pub"), bgPub, 0o644))
	exception := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"webhook", "exception", "--key", bgKey, "--by", "alice@example.com", "--ticket", "INC-7",
			"--reason", "roll back during the registry outage"}, args...)...)
		cmd.Env = append(os.Environ(), "AIRLOCK_PASSWORD=test")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("webhook exception: %v", err)
		}
		_, v, ok := strings.Cut(strings.TrimSpace(string(out)), ": ")
		if !ok {
			t.Fatalf("webhook exception printed %q", out)
		}
		return v
	}
	handMade := func(s *sign.Signer, e admission.Exception) string {
		t.Helper()
		b, err := json.Marshal(e)
		must(t, err)
		sig, err := s.SignMessage(bytes.NewReader(b))
		must(t, err)
		return admission.EncodeException(b, sig)
	}
	bgSigner, err := sign.LoadSigner(bgPriv, []byte("test"))
	must(t, err)
	exUnsigned := exception("--digest", unsigned, "--digest", revoked, "--namespace", "prod-*", "--ttl", "2h")
	exOtherNS := exception("--digest", unsigned, "--namespace", "staging")
	exExpired := handMade(bgSigner, admission.Exception{Schema: admission.ExceptionSchema, Digests: []string{unsigned}, Namespace: "prod-*",
		By: "bob", Reason: "old", Ticket: "INC-1", Issued: now.Add(-3 * time.Hour), Expires: now.Add(-time.Hour)})
	exUntrusted := handMade(other, admission.Exception{Schema: admission.ExceptionSchema, Digests: []string{unsigned}, Namespace: "prod-*",
		By: "mallory", Reason: "because", Ticket: "none", Issued: now, Expires: now.Add(time.Hour)})
	exTooLong := handMade(bgSigner, admission.Exception{Schema: admission.ExceptionSchema, Digests: []string{unsigned}, Namespace: "prod-*",
		By: "bob", Reason: "long", Ticket: "INC-2", Issued: now, Expires: now.Add(48 * time.Hour)})
	keyFile := filepath.Join(work, "release.pub")
	must(t, os.WriteFile(keyFile, pub, 0o644))
	config := filepath.Join(work, "admission.yaml")
	must(t, os.WriteFile(config, []byte(fmt.Sprintf(`releases:
  - registry: %[1]s
    repository: "acme/*"
  - registry: %[1]s
    artifact_type: application/vnd.cncf.model.manifest.v1+json
trust: [release.pub]
environments:
  - {namespace: "prod-*", environment: prod}
  - {namespace: staging, environment: staging}
modes:
  - {namespace: staging, mode: warn}
revoked: [%[2]s]
timeout: 3s
max_request_bytes: 65536
break_glass: {trust: [breakglass.pub], max_ttl: 24h}
policies: {dirs: [policies]}
`, reg.Host, revoked)), 0o644))
	// An admission policy of the gate's input schema: in prod-locked only
	// the GitOps controller deploys; a break-glass admission is flagged.
	must(t, os.MkdirAll(filepath.Join(work, "policies"), 0o755))
	must(t, os.WriteFile(filepath.Join(work, "policies", "deployers.rego"), []byte(`package airlock.gate.deployers

deny contains sprintf("%s may not deploy to %s; only Argo CD does", [input.admission.user, input.admission.namespace]) if {
	input.stage == "admission"
	input.admission.namespace == "prod-locked"
	not startswith(input.admission.user, "system:serviceaccount:argocd:")
}

warn contains "admitted by a break-glass exception: open an incident review" if input.admission.break_glass
`), 0o644))
	certFile, keyPEM := filepath.Join(work, "tls.crt"), filepath.Join(work, "tls.key")
	serial1 := writeCert(t, certFile, keyPEM)

	addr, err := regtest.FreeLoopbackAddr()
	must(t, err)
	srv := exec.Command(bin, "webhook", "serve", "--config", config, "--addr", addr,
		"--tls-cert", certFile, "--tls-key", keyPEM, "--tls-check", "100ms", "--config-check", "100ms", "--log-format", "json")
	var logs regtest.LockedBuffer
	srv.Stdout, srv.Stderr = &logs, &logs
	must(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
		if t.Failed() {
			t.Logf("webhook log:\n%s", tail(logs.String(), 4000))
		}
	})
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the test checks the serial itself
		DisableKeepAlives: true,
	}}
	base := "https://" + addr
	waitHTTP(t, hc, base+"/healthz")

	type want struct {
		status   int    // HTTP status (200 when an AdmissionReview answers)
		allowed  bool   // the answer's allowed
		msg      string // in the denial message (or the 4xx body)
		warning  string // in a warning
		decision string // the audit annotation
	}
	type tcase struct {
		name string
		body []byte
		want want
	}
	var cases []tcase
	add := func(name string, body []byte, w want) { cases = append(cases, tcase{name, body, w}) }
	review := func(ns string, op admissionv1.Operation, gvk metav1.GroupVersionKind, obj any, mod ...func(*admissionv1.AdmissionRequest)) []byte {
		raw, err := json.Marshal(obj)
		must(t, err)
		req := &admissionv1.AdmissionRequest{UID: types.UID("uid-" + strings.ToLower(gvk.Kind)), Kind: gvk, Namespace: ns, Operation: op,
			Name: "x", Object: runtime.RawExtension{Raw: raw}}
		for _, m := range mod {
			m(req)
		}
		b, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
		must(t, err)
		return b
	}
	podGVK := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	pod := func(images ...string) *corev1.Pod {
		p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "x"}}
		for i, im := range images {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: im})
		}
		return p
	}
	ok := want{status: 200, allowed: true, decision: "allowed"}
	denied := func(msg string) want { return want{status: 200, msg: msg, decision: "denied"} }
	const server = "registry.k8s.io/pause:3.10" // not a model release

	// Pods: each rule.
	add("pod with a passing release", review("prod-a", admissionv1.Create, podGVK, pod(at(good), server)), ok)
	add("pod with a tag", review("prod-a", admissionv1.Create, podGVK, pod(repo+":good")), denied("pin it: "+repo+"@"+good))
	add("pod with an unknown tag", review("prod-a", admissionv1.Create, podGVK, pod(repo+":nope")), denied("the tag did not resolve"))
	add("pod with no tag or digest", review("prod-a", admissionv1.Create, podGVK, pod(repo)), denied(`is the tag "latest"`))
	add("pod with an unsigned release", review("prod-a", admissionv1.Create, podGVK, pod(at(unsigned))), denied("has no signed verdict"))
	add("pod with a failed verdict", review("prod-a", admissionv1.Create, podGVK, pod(at(failed))), denied("is fail: suite"))
	add("pod with an expired verdict", review("prod-a", admissionv1.Create, podGVK, pod(at(expired))), denied("has no signed verdict"))
	add("pod with a verdict for another environment", review("prod-a", admissionv1.Create, podGVK, pod(at(stagingOnly))), denied(`for environment "staging", not "prod"`))
	add("pod with a verdict by an untrusted key", review("prod-a", admissionv1.Create, podGVK, pod(at(untrusted))), denied("has no signed verdict"))
	add("pod with a revoked release", review("prod-a", admissionv1.Create, podGVK, pod(at(revoked))), denied("is revoked"))
	add("pod without a model release", review("prod-a", admissionv1.Create, podGVK, pod(server)), ok)
	add("pod naming one release twice", review("prod-a", admissionv1.Create, podGVK, pod(at(good), at(good))), ok)
	add("pod with two problems", review("prod-a", admissionv1.Create, podGVK, pod(at(failed), at(unsigned))), denied("has no signed verdict"))
	add("namespace without an environment", review("other", admissionv1.Create, podGVK, pod(at(good))), denied(`namespace "other" has no environment`))
	add("dry run is answered the same", review("prod-a", admissionv1.Create, podGVK, pod(at(unsigned)), func(r *admissionv1.AdmissionRequest) {
		dry := true
		r.DryRun = &dry
	}), denied("has no signed verdict"))
	add("update is checked", review("prod-a", admissionv1.Update, podGVK, pod(at(unsigned))), denied("has no signed verdict"))

	// Break-glass.
	withException := func(v string, images ...string) *corev1.Pod {
		p := pod(images...)
		p.Annotations = map[string]string{"airlock.dev/break-glass": v}
		return p
	}
	add("break-glass admits a release without a verdict", review("prod-a", admissionv1.Create, podGVK, withException(exUnsigned, at(unsigned))),
		want{status: 200, allowed: true, warning: "break-glass exception by alice@example.com (ticket INC-7", decision: "allowed"})
	add("break-glass does not lift the kill-switch", review("prod-a", admissionv1.Create, podGVK, withException(exUnsigned, at(revoked))), denied("is revoked"))
	add("break-glass does not admit a digest it does not name", review("prod-a", admissionv1.Create, podGVK, withException(exUnsigned, at(failed))), denied("is fail"))
	add("break-glass for another namespace", review("prod-a", admissionv1.Create, podGVK, withException(exOtherNS, at(unsigned))),
		want{status: 200, msg: "has no signed verdict", warning: `is for namespace "staging", not "prod-a"`, decision: "denied"})
	add("expired break-glass", review("prod-a", admissionv1.Create, podGVK, withException(exExpired, at(unsigned))),
		want{status: 200, msg: "has no signed verdict", warning: "expired at", decision: "denied"})
	add("break-glass by an untrusted key", review("prod-a", admissionv1.Create, podGVK, withException(exUntrusted, at(unsigned))),
		want{status: 200, msg: "has no signed verdict", warning: "not by a trusted break-glass key", decision: "denied"})
	add("break-glass longer than allowed", review("prod-a", admissionv1.Create, podGVK, withException(exTooLong, at(unsigned))),
		want{status: 200, msg: "has no signed verdict", warning: "longer than the 24h0m0s allowed", decision: "denied"})
	add("garbled break-glass", review("prod-a", admissionv1.Create, podGVK, withException("not-an-exception", at(unsigned))),
		want{status: 200, msg: "has no signed verdict", warning: "not PAYLOAD.SIGNATURE", decision: "denied"})
	bgTmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"airlock.dev/break-glass": exUnsigned}}, Spec: pod(at(unsigned)).Spec}
	add("break-glass on a deployment's pod template", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: bgTmpl}}), want{status: 200, allowed: true, warning: "break-glass exception by", decision: "allowed"})

	// Releases known by their artifact type.
	add("a model release outside the patterns, by artifact type", review("prod-a", admissionv1.Create, podGVK, pod(typed)), denied("has no signed verdict"))
	add("a container image in that registry is not a release", review("prod-a", admissionv1.Create, podGVK, pod(reg.Host+"/other/server@"+imgDigest.String())), ok)
	add("an artifact type that cannot be read", review("prod-a", admissionv1.Create, podGVK, pod(reg.Host+"/other/missing:1")), denied("could not tell whether it is a model release"))

	// Admission policies.
	as := func(user string) func(*admissionv1.AdmissionRequest) {
		return func(r *admissionv1.AdmissionRequest) { r.UserInfo.Username = user }
	}
	add("policy denies a user", review("prod-locked", admissionv1.Create, podGVK, pod(at(good)), as("alice")),
		denied("policy deployers: alice may not deploy to prod-locked"))
	add("policy admits its deployer", review("prod-locked", admissionv1.Create, podGVK, pod(at(good)), as("system:serviceaccount:argocd:argocd-application-controller")), ok)
	add("policy sees a break-glass admission", review("prod-a", admissionv1.Create, podGVK, withException(exUnsigned, at(unsigned))),
		want{status: 200, allowed: true, warning: "policy deployers: admitted by a break-glass exception", decision: "allowed"})

	// Warn mode.
	add("warn mode admits with a warning", review("staging", admissionv1.Create, podGVK, pod(at(unsigned))),
		want{status: 200, allowed: true, warning: "has no signed verdict", decision: "warned"})
	add("warn mode passes a staging verdict", review("staging", admissionv1.Create, podGVK, pod(at(stagingOnly))), ok)
	add("the kill-switch denies in warn mode too", review("staging", admissionv1.Create, podGVK, pod(at(revoked))), denied("is revoked"))

	// Every place a pod names a release.
	p := pod(server)
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: at(unsigned)}}
	add("init container", review("prod-a", admissionv1.Create, podGVK, p), denied("spec.initContainers[0].image"))
	p = pod(server)
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: at(unsigned)}}}
	add("ephemeral container", review("prod-a", admissionv1.Update, podGVK, p, func(r *admissionv1.AdmissionRequest) { r.SubResource = "ephemeralcontainers" }),
		denied("spec.ephemeralContainers[0].image"))
	p = pod(server)
	p.Spec.Volumes = []corev1.Volume{{Name: "model", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: at(unsigned)}}}}
	add("image volume", review("prod-a", admissionv1.Create, podGVK, p), denied("spec.volumes[0].image.reference"))
	p = pod(server)
	p.Spec.Volumes = []corev1.Volume{{Name: "model", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: at(good)}}}}
	add("image volume with a passing release", review("prod-a", admissionv1.Create, podGVK, p), ok)
	p = pod(server)
	p.Spec.InitContainers = []corev1.Container{{Name: "storage-initializer", Image: "kserve/storage-initializer:v0.15.0", Args: []string{"oci://" + at(unsigned), "/mnt/models"}}}
	add("storage-initializer argument", review("prod-a", admissionv1.Create, podGVK, p), denied("spec.initContainers[0].args[0]"))
	p = pod(server)
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "modelcar", Image: at(good)})
	add("modelcar with a passing release", review("prod-a", admissionv1.Create, podGVK, p), ok)

	// Pod templates.
	tmpl := corev1.PodTemplateSpec{Spec: pod(at(unsigned)).Spec}
	goodTmpl := corev1.PodTemplateSpec{Spec: pod(at(good)).Spec}
	add("deployment", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl}}), denied("spec.template.spec.containers[0].image"))
	add("deployment with a passing release", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: goodTmpl}}), ok)
	add("replicaset", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
		&appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: tmpl}}), denied("has no signed verdict"))
	add("statefulset", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
		&appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: tmpl}}), denied("has no signed verdict"))
	add("daemonset", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"},
		&appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: tmpl}}), denied("has no signed verdict"))
	add("job", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
		&batchv1.Job{Spec: batchv1.JobSpec{Template: tmpl}}), denied("has no signed verdict"))
	add("cronjob", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"},
		&batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}),
		denied("spec.jobTemplate.spec.template.spec.containers[0].image"))

	// KServe InferenceService (unstructured: KServe's types are not a
	// dependency).
	isvcGVK := metav1.GroupVersionKind{Group: "serving.kserve.io", Version: "v1beta1", Kind: "InferenceService"}
	isvc := func(predictor map[string]any) map[string]any {
		return map[string]any{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": map[string]any{"name": "x"},
			"spec": map[string]any{"predictor": predictor}}
	}
	add("inferenceservice storageUri", review("prod-a", admissionv1.Create, isvcGVK,
		isvc(map[string]any{"model": map[string]any{"modelFormat": map[string]any{"name": "huggingface"}, "storageUri": "oci://" + at(good)}})), ok)
	add("inferenceservice unsigned storageUri", review("prod-a", admissionv1.Create, isvcGVK,
		isvc(map[string]any{"model": map[string]any{"storageUri": "oci://" + at(unsigned)}})), denied("spec.predictor.model.storageUri"))
	add("inferenceservice storageUris with a tag", review("prod-a", admissionv1.Create, isvcGVK,
		isvc(map[string]any{"model": map[string]any{"storageUris": []any{map[string]any{"uri": "oci://" + repo + ":good", "mountPath": "/mnt/a"}}}})),
		denied("spec.predictor.model.storageUris[0].uri"))
	add("inferenceservice with an s3 model", review("prod-a", admissionv1.Create, isvcGVK,
		isvc(map[string]any{"sklearn": map[string]any{"storageUri": "s3://bucket/model"}})), ok)

	// Not read, or not read now.
	add("a kind it does not read", review("prod-a", admissionv1.Create, metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		&corev1.ConfigMap{Data: map[string]string{"image": at(unsigned)}}), want{status: 200, allowed: true, decision: "skipped"})
	add("delete", review("prod-a", admissionv1.Delete, podGVK, pod(at(unsigned))), want{status: 200, allowed: true, decision: "skipped"})

	// Malformed requests: a clear 4xx, or a denial with the reason.
	add("not JSON", []byte("{not json"), want{status: 400, msg: "not an AdmissionReview"})
	add("wrong apiVersion", []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}`), want{status: 400, msg: "only admission.k8s.io/v1"})
	add("no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), want{status: 400, msg: "has no request"})
	add("no uid", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`), want{status: 400, msg: "has no uid"})
	add("an object that does not decode", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"prod-a","operation":"CREATE","object":{"spec":"nonsense"}}}`),
		denied("does not decode"))
	add("no object", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"prod-a","operation":"CREATE"}}`),
		denied("carries no object"))
	big := pod(at(good))
	big.Annotations = map[string]string{"padding": strings.Repeat("x", 70000)}
	add("oversized", review("prod-a", admissionv1.Create, podGVK, big), want{status: 413, msg: "over 65536 bytes"})

	if len(cases) < 30 {
		t.Fatalf("the corpus has %d cases; the issue asks for at least 30", len(cases))
	}
	post := func(t *testing.T, body []byte) (int, string, *admissionv1.AdmissionResponse) {
		t.Helper()
		res, err := hc.Post(base+"/validate", "application/json", bytes.NewReader(body))
		must(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		must(t, err)
		if res.StatusCode != 200 {
			return res.StatusCode, string(b), nil
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(b, &out); err != nil || out.Response == nil {
			t.Fatalf("answer is not an AdmissionReview (%v): %s", err, b)
		}
		return 200, string(b), out.Response
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, res := post(t, c.body)
			if status != c.want.status {
				t.Fatalf("status %d, want %d: %s", status, c.want.status, body)
			}
			if res == nil {
				if !strings.Contains(body, c.want.msg) {
					t.Fatalf("body %q does not say %q", body, c.want.msg)
				}
				return
			}
			var in admissionv1.AdmissionReview
			must(t, json.Unmarshal(c.body, &in))
			if res.UID != in.Request.UID {
				t.Errorf("uid %q, want %q", res.UID, in.Request.UID)
			}
			if res.Allowed != c.want.allowed {
				t.Fatalf("allowed %t, want %t: %s", res.Allowed, c.want.allowed, body)
			}
			if got := res.AuditAnnotations["decision"]; got != c.want.decision {
				t.Errorf("decision annotation %q, want %q", got, c.want.decision)
			}
			if c.want.msg != "" && (res.Result == nil || !strings.Contains(res.Result.Message, c.want.msg)) {
				t.Errorf("denial does not say %q: %s", c.want.msg, body)
			}
			if !c.want.allowed && (res.Result == nil || res.Result.Code != 403) {
				t.Errorf("a denial should carry code 403: %s", body)
			}
			if c.want.warning != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), c.want.warning) {
				t.Errorf("warnings %q do not say %q", res.Warnings, c.want.warning)
			}
		})
	}
	t.Run("not POST", func(t *testing.T) {
		res, err := hc.Get(base + "/validate")
		must(t, err)
		res.Body.Close()
		if res.StatusCode != 405 {
			t.Fatalf("GET /validate: %d", res.StatusCode)
		}
	})
	t.Run("not JSON content", func(t *testing.T) {
		res, err := hc.Post(base+"/validate", "text/plain", strings.NewReader("x"))
		must(t, err)
		res.Body.Close()
		if res.StatusCode != 415 {
			t.Fatalf("text/plain: %d", res.StatusCode)
		}
	})
	metrics := func() string {
		res, err := hc.Get(base + "/metrics")
		must(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if m := metrics(); !strings.Contains(m, "airlock_admission_cache_hits_total") || strings.Contains(m, "airlock_admission_cache_hits_total 0\n") {
		t.Errorf("the passing release was asked for several times, yet no cache hit is counted:\n%s", grepLines(m, "airlock_admission_"))
	}

	// The registry goes away. A release in the cache is still admitted
	// without the network; one that is not is denied (registry_unavailable:
	// deny) within the timeout, saying why.
	reg.Close()
	t.Run("outage, warm cache", func(t *testing.T) {
		start := time.Now()
		_, body, res := post(t, review("prod-a", admissionv1.Create, podGVK, pod(at(good))))
		if res == nil || !res.Allowed {
			t.Fatalf("a cached pass was not admitted during the outage: %s", body)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the cached answer took %s", d)
		}
	})
	t.Run("outage, cold cache", func(t *testing.T) {
		start := time.Now()
		_, body, res := post(t, review("prod-a", admissionv1.Create, podGVK, pod(at(cold))))
		if res == nil || res.Allowed || !strings.Contains(res.Result.Message, "could not be read") {
			t.Fatalf("want a denial saying the verdicts could not be read: %s", body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("answered in %s, past the 3s timeout", d)
		}
	})
	if m := metrics(); strings.Contains(m, "airlock_admission_break_glass_total 0\n") {
		t.Errorf("break-glass uses are not counted:\n%s", grepLines(m, "airlock_admission_break"))
	}
	if m := metrics(); strings.Contains(m, "airlock_admission_registry_errors_total 0\n") {
		t.Errorf("the outage is not counted:\n%s", grepLines(m, "airlock_admission_registry"))
	}

	// The kill-switch is flipped on disk: the next answers deny the
	// cached release, without a restart; a broken config keeps the last
	// good one.
	t.Run("kill-switch reload", func(t *testing.T) {
		old, err := os.ReadFile(config)
		must(t, err)
		must(t, os.WriteFile(config, []byte(strings.Replace(string(old), "revoked: ["+revoked+"]", "revoked: ["+revoked+", "+good+"]", 1)), 0o644))
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, body, res := post(t, review("prod-a", admissionv1.Create, podGVK, pod(at(good))))
			if res != nil && !res.Allowed && strings.Contains(res.Result.Message, "is revoked") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("revoking on disk did not take effect: %s", body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		must(t, os.WriteFile(config, []byte("releases: [\n"), 0o644))
		deadline = time.Now().Add(10 * time.Second)
		for {
			res, err := hc.Get(base + "/readyz")
			must(t, err)
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(b), "config reload failed") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz does not report the broken config: %s", b)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, body, res := post(t, review("prod-a", admissionv1.Create, podGVK, pod(at(good)))); res == nil || res.Allowed || !strings.Contains(res.Result.Message, "is revoked") {
			t.Fatalf("a broken config must leave the last good one deciding: %s", body)
		}
	})

	// A new certificate on disk is served without a restart.
	t.Run("certificate reload", func(t *testing.T) {
		if got := servedSerial(t, addr); got.Cmp(serial1) != 0 {
			t.Fatalf("serving serial %s, want %s", got, serial1)
		}
		serial2 := writeCert(t, certFile, keyPEM)
		deadline := time.Now().Add(10 * time.Second)
		for servedSerial(t, addr).Cmp(serial2) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the new certificate was not picked up")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// writeCert writes a fresh certificate for 127.0.0.1 and returns its
// serial number.
func writeCert(t *testing.T, certFile, keyFile string) *big.Int {
	t.Helper()
	c, err := regtest.WriteLoopbackCert(certFile, keyFile)
	must(t, err)
	return c.SerialNumber
}

func servedSerial(t *testing.T, addr string) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	must(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func waitHTTP(t *testing.T, hc *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := hc.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	must(t, filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	}))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
