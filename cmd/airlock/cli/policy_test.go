package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
)

// pushBlob uploads b to repo with the distribution API's monolithic
// POST-then-PUT.
func pushBlob(t *testing.T, base, repo string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	res, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("starting an upload: %v %v", err, res)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+d.String(), bytes.NewReader(b))
	res, err = http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("finishing an upload: %v %v", err, res)
	}
	res.Body.Close()
	return d
}

// TestPolicyBundleFromRegistry pushes an OPA bundle (a .tar.gz layer, as
// opa build writes it and oras pushes it) to a real registry and gates an
// input with it: the bundle's policy decides beside the built-ins.
func TestPolicyBundleFromRegistry(t *testing.T) {
	isolate(t)
	srv := regtest.Airlock(t, server.Config{})
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	src := "package airlock.gate.owner\n\ndeny contains \"the release names no owner\" if not input.release.owner\n"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tw.WriteHeader(&tar.Header{Name: "/owner/policy.rego", Mode: 0o644, Size: int64(len(src))}))
	_, err := tw.Write([]byte(src))
	must(err)
	must(tw.Close())
	must(gz.Close())
	layer := pushBlob(t, srv.URL, "policies/gate", tgz.Bytes())
	cfg := []byte("{}")
	cfgDigest := pushBlob(t, srv.URL, "policies/gate", cfg)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":%d}]}`,
		cfgDigest, len(cfg), layer, tgz.Len())
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/policies/gate/manifests/v1", strings.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("pushing the bundle manifest: %v %v", err, res)
	}
	res.Body.Close()

	dir := t.TempDir()
	config := filepath.Join(dir, "gate.yaml")
	must(os.WriteFile(config, []byte("environment: prod\npolicies: {bundle: "+srv.Host+"/policies/gate:v1}\n"), 0o644))
	b, err := os.ReadFile("../../../policies/testdata/base.yaml")
	must(err)
	var base map[string]any
	must(yaml.Unmarshal(b, &base))
	for _, owner := range []string{"team-support", ""} {
		rel := base["release"].(map[string]any)
		if owner == "" {
			delete(rel, "owner")
		}
		raw, err := json.Marshal(base)
		must(err)
		input := filepath.Join(dir, "input.json")
		must(os.WriteFile(input, raw, 0o644))
		code, out, stderr := airlock(t, "gate", "--input", input, "--config", config, "--at", "2026-12-01T12:00:00Z", "--format", "json")
		var rep struct {
			Decision struct {
				Outcome  string
				Policies []string
				Deny     []struct{ Policy, Msg string }
			}
		}
		must(json.Unmarshal([]byte(out), &rep))
		hasOwner := false
		for _, p := range rep.Decision.Policies {
			hasOwner = hasOwner || p == "owner"
		}
		if !hasOwner {
			t.Fatalf("the bundle's policy was not loaded: %v (%s)", rep.Decision.Policies, stderr)
		}
		switch {
		case owner != "" && (code != 0 || rep.Decision.Outcome != "pass"):
			t.Errorf("with an owner: exit %d, %+v", code, rep.Decision)
		case owner == "" && (code != 1 || len(rep.Decision.Deny) != 1 || rep.Decision.Deny[0].Policy != "owner"):
			t.Errorf("without an owner: exit %d, %+v", code, rep.Decision)
		}
	}
}
