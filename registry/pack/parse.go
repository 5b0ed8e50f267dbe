package pack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/registry"
	"gopkg.in/yaml.v3"
)

// maxReleaseFile bounds the release file: it travels as a manifest
// annotation and registries refuse manifests over 4 MiB
// (distribution-spec, "Pushing Manifests").
const maxReleaseFile = 1 << 20

// position is where a field's value starts in the release file.
type position struct{ line, col int }

// Parsed is a release file parsed and checked on its own, before any file
// it names is looked at.
type Parsed struct {
	Release
	file string
	pos  map[string]position
}

// problems collects FieldErrors in file order.
type problems struct {
	file string
	pos  map[string]position
	list []*FieldError
}

func (p *problems) add(field, format string, a ...any) {
	at := p.pos[field]
	p.list = append(p.list, &FieldError{File: p.file, Line: at.line, Column: at.col, Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool {
		a, b := p.list[i], p.list[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &ValidationError{Problems: p.list}
}

// Parse reads a release file and checks everything that can be checked
// without the filesystem: unknown and duplicate keys, types, required
// fields, names, versions, references and path syntax. file is only used
// in error messages.
func Parse(data []byte, file string) (*Parsed, error) {
	p := &problems{file: file, pos: map[string]position{}}
	if len(data) > maxReleaseFile {
		p.add("", "release file is %d bytes; the limit is %d", len(data), maxReleaseFile)
		return nil, p.err()
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add("", "release file is empty")
			return nil, p.err()
		}
		p.list = append(p.list, yamlError(file, err))
		return nil, p.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.pos["(document)"] = position{extra.Line, extra.Column}
		p.add("(document)", "more than one YAML document; a release file holds one")
		return nil, p.err()
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.pos[""] = position{root.Line, root.Column}
		p.add("", "expected a mapping with apiVersion, kind, metadata, …; got %s", nodeKind(root))
		return nil, p.err()
	}
	walkShape(root, reflect.TypeOf(Release{}), "", p)
	if len(p.list) > 0 {
		return nil, p.err()
	}
	var rel Release
	if err := root.Decode(&rel); err != nil {
		// walkShape already checked the shape; this is a type mismatch
		// inside a scalar (for example a mapping where a string goes).
		p.list = append(p.list, yamlError(file, err))
		return nil, p.err()
	}
	checkRelease(&rel, p)
	if err := p.err(); err != nil {
		return nil, err
	}
	normalise(&rel)
	return &Parsed{Release: rel, file: file, pos: p.pos}, nil
}

// yamlError turns a yaml.v3 error ("yaml: line 3: …") into a FieldError.
func yamlError(file string, err error) *FieldError {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	fe := &FieldError{File: file}
	if _, err := fmt.Sscanf(msg, "line %d:", &fe.Line); err == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	fe.Msg = strings.ReplaceAll(msg, "\n", "; ")
	return fe
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "a document"
}

// walkShape checks node against the Go type t (struct, slice, string), records
// the position of every field, and reports unknown and duplicate keys. It
// is what turns "field x not found in type pack.Model" into an error that
// names the key, the line and the keys that are allowed.
func walkShape(n *yaml.Node, t reflect.Type, path string, p *problems) {
	p.pos[path] = position{n.Line, n.Column}
	if n.Kind == yaml.AliasNode {
		p.add(path, "YAML aliases are not allowed in a release file")
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return
			}
			p.add(path, "expected a mapping; got %s", nodeKind(n))
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			child := k.Value
			if path != "" {
				child = path + "." + k.Value
			}
			p.pos[child] = position{k.Line, k.Column}
			if prev, dup := seen[k.Value]; dup {
				p.add(child, "duplicate key (first at line %d)", prev)
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				hint := ""
				if s := closest(k.Value, names); s != "" {
					hint = fmt.Sprintf("; did you mean %q?", s)
				}
				p.add(child, "unknown field%s (allowed here: %s)", hint, strings.Join(names, ", "))
				continue
			}
			walkShape(v, ft, child, p)
			p.pos[child] = position{k.Line, k.Column}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				return
			}
			p.add(path, "expected a list; got %s", nodeKind(n))
			return
		}
		for i, c := range n.Content {
			walkShape(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), p)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			p.add(path, "expected a string; got %s", nodeKind(n))
			return
		}
		if n.Tag != "!!str" && n.Tag != "!!null" && n.Style == 0 {
			// 1.10 would silently become "1.1": make the user quote it.
			if n.Tag == "!!float" || n.Tag == "!!int" || n.Tag == "!!bool" {
				p.add(path, "%s is read by YAML as a %s; quote it (%q) to keep it as written", n.Value, strings.TrimPrefix(n.Tag, "!!"), n.Value)
			}
		}
	}
}

