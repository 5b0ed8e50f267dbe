package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/registry/regtest"
	"github.com/airlock-dev/airlock/registry/server"
)

// TestSBOMCLI pushes the example to a real registry and asks for its
// ML-BOM: by tag and by digest the same bytes, on stdout or in a file,
// naming the pushed digest; a timestamp only with SOURCE_DATE_EPOCH; a
// non-release refused; --attach verified with airlock verify.
func TestSBOMCLI(t *testing.T) {
	isolate(t)
	srv := regtest.Airlock(t, server.Config{})
	ref := srv.Host + "/support-bot:1.4.0"
	code, out, errs := airlock(t, "push", example, ref)
	if code != ExitOK {
		t.Fatalf("push: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	pinned := lines[len(lines)-1]
	i := strings.Index(pinned, "@sha256:")
	if i < 0 {
		t.Fatalf("push printed %q, want a digest reference last", out)
	}
	hex := pinned[i+len("@sha256:"):]

	code, byTag, errs := airlock(t, "sbom", ref)
	if code != ExitOK {
		t.Fatalf("sbom: %d %s", code, errs)
	}
	var bom struct {
		BOMFormat, SpecVersion, SerialNumber string
		Metadata                             struct {
			Timestamp string
			Component struct {
				Name, Version, Purl string
				Hashes              []struct{ Alg, Content string }
			}
		}
		Components []struct {
			Type, Name string
			BOMRef     string `json:"bom-ref"`
		}
	}
	if err := json.Unmarshal([]byte(byTag), &bom); err != nil {
		t.Fatalf("sbom output is not JSON: %v\n%s", err, byTag)
	}
	rc := bom.Metadata.Component
	wantPURL := "pkg:oci/support-bot@sha256%3A" + hex + "?repository_url=" + srv.Host + "/support-bot"
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.6" || rc.Name != "support-bot" || rc.Version != "1.4.0" ||
		rc.Purl != wantPURL || len(rc.Hashes) != 1 || rc.Hashes[0].Content != hex || bom.Metadata.Timestamp != "" {
		t.Errorf("BOM header: %+v\nwant purl %s", bom, wantPURL)
	}
	if len(bom.Components) == 0 || bom.Components[0].Type != "machine-learning-model" || bom.Components[0].BOMRef != "model" {
		t.Errorf("first component is not the model: %+v", bom.Components)
	}
	if !strings.HasSuffix(byTag, "}\n") || !strings.Contains(byTag, "\n  \"bomFormat\"") {
		t.Errorf("not indented JSON ending in a newline")
	}

	file := filepath.Join(t.TempDir(), "bom.json")
	if code, out, errs := airlock(t, "sbom", srv.Host+"/support-bot@sha256:"+hex, "-o", file); code != ExitOK || out != "" {
		t.Fatalf("sbom by digest -o: %d %q %s", code, out, errs)
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != byTag {
		t.Errorf("by digest into a file differs from by tag on stdout (%v)", err)
	}

	t.Setenv(EnvSourceDateEpoch, "1700000000")
	if _, stamped, _ := airlock(t, "sbom", ref); !strings.Contains(stamped, `"timestamp": "2023-11-14T22:13:20Z"`) {
		t.Errorf("SOURCE_DATE_EPOCH not written as the timestamp")
	}
	t.Setenv(EnvSourceDateEpoch, "")

	// Usage errors, and a manifest that is not a release: the signature
	// cosign's tag layout writes.
	for name, args := range map[string][]string{
		"no tag":              {"sbom", srv.Host + "/support-bot"},
		"attach, no key":      {"sbom", ref, "--attach"},
		"key, no attach":      {"sbom", ref, "--key", "k.key"},
		"two references":      {"sbom", ref, ref},
		"unknown flag":        {"sbom", ref, "--xml"},
		"no host in ref":      {"sbom", "support-bot:1.4.0"},
		"no reference at all": {"sbom"},
	} {
		if code, _, errs := airlock(t, args...); code != ExitUsage {
			t.Errorf("%s: exit %d, want %d; %s", name, code, ExitUsage, errs)
		}
	}
	if code, _, errs := airlock(t, "sbom", srv.Host+"/support-bot:2.0.0"); code != ExitError || !strings.Contains(errs, "not found") {
		t.Errorf("missing tag: %d %s", code, errs)
	}

	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	t.Setenv(EnvPassword, "pw")
	if code, _, errs := airlock(t, "key", "generate", "--output-key-prefix", prefix); code != ExitOK {
		t.Fatalf("key generate: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "sign", ref, "--key", prefix+".key", "--layout", "tag"); code != ExitOK {
		t.Fatalf("sign: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "sbom", srv.Host+"/support-bot:sha256-"+hex+".sig"); code != ExitError || !strings.Contains(errs, "not an Airlock/ModelPack release") {
		t.Errorf("sbom of a signature manifest: %d %s", code, errs)
	}

	if code, _, errs := airlock(t, "verify", ref, "--key", prefix+".pub", "--attestations", "cyclonedx"); code != ExitDeny {
		t.Fatalf("verify --attestations cyclonedx before attaching: %d %s", code, errs)
	}
	code, attached, errs := airlock(t, "sbom", ref, "--attach", "--key", prefix+".key")
	if code != ExitOK || attached != byTag || !strings.Contains(errs, "Attached the ML-BOM") {
		t.Fatalf("sbom --attach: %d %s", code, errs)
	}
	if code, _, errs := airlock(t, "verify", ref, "--key", prefix+".pub", "--attestations", "cyclonedx"); code != ExitOK {
		t.Errorf("verify --attestations cyclonedx: %d %s", code, errs)
	}
}
