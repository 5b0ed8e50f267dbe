package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// run executes an interop tool and returns its stdout.
func run(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestInteropReadBack pushes releases with airlock to Debian's
// docker-registry and to Airlock's own registry, and reads them back with
// crane, regctl and skopeo: the bytes they get must be the bytes airlock
// pushed.
func TestInteropReadBack(t *testing.T) {
	t.Run("docker-registry", func(t *testing.T) { interopReadBack(t, regtest.Distribution(t)) })
	t.Run("airlock", func(t *testing.T) {
		interopReadBack(t, regtest.Airlock(t, server.Config{ImmutableReleaseTags: true}))
	})
}

func interopReadBack(t *testing.T, srv *regtest.Server) {
	crane := regtest.Tool(t, "crane")
	regctl := regtest.Tool(t, "regctl")
	skopeo := regtest.Tool(t, "skopeo")
	ctx := context.Background()
	c := newClient(t, client.Options{})

	// The example (small files, hashed first) and a release whose weights
	// are large enough to be streamed while hashed.
	bigDir, weights := bigRelease(t, 20<<20)
	releases := map[string]string{"acme/support-bot:1.4.0": example, "acme/big:1.0.0": bigDir}
	regHome := t.TempDir()
	regEnv := []string{"HOME=" + regHome}
	run(t, regEnv, regctl, "registry", "set", "--tls", "disabled", srv.Host)

	for name, dir := range releases {
		t.Run(name, func(t *testing.T) {
			r := ref(t, srv.Host+"/"+name)
			l := load(t, dir)
			res, err := c.PushDir(ctx, l, r, client.PushOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := res.Descriptor.Digest

			craneManifest := run(t, nil, crane, "manifest", "--insecure", r.String())
			if digest.FromBytes(craneManifest) != want {
				t.Errorf("crane manifest: digest %s, pushed %s", digest.FromBytes(craneManifest), want)
			}
			if d := strings.TrimSpace(string(run(t, nil, crane, "digest", "--insecure", r.String()))); d != want.String() {
				t.Errorf("crane digest = %s, pushed %s", d, want)
			}
			regManifest := run(t, regEnv, regctl, "manifest", "get", "--format", "raw-body", r.String())
			if !bytes.Equal(regManifest, craneManifest) {
				t.Errorf("regctl and crane read different manifests")
			}
			skopeoRaw := run(t, nil, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+r.String())
			if !bytes.Equal(skopeoRaw, craneManifest) {
				t.Errorf("skopeo and crane read different manifests")
			}

			for _, e := range l.Entries {
				file, err := os.ReadFile(e.Abs)
				if err != nil {
					t.Fatal(err)
				}
				blob := r.Name() + "@" + digest.FromBytes(file).String()
				if got := run(t, nil, crane, "blob", "--insecure", blob); !bytes.Equal(got, file) {
					t.Errorf("crane blob %s: %d bytes differ from the file", e.Path, len(got))
				}
				if got := run(t, regEnv, regctl, "blob", "get", r.Name(), digest.FromBytes(file).String()); !bytes.Equal(got, file) {
					t.Errorf("regctl blob get %s: %d bytes differ from the file", e.Path, len(got))
				}
			}
		})
	}
	if len(weights) == 0 {
		t.Fatal("no weights generated")
	}
}

// TestInteropReferrers checks inspect against a registry without the
// referrers API (referrers are found through the tag schema) and against
// Airlock's, which has it: either way with their artifactType.
func TestInteropReferrers(t *testing.T) {
	t.Run("docker-registry", func(t *testing.T) { interopReferrers(t, regtest.Distribution(t)) })
	t.Run("airlock", func(t *testing.T) { interopReferrers(t, regtest.Airlock(t, server.Config{})) })
}

func interopReferrers(t *testing.T, srv *regtest.Server) {
	c := newClient(t, client.Options{})
	ctx := context.Background()
	r := ref(t, srv.Host+"/acme/support-bot:1.4.0")
	res, err := c.PushDir(ctx, load(t, example), r, client.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := pushReferrer(t, c, r, res.Descriptor, "application/vnd.example.sbom+json")
	in, err := c.Inspect(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Referrers) != 1 || in.Referrers[0].Digest != want || in.Referrers[0].ArtifactType != "application/vnd.example.sbom+json" {
		t.Fatalf("referrers %+v (%s)", in.Referrers, in.ReferrersError)
	}
}

// TestInteropDockerCredentials pushes and pulls through a registry that
// requires basic authentication, with credentials only in a Docker
// config.json, as `docker login` writes it.
func TestInteropDockerCredentials(t *testing.T) {
	bin := regtest.Tool(t, "docker-registry")
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	must(t, os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600))
	p, err := regtest.RunDistribution(context.Background(), regtest.DistributionConfig{Dir: filepath.Join(dir, "reg"), Binary: bin, Htpasswd: htpasswd})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	ctx := context.Background()
	r := ref(t, p.Host+"/acme/support-bot:1.4.0")

	anon := newClient(t, client.Options{})
	if _, err := anon.PushDir(ctx, load(t, example), r, client.PushOptions{}); !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), "docker login") {
		t.Fatalf("push without credentials: %v", err)
	}

	login := func(password string) *client.Client {
		cfg := filepath.Join(t.TempDir(), "config.json")
		auth := base64.StdEncoding.EncodeToString([]byte("ci:" + password))
		must(t, os.WriteFile(cfg, []byte(`{"auths":{"`+p.Host+`":{"auth":"`+auth+`"}}}`), 0o600))
		c, err := client.New(client.Options{DockerConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := login("wrong").PushDir(ctx, load(t, example), r, client.PushOptions{}); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("push with a wrong password: %v", err)
	}
	c := login("s3cret")
	res, err := c.PushDir(ctx, load(t, example), r, client.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, res.Ref, t.TempDir(), client.PullOptions{Roles: []registry.Role{registry.RolePrompt}}); err != nil {
		t.Fatal(err)
	}
}

// TestInteropCosign signs a release pushed by airlock with the real cosign
// CLI (v2.6.5, key-based, no transparency log), in both of cosign's
// layouts: the legacy sha256-<hex>.sig tag and an OCI 1.1 referrer. The
// registry must store what cosign writes, cosign must verify it, and
// airlock inspect must list the referrer with cosign's artifactType.
func TestInteropCosign(t *testing.T) {
	cosign := regtest.Tool(t, "cosign")
	srv := regtest.Airlock(t, server.Config{ImmutableReleaseTags: true})
	ctx := context.Background()
	c := newClient(t, client.Options{})
	r := ref(t, srv.Host+"/acme/support-bot:1.4.0")
	res, err := c.PushDir(ctx, load(t, example), r, client.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := []string{"COSIGN_PASSWORD=test", "COSIGN_YES=true", "COSIGN_EXPERIMENTAL=1", "HOME=" + dir, "DOCKER_CONFIG=" + dir, "SIGSTORE_NO_CACHE=1", "TUF_ROOT=" + dir}
	runIn := func(args ...string) []byte {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, cosign, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	runIn("generate-key-pair")
	pinned := res.Ref.Name() + "@" + res.Descriptor.Digest.String()

	// Legacy layout: a .sig tag next to the release.
	runIn("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", pinned)
	runIn("verify", "--key", "cosign.pub", "--insecure-ignore-tlog", "--allow-insecure-registry", pinned)
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Resolve(ctx, "sha256-"+res.Descriptor.Digest.Encoded()+".sig"); err != nil {
		t.Fatalf("no legacy signature tag: %v", err)
	}

	// OCI 1.1 layout: a referrer whose subject is the release.
	runIn("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "--registry-referrers-mode=oci-1-1", pinned)
	in, err := c.Inspect(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Referrers) == 0 {
		t.Fatalf("cosign's OCI 1.1 signature is not listed as a referrer (%s)", in.ReferrersError)
	}
	for _, d := range in.Referrers {
		if d.ArtifactType == "" {
			t.Errorf("referrer %s has no artifactType", d.Digest)
		}
	}
}
