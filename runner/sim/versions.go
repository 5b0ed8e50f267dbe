package sim

import (
	"embed"
	"fmt"
	"sort"
	"strings"
)

//go:embed versions/*.yaml
var versionFiles embed.FS

// Versions names the built-in versions: "good" and "regressed", the demo's
// two candidates.
func Versions() []string {
	ents, _ := versionFiles.ReadDir("versions")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Version returns a built-in version's config and its YAML.
func Version(name string) (Config, []byte, error) {
	b, err := versionFiles.ReadFile("versions/" + name + ".yaml")
	if err != nil {
		return Config{}, nil, fmt.Errorf("no built-in version %q (have %s)", name, strings.Join(Versions(), ", "))
	}
	c, err := Parse(b)
	return c, b, err
}
