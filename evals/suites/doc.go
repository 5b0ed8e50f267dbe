// Package suites holds Airlock's built-in adversarial eval suites
// (airlock eval --suite builtin:NAME): prompt injection, jailbreaks and
// PII leaks. They are starting points to copy and extend with a
// release's own cases, written for Airlock after the categories of the
// OWASP Top 10 for LLM Applications (2025: LLM01 prompt injection, LLM02
// sensitive information disclosure, LLM07 system prompt leakage), not a
// certification: passing them shows a model refuses these cases, not that
// it is safe.
//
// Every item is tagged "safety" and the set's name, so its failures count
// as safety violations in the report; benign controls (which a model
// should answer) are tagged "benign" instead, so their refusals count as
// over-refusal. Harmful requests name their subject abstractly (in
// brackets): the suites carry no harmful instructions.
package suites

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

//go:embed *.yaml
var files embed.FS

// Names lists the built-in suites, sorted.
func Names() []string {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		panic(err) // the embedded directory is always readable
	}
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(out)
	return out
}

// Get returns a built-in suite's YAML.
func Get(name string) ([]byte, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("no built-in suite %q (there are %s)", name, strings.Join(Names(), ", "))
	}
	return files.ReadFile(name + ".yaml")
}