// closest returns the allowed name nearest to s when it looks like a typo.
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var (
	// semverPattern is the regular expression suggested by semver.org.
	semverPattern = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	namePattern   = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$`)
	// paramSizePattern is ModelPack's "<count><K|M|B|T|Q>" (docs/config.md).
	paramSizePattern = regexp.MustCompile(`^[0-9]+(?:\.[0-9]+)?[KMBTQ]$`)
	tokenPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*(?:,[a-z0-9][a-z0-9_.-]*)*$`)
	licensePattern   = regexp.MustCompile(`^[A-Za-z0-9.+:()\- ]+$`)
)

// Formats lists the model.format values Airlock knows; ModelPack's are
// the first four (docs/config.md).
var formats = []string{"safetensors", "gguf", "onnx", "pt", "pickle", "mlx", "tflite", "tensorrt", "other"}

// checkRelease validates field values. Paths are checked for syntax only.
func checkRelease(r *Release, p *problems) {
	if r.APIVersion == "" {
		p.add("apiVersion", "required; set it to %q", APIVersion)
	} else if r.APIVersion != APIVersion {
		p.add("apiVersion", "%q is not supported; this Airlock reads %q", r.APIVersion, APIVersion)
	}
	if r.Kind == "" {
		p.add("kind", "required; set it to %q", KindRelease)
	} else if r.Kind != KindRelease {
		p.add("kind", "%q is not a release; expected %q", r.Kind, KindRelease)
	}
	m := r.Metadata
	switch {
	case m.Name == "":
		p.add("metadata.name", "required")
	case !namePattern.MatchString(m.Name):
		p.add("metadata.name", "%q: use lowercase letters, digits, '.', '_' and '-' (at most 64, starting and ending with a letter or digit)", m.Name)
	}
	switch {
	case m.Version == "":
		p.add("metadata.version", "required (a semantic version such as 1.4.0)")
	case !semverPattern.MatchString(m.Version):
		hint := ""
		if strings.HasPrefix(m.Version, "v") && semverPattern.MatchString(m.Version[1:]) {
			hint = fmt.Sprintf("; drop the leading v: %q", m.Version[1:])
		}
		p.add("metadata.version", "%q is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.4.0)%s", m.Version, hint)
	}
	if m.License != "" && !licensePattern.MatchString(m.License) {
		p.add("metadata.license", "%q is not an SPDX license expression", m.License)
	}
	if r.Model == nil {
		p.add("model", "required: a release ships model weights (model: {path: …})")
	} else {
		checkPath(p, "model.path", r.Model.Path)
		if f := r.Model.Format; f != "" && !slices.Contains(formats, f) {
			p.add("model.format", "%q is not a known format (one of %s)", f, strings.Join(formats, ", "))
		}
		if s := r.Model.ParamSize; s != "" && !paramSizePattern.MatchString(s) {
			p.add("model.paramSize", "%q: write a count with a K, M, B, T or Q suffix, e.g. 1.1B", s)
		}
		if s := r.Model.Precision; s != "" && !tokenPattern.MatchString(s) {
			p.add("model.precision", "%q: write a lowercase precision such as bfloat16 or q8_0 (comma-separated when mixed)", s)
		}
	}
	if r.Tokenizer != nil {
		checkPath(p, "tokenizer.path", r.Tokenizer.Path)
	}
	if r.Safety != nil {
		checkPath(p, "safety.path", r.Safety.Path)
	}
	checkNamed(p, "prompts", r.Prompts)
	checkNamed(p, "evals", r.Evals)
	for i, d := range r.Docs {
		checkPath(p, fmt.Sprintf("docs[%d].path", i), d.Path)
	}
	for i, c := range r.Code {
		checkPath(p, fmt.Sprintf("code[%d].path", i), c.Path)
	}
	seenScope := map[string]int{}
	for i, s := range r.DataScopes {
		f := fmt.Sprintf("dataScopes[%d]", i)
		if !namePattern.MatchString(s) {
			p.add(f, "%q: a data scope is a lowercase name such as support-tickets", s)
		}
		if j, dup := seenScope[s]; dup {
			p.add(f, "duplicate data scope %q (also dataScopes[%d])", s, j)
		}
		seenScope[s] = i
	}
	seenSet := map[string]int{}
	for i, d := range r.Datasets {
		f := fmt.Sprintf("datasets[%d].name", i)
		if d.Name == "" {
			p.add(f, "required")
		} else if j, dup := seenSet[d.Name]; dup {
			p.add(f, "duplicate dataset %q (also datasets[%d])", d.Name, j)
		}
		seenSet[d.Name] = i
	}
	if r.BaseModel != "" {
		ref, err := registry.ParseRef(r.BaseModel)
		switch {
		case err != nil:
			p.add("baseModel", "%v", err)
		case ref.Digest == "":
			p.add("baseModel", "%q has no digest; lineage must be pinned (HOST/REPO@sha256:…)", r.BaseModel)
		}
	}
}

