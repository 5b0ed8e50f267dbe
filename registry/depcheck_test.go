package registry_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph pins DESIGN.md §2's import rules: each third-party SDK
// stays in its one package, and registry never depends on the gate side.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Imports", "github.com/airlock-dev/airlock/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/airlock-dev/airlock/"
	// owner: package → the only packages (prefix match) allowed to import it.
	owners := map[string][]string{
		"oras.land/oras-go": {mod + "registry/client"},
		// registry/sign speaks to registries through cosign's library,
		// whose API is go-containerregistry's.
		"github.com/google/go-containerregistry": {mod + "registry/regtest", mod + "registry/sign", mod + "bench/"},
		"github.com/sigstore/":                   {mod + "registry/sign"},
		"github.com/CycloneDX/cyclonedx-go":      {mod + "registry/sbom"},
		"github.com/NVIDIA/go-nvml":              {mod + "runner/gpu"},
		"github.com/spf13/cobra":                 {mod + "cmd/"},
		// OPA is embedded by gate/rego alone; bench/gate builds the opa
		// CLI as its reference.
		"github.com/open-policy-agent/opa": {mod + "gate/rego", mod + "bench/"},
		// Kubernetes' API types are the webhook's alone (and its tests and
		// benchmark build reviews with them). The slash keeps the prefix
		// from matching k8s.io/apimachinery, which has its own entry.
		"k8s.io/api/": {mod + "gate/admission", mod + "cmd/", mod + "bench/"},
		// client-go is the Gateway API actuator's alone: it edits
		// HTTPRoutes through the dynamic client (cmd/ may build the client).
		"k8s.io/client-go": {mod + "gate/canary/gatewayapi", mod + "cmd/"},
		// apimachinery (object metadata, unstructured content, API errors)
		// goes with the two packages that speak to Kubernetes.
		"k8s.io/apimachinery": {mod + "gate/admission", mod + "gate/canary/gatewayapi", mod + "cmd/", mod + "bench/"},
		"gopkg.in/yaml.v3":    {mod + "registry/pack", mod + "registry/client", mod + "runner/sim", mod + "evals", mod + "gate", mod + "cmd/", mod + "bench/"},
	}
	forbidden := map[string][]string{ // importer prefix → import prefixes it may not use
		mod + "registry": {mod + "gate", mod + "runner", mod + "evals", mod + "cmd"},
		// DESIGN.md §2 lets the runner import evals and registry; it uses
		// evals (runner/evaljob) and has no need of registry.
		mod + "runner": {mod + "gate", mod + "cmd", mod + "registry"},
		// evals is pure: no I/O, nothing of Airlock's but itself.
		mod + "evals": {mod + "runner", mod + "registry", mod + "gate", mod + "cmd", "os", "net", "io/ioutil", "syscall"},
		// The gate never reaches back into the command line; the built-in
		// policies are data, importing nothing of Airlock's.
		mod + "gate":     {mod + "cmd"},
		mod + "policies": {mod + "gate", mod + "registry", mod + "runner", mod + "evals", mod + "cmd"},
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		n++
		for _, imp := range p.Imports {
			for sdk, allowed := range owners {
				if !strings.HasPrefix(imp, sdk) {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || strings.HasPrefix(p.ImportPath, a)
				}
				if !ok {
					t.Errorf("%s imports %s; only %v may", p.ImportPath, imp, allowed)
				}
			}
			for importer, bad := range forbidden {
				if !strings.HasPrefix(p.ImportPath, importer) {
					continue
				}
				for _, b := range bad {
					if strings.HasPrefix(imp, b) {
						t.Errorf("%s imports %s, which DESIGN.md §2 forbids", p.ImportPath, imp)
					}
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("go list found only %d packages", n)
	}
}
