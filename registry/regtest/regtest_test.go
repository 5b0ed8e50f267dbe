package regtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestDistribution(t *testing.T) {
	s := Distribution(t)
	if !strings.HasPrefix(s.Host, "127.0.0.1:") || s.URL != "http://"+s.Host {
		t.Fatalf("Host %q, URL %q: want 127.0.0.1:PORT and http://127.0.0.1:PORT", s.Host, s.URL)
	}
	resp := do(t, http.MethodGet, s.URL+"/v2/", "", http.StatusOK)
	if got := resp.Header.Get("Docker-Distribution-Api-Version"); got != "registry/2.0" {
		t.Errorf("Docker-Distribution-Api-Version = %q, want registry/2.0", got)
	}

	// The config must allow deletion, and nothing may keep answering for a
	// deleted blob (distribution's in-memory descriptor cache does).
	blob := pushBlob(t, s.URL, "regtest/blob", "hello, registry")
	do(t, http.MethodHead, blob, "", http.StatusOK)
	do(t, http.MethodDelete, blob, "", http.StatusAccepted)
	do(t, http.MethodHead, blob, "", http.StatusNotFound)

	// An OCI 1.1 artifact manifest is accepted, but distribution v2.8 has no
	// referrers API: clients must fall back to the referrers tag schema.
	manifest := pushArtifact(t, s.URL, "regtest/artifact", "v1")
	do(t, http.MethodGet, s.URL+"/v2/regtest/artifact/referrers/"+manifest, "", http.StatusNotFound)
	// Distribution v2.8 hides an OCI manifest (404 MANIFEST_UNKNOWN) from a
	// client whose Accept header does not list the OCI manifest media type.
	do(t, http.MethodHead, s.URL+"/v2/regtest/artifact/manifests/v1", "", http.StatusNotFound)
}

func TestInProcess(t *testing.T) {
	s := InProcess(t)
	if !strings.HasPrefix(s.Host, "127.0.0.1:") || s.URL != "http://"+s.Host {
		t.Fatalf("Host %q, URL %q: want 127.0.0.1:PORT and http://127.0.0.1:PORT", s.Host, s.URL)
	}
	do(t, http.MethodGet, s.URL+"/v2/", "", http.StatusOK)
	manifest := pushArtifact(t, s.URL, "regtest/artifact", "v1")
	// The referrers API is on: it answers with an (empty) index, not 404.
	do(t, http.MethodGet, s.URL+"/v2/regtest/artifact/referrers/"+manifest, "", http.StatusOK)
}

func TestRunDistributionStop(t *testing.T) {
	bin := Tool(t, "docker-registry")
	p, err := RunDistribution(context.Background(), DistributionConfig{Dir: t.TempDir(), Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if resp, err := http.Get(p.URL + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("registry still answers after Stop: %s", resp.Status)
	}

	// A fixed address that is taken must fail rather than probe whatever
	// holds it.
	busy := InProcess(t)
	_, err = RunDistribution(context.Background(), DistributionConfig{Dir: t.TempDir(), Binary: bin, Addr: busy.Host})
	if err == nil {
		t.Fatalf("RunDistribution on busy %s succeeded", busy.Host)
	}
}

func TestRunDistributionContext(t *testing.T) {
	bin := Tool(t, "docker-registry")
	ctx, cancel := context.WithCancel(context.Background())
	p, err := RunDistribution(ctx, DistributionConfig{Dir: t.TempDir(), Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop after cancel: %v", err)
	}
}

func TestTool(t *testing.T) {
	if p := Tool(t, "docker-registry"); !strings.HasPrefix(p, "/") {
		t.Errorf("Tool(docker-registry) = %q, want an absolute path", p)
	}
	if _, err := FindTool("airlock-regtest-no-such-tool"); !errors.Is(err, ErrToolNotFound) {
		t.Errorf("FindTool(missing) error = %v, want ErrToolNotFound", err)
	}
	if _, err := RepoRoot(); err != nil {
		t.Errorf("RepoRoot: %v", err)
	}
}

// pushBlob uploads content to repo in two steps (POST, then PUT with the
// digest), which every registry supports, and returns the blob's URL.
func pushBlob(t *testing.T, base, repo, content string) string {
	t.Helper()
	dgst := digestOf(content)
	resp := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", http.StatusAccepted)
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("upload location: %v", err)
	}
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	do(t, http.MethodPut, loc.String(), content, http.StatusCreated)
	return base + "/v2/" + repo + "/blobs/" + url.PathEscape(dgst)
}

// pushArtifact pushes a one-layer OCI 1.1 artifact manifest (artifactType,
// empty config) tagged tag and returns its digest.
func pushArtifact(t *testing.T, base, repo, tag string) string {
	t.Helper()
	const empty = "{}"
	const layer = "artifact payload"
	pushBlob(t, base, repo, empty)
	pushBlob(t, base, repo, layer)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"artifactType":"application/vnd.airlock.regtest",`+
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/octet-stream","digest":"%s","size":%d}]}`,
		digestOf(empty), len(empty), digestOf(layer), len(layer))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, strings.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ociManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("PUT manifest: %s: %s", resp.Status, msg)
	}
	do(t, http.MethodHead, base+"/v2/"+repo+"/manifests/"+tag, "", http.StatusOK, "Accept", ociManifest)
	return digestOf(manifest)
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func digestOf(s string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s)))
}

// do sends one request, with headers given as name, value pairs, and fails
// the test unless the status is want.
func do(t *testing.T, method, target, body string, want int, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d: %s", method, target, resp.Status, want, msg)
	}
	return resp
}