func checkNamed(p *problems, list string, parts []Named) {
	seen := map[string]int{}
	for i, n := range parts {
		f := fmt.Sprintf("%s[%d]", list, i)
		switch {
		case n.Name == "":
			p.add(f+".name", "required")
		case !namePattern.MatchString(n.Name):
			p.add(f+".name", "%q: use lowercase letters, digits, '.', '_' and '-'", n.Name)
		default:
			if j, dup := seen[n.Name]; dup {
				p.add(f+".name", "duplicate name %q (also %s[%d])", n.Name, list, j)
			}
			seen[n.Name] = i
		}
		checkPath(p, f+".path", n.Path)
	}
}

// checkPath checks a path's syntax: relative, inside the release
// directory, slash-separated.
func checkPath(p *problems, field, path string) {
	switch {
	case path == "":
		p.add(field, "required")
	case strings.Contains(path, "\\"):
		p.add(field, "%q: use forward slashes", path)
	case strings.HasPrefix(path, "/"):
		p.add(field, "%q is absolute; paths are relative to the release directory", path)
	case escapes(path):
		p.add(field, "%q escapes the release directory", path)
	}
}

// escapes reports whether a relative slash path climbs out of its root.
func escapes(path string) bool {
	depth := 0
	for _, c := range strings.Split(path, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// normalise cleans paths so that "model/", "./model" and "model" give the
// same release annotation, hence the same digest.
func normalise(r *Release) {
	clean := func(s *string) { *s = path.Clean(*s) }
	clean(&r.Model.Path)
	if r.Tokenizer != nil {
		clean(&r.Tokenizer.Path)
	}
	if r.Safety != nil {
		clean(&r.Safety.Path)
	}
	for i := range r.Prompts {
		clean(&r.Prompts[i].Path)
	}
	for i := range r.Evals {
		clean(&r.Evals[i].Path)
	}
	for i := range r.Docs {
		clean(&r.Docs[i].Path)
	}
	for i := range r.Code {
		clean(&r.Code[i].Path)
	}
}
