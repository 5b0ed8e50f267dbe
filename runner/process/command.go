package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// Vars are the fields a command template sees.
type Vars struct {
	// Dir is the release directory, the one whose digest was evaluated.
	Dir string
	// Host is the loopback address the server must listen on.
	Host string
	// Port is the free port the engine picked for the server.
	Port int
	// Model is the served model name (Options.Model).
	Model string
}

// File returns the path of a file of the release directory: name itself
// when Dir holds it, else the only file whose name starts with name
// ("weights" finds weights.gguf). It fails when none or several match, so
// a release that changed shape is noticed before the server starts.
func (v Vars) File(name string) (string, error) {
	if v.Dir == "" {
		return "", errors.New("File: no release directory")
	}
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("File %q: want a path inside the release directory", name)
	}
	if _, err := os.Stat(filepath.Join(v.Dir, name)); err == nil {
		return filepath.Join(v.Dir, name), nil
	}
	ents, err := os.ReadDir(v.Dir)
	if err != nil {
		return "", fmt.Errorf("File %q: %w", name, err)
	}
	var found []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name) {
			found = append(found, e.Name())
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("File %q: no such file in %s", name, v.Dir)
	case 1:
		return filepath.Join(v.Dir, found[0]), nil
	}
	return "", fmt.Errorf("File %q: %d files in %s match (%s)", name, len(found), v.Dir, strings.Join(found, ", "))
}

// command is a parsed command template: one template per word, or one
// for the whole line when it runs through the shell.
type command struct {
	src   string
	shell bool
	words []*template.Template
}

// parseCommand splits src into words and parses each as a template. The
// words are split before the values are substituted, so a directory with
// spaces stays one argument and a value is never re-split or re-quoted.
func parseCommand(src string, shell bool) (*command, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("process: no command")
	}
	c := &command{src: src, shell: shell}
	words := []string{src}
	if !shell {
		var err error
		if words, err = Split(src); err != nil {
			return nil, fmt.Errorf("process: command %q: %w", src, err)
		}
	}
	for i, w := range words {
		t, err := template.New(fmt.Sprintf("word %d", i+1)).Option("missingkey=error").Parse(w)
		if err != nil {
			return nil, fmt.Errorf("process: command %q: %w", src, err)
		}
		c.words = append(c.words, t)
	}
	return c, nil
}

// render executes the templates with v: the argv to start. With shell,
// that is sh -c and the rendered line.
func (c *command) render(v Vars) ([]string, error) {
	argv := make([]string, 0, len(c.words)+2)
	if c.shell {
		argv = append(argv, "/bin/sh", "-c")
	}
	for _, t := range c.words {
		var b strings.Builder
		if err := t.Execute(&b, v); err != nil {
			return nil, fmt.Errorf("process: command %q: %w", c.src, err)
		}
		argv = append(argv, b.String())
	}
	if argv[0] == "" {
		return nil, fmt.Errorf("process: command %q: the program name is empty", c.src)
	}
	return argv, nil
}

// Split splits a command line into words as a POSIX shell would, for the
// quoting only: words are separated by unquoted blanks; single quotes
// keep everything up to the next single quote; double quotes keep
// everything up to the next unescaped double quote, a backslash escaping
// only \ " $ ` and newline there; an unquoted backslash escapes any
// character (and drops a newline). There is no expansion of variables,
// globs, ~ or $(...), and no pipes or redirections: Options.Shell is for
// that. A template action {{...}} is kept as it is, quotes and spaces
// included, wherever it is.
func Split(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	const (
		none = iota
		single
		double
	)
	quote := none
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.HasPrefix(s[i:], "{{") {
			end := strings.Index(s[i+2:], "}}")
			if end < 0 {
				return nil, fmt.Errorf("unclosed {{ at byte %d", i)
			}
			w.WriteString(s[i : i+2+end+2])
			inWord = true
			i += 2 + end + 1
			continue
		}
		switch quote {
		case single:
			if c == '\'' {
				quote = none
			} else {
				w.WriteByte(c)
			}
			continue
		case double:
			switch {
			case c == '"':
				quote = none
			case c == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0:
				if s[i+1] != '\n' {
					w.WriteByte(s[i+1])
				}
				i++
			default:
				w.WriteByte(c)
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case '\'':
			quote, inWord = single, true
		case '"':
			quote, inWord = double, true
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("a backslash at the end")
			}
			i++
			if s[i] != '\n' {
				w.WriteByte(s[i])
				inWord = true
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	switch quote {
	case single:
		return nil, errors.New("unterminated single quote")
	case double:
		return nil, errors.New("unterminated double quote")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// quote is the inverse of Split for one word: it returns w unchanged when
// it needs no quoting, else w in single quotes. Describe uses it to show
// the command as a shell would take it.
func quote(w string) string {
	if w == "" {
		return "''"
	}
	safe := true
	for _, r := range w {
		plain := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)
		if !plain {
			safe = false
			break
		}
	}
	if safe {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// join quotes argv into one line for display.
func join(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = quote(a)
	}
	return strings.Join(q, " ")
}
