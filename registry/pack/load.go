package pack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/registry"
)

// Entry is one file of a release: one layer of its artifact.
type Entry struct {
	Path       string        // slash path relative to the release directory; the layer's filepath
	Abs        string        // where to read it
	Role       registry.Role // what part of the release it is
	Part       string        // the prompt or eval name, when the part has one
	MediaType  string
	Size       int64
	Executable bool // the only mode bit kept, so that packing does not depend on umask
	Untested   bool // the media type was guessed (ModelPack's mediatype.untested)
}

// Loaded is a validated release directory: the parsed file and the files
// it names, in manifest order.
type Loaded struct {
	*Parsed
	Dir     string  // absolute release directory
	Entries []Entry // in layer order
}

// Load reads dir/file (file defaults to airlock.yaml), validates it and
// lists every file it names. It fails with a ValidationError naming the
// field for paths that are missing, escape dir (also through symlinks),
// are special files, or are claimed by two parts.
func Load(dir, file string) (*Loaded, error) {
	if file == "" {
		file = DefaultFile
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", dir, err)
	}
	// The release directory itself may be reached through a symlink; what
	// must not happen is a path inside it leading out.
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("%w: release directory %s: %w", ErrInvalidRelease, dir, err)
	}
	relFile := file
	if !filepath.IsAbs(file) {
		file = filepath.Join(abs, file)
	}
	shown := filepath.Join(dir, relFile)
	if filepath.IsAbs(relFile) {
		shown = relFile
	}
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &ValidationError{Problems: []*FieldError{{File: shown, Msg: "no release file here; create one (see examples/support-bot/airlock.yaml) or pass -f"}}}
		}
		return nil, fmt.Errorf("reading release file: %w", err)
	}
	parsed, err := Parse(data, shown)
	if err != nil {
		return nil, err
	}
	l := &Loaded{Parsed: parsed, Dir: root}
	p := &problems{file: shown, pos: parsed.pos}
	releaseFile, _ := filepath.EvalSymlinks(file)
	claimed := map[string]string{} // entry path → field that claimed it
	add := func(field string, role registry.Role, part, rel string) {
		for _, e := range l.collect(p, field, rel, releaseFile) {
			if prev, dup := claimed[e.Path]; dup {
				p.add(field, "%s is already part of %s; a file belongs to one part", e.Path, prev)
				continue
			}
			claimed[e.Path] = field
			e.Role, e.Part = role, part
			e.MediaType, e.Untested = mediaType(role, e.Path, e.Size)
			l.Entries = append(l.Entries, e)
		}
	}
	r := &parsed.Release
	add("model.path", registry.RoleModel, "", r.Model.Path)
	if r.Tokenizer != nil {
		add("tokenizer.path", registry.RoleTokenizer, "", r.Tokenizer.Path)
	}
	for i, n := range r.Prompts {
		add(fmt.Sprintf("prompts[%d].path", i), registry.RolePrompt, n.Name, n.Path)
	}
	if r.Safety != nil {
		add("safety.path", registry.RoleSafety, "", r.Safety.Path)
	}
	for i, n := range r.Evals {
		add(fmt.Sprintf("evals[%d].path", i), registry.RoleEval, n.Name, n.Path)
	}
	for i, d := range r.Docs {
		add(fmt.Sprintf("docs[%d].path", i), registry.RoleDoc, "", d.Path)
	}
	for i, c := range r.Code {
		add(fmt.Sprintf("code[%d].path", i), registry.RoleCode, "", c.Path)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	sortEntries(l.Entries)
	return l, nil
}

// sortEntries puts layers in role order, then path order, so the manifest
// does not depend on the order of the release file's lists.
func sortEntries(es []Entry) {
	rank := map[registry.Role]int{}
	for i, r := range registry.Roles() {
		rank[r] = i
	}
	sort.SliceStable(es, func(i, j int) bool {
		if rank[es[i].Role] != rank[es[j].Role] {
			return rank[es[i].Role] < rank[es[j].Role]
		}
		return es[i].Path < es[j].Path
	})
}

// collect lists the regular files under one release path. Symlinks are
// followed, anywhere in the path, only while they stay inside the release
// directory.
func (l *Loaded) collect(p *problems, field, rel, releaseFile string) []Entry {
	clean := path.Clean(rel)
	full := filepath.Join(l.Dir, filepath.FromSlash(clean))
	if _, err := os.Lstat(full); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			p.add(field, "%q does not exist in the release directory", rel)
		} else {
			p.add(field, "%q: %v", rel, err)
		}
		return nil
	}
	resolved, ok := l.inside(p, field, clean, full)
	if !ok {
		return nil
	}
	info, err := os.Stat(resolved)
	if err != nil {
		p.add(field, "%q: %v", rel, err)
		return nil
	}
	if info.Mode().IsRegular() {
		if resolved == releaseFile {
			p.add(field, "%q is the release file itself; it travels as the %s annotation", rel, registry.AnnotationRelease)
			return nil
		}
		return []Entry{{Path: clean, Abs: resolved, Size: info.Size(), Executable: info.Mode()&0o111 != 0}}
	}
	if !info.IsDir() {
		p.add(field, "%q is not a regular file or directory (%s)", rel, info.Mode().Type())
		return nil
	}
	var out []Entry
	err = filepath.WalkDir(resolved, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		sub, _ := filepath.Rel(resolved, fp)
		relPath := path.Join(clean, filepath.ToSlash(sub))
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		target := fp
		if d.Type()&fs.ModeSymlink != 0 {
			t, ok := l.inside(p, field, relPath, fp)
			if !ok {
				return nil
			}
			target = t
		}
		fi, err := os.Stat(target)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			p.add(field, "%s is a symlink to a directory; only symlinks to files are followed", relPath)
			return nil
		}
		if !fi.Mode().IsRegular() {
			p.add(field, "%s is not a regular file (%s)", relPath, fi.Mode().Type())
			return nil
		}
		if target == releaseFile {
			return nil // the release file travels as an annotation
		}
		out = append(out, Entry{Path: relPath, Abs: target, Size: fi.Size(), Executable: fi.Mode()&0o111 != 0})
		return nil
	})
	if err != nil {
		p.add(field, "reading %q: %v", rel, err)
		return nil
	}
	if len(out) == 0 {
		p.add(field, "%q is an empty directory", rel)
	}
	return out
}

// inside resolves a symlink and reports whether it stays in the release
// directory.
func (l *Loaded) inside(p *problems, field, rel, full string) (string, bool) {
	target, err := filepath.EvalSymlinks(full)
	if err != nil {
		p.add(field, "%s is a broken symlink: %v", rel, err)
		return "", false
	}
	r, err := filepath.Rel(l.Dir, target)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		p.add(field, "%s is a symlink to %s, outside the release directory", rel, target)
		return "", false
	}
	return target, true
}

// mediaType picks the ModelPack layer type for a file. Weights are
// recognised by extension; configuration-like files in the model
// directory are weight.config, like modctl does
// (modelpack/modctl pkg/modelfile/constants.go).
func mediaType(role registry.Role, p string, size int64) (mt string, untested bool) {
	switch role {
	case registry.RoleTokenizer, registry.RolePrompt, registry.RoleSafety:
		return registry.MediaTypeWeightConfigRaw, false
	case registry.RoleEval:
		return registry.MediaTypeDatasetRaw, false
	case registry.RoleDoc:
		return registry.MediaTypeDocRaw, false
	case registry.RoleCode:
		return registry.MediaTypeCodeRaw, false
	}
	base := strings.ToLower(path.Base(p))
	ext := path.Ext(base)
	switch ext {
	case ".gguf", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".pb", ".tflite", ".msgpack", ".npz", ".npy", ".mlmodel", ".pte", ".engine", ".plan", ".ggml", ".llamafile":
		return registry.MediaTypeWeightRaw, false
	case ".json", ".yaml", ".yml", ".jinja", ".txt", ".model", ".tiktoken", ".toml", ".cfg", ".ini":
		return registry.MediaTypeWeightConfigRaw, false
	case ".md", ".rst", ".pdf", ".html":
		return registry.MediaTypeDocRaw, false
	case ".py", ".sh", ".js", ".ts", ".go", ".rs", ".c", ".cc", ".cpp", ".h":
		return registry.MediaTypeCodeRaw, false
	}
	if base == "license" || base == "notice" || base == "readme" {
		return registry.MediaTypeDocRaw, false
	}
	// Unknown: big files are weights, as modctl guesses, and the guess
	// is marked.
	if size >= 128<<20 {
		return registry.MediaTypeWeightRaw, true
	}
	return registry.MediaTypeWeightConfigRaw, true
}
