package process

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "vllm serve /m --port 80", want: []string{"vllm", "serve", "/m", "--port", "80"}},
		{in: "  a \t b\n c  ", want: []string{"a", "b", "c"}},
		{in: "", want: nil},
		{in: `a 'b c' d`, want: []string{"a", "b c", "d"}},
		{in: `a "b c" d`, want: []string{"a", "b c", "d"}},
		{in: `a''b ""`, want: []string{"ab", ""}},
		{in: `'it'\''s'`, want: []string{"it's"}},
		{in: `'no \escape "here"'`, want: []string{`no \escape "here"`}},
		{in: `"say \"hi\" \\ \$HOME \a"`, want: []string{`say "hi" \ $HOME \a`}},
		{in: `a\ b c\\d \'e`, want: []string{"a b", `c\d`, "'e"}},
		{in: "a\\\nb", want: []string{"ab"}},
		{in: `--x="a b"c`, want: []string{"--x=a bc"}},
		{in: `$HOME ~ *.gguf | tee`, want: []string{"$HOME", "~", "*.gguf", "|", "tee"}},
		{in: `serve {{.File "model weights"}} --port {{.Port}}`, want: []string{"serve", `{{.File "model weights"}}`, "--port", "{{.Port}}"}},
		{in: `"{{.Dir}}/a b"`, want: []string{"{{.Dir}}/a b"}},
		{in: `'{{ "it's" }}'`, want: []string{`{{ "it's" }}`}},
		{in: `x{{.Port}}y`, want: []string{"x{{.Port}}y"}},
		{in: `a 'b`, err: "unterminated single quote"},
		{in: `a "b\"`, err: "unterminated double quote"},
		{in: `a \`, err: "backslash at the end"},
		{in: `a {{.Port`, err: "unclosed {{"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Split(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Split(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Split(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// quote's output splits back into the word, whatever the word.
func TestQuoteRoundTrip(t *testing.T) {
	for _, w := range []string{"", "plain", "a b", "it's", `"q"`, `back\slash`, "$HOME", "tab\there", "new\nline", "ünï"} {
		got, err := Split(quote(w))
		if err != nil || len(got) != 1 || got[0] != w {
			t.Errorf("Split(quote(%q)) = %q, %v", w, got, err)
		}
	}
	if quote("--port=8000") != "--port=8000" {
		t.Errorf("quote quoted a word that needs no quotes: %s", quote("--port=8000"))
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{`a 'b c' "d\"e" f\ g`, `{{.File "x"}}`, `'`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := Split(s)
		if err != nil || strings.Contains(strings.Join(words, "\x00"), "{{") {
			return // a template action is not for quote to escape
		}
		// Quoting the words and splitting again gives them back.
		q := make([]string, len(words))
		for i, w := range words {
			q[i] = quote(w)
		}
		again, err := Split(strings.Join(q, " "))
		if err != nil || len(again) != len(words) || len(words) > 0 && !reflect.DeepEqual(again, words) {
			t.Fatalf("Split(%q) = %q; quoted and split again: %q, %v", s, words, again, err)
		}
	})
}

func TestRender(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"model.gguf", "config.json", "shard-1.bin", "shard-2.bin"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spaced := filepath.Join(dir, "with space")
	if err := os.Mkdir(spaced, 0o755); err != nil {
		t.Fatal(err)
	}
	v := Vars{Dir: dir, Host: "127.0.0.1", Port: 8123, Model: "m1"}
	for _, tc := range []struct {
		name  string
		cmd   string
		shell bool
		vars  Vars
		want  []string
		err   string
	}{
		{name: "fields", cmd: "serve {{.Dir}} --host {{.Host}} --port {{.Port}} --name {{.Model}}",
			want: []string{"serve", dir, "--host", "127.0.0.1", "--port", "8123", "--name", "m1"}},
		{name: "a value with spaces stays one word", cmd: "serve {{.Dir}}/x", vars: Vars{Dir: spaced},
			want: []string{"serve", spaced + "/x"}},
		{name: "file by prefix", cmd: `serve -m {{.File "model"}}`, want: []string{"serve", "-m", filepath.Join(dir, "model.gguf")}},
		{name: "file by name", cmd: `serve {{.File "config.json"}}`, want: []string{"serve", filepath.Join(dir, "config.json")}},
		{name: "shell", cmd: `exec serve --port {{.Port}} 2>&1 | tee log`, shell: true,
			want: []string{"/bin/sh", "-c", "exec serve --port 8123 2>&1 | tee log"}},
		{name: "unknown field", cmd: "serve {{.Weights}}", err: "can't evaluate field Weights"},
		{name: "bad template", cmd: "serve {{.Port", err: "unclosed {{"},
		{name: "bad action", cmd: "serve {{if}}", err: "missing value for if"},
		{name: "missing file", cmd: `serve {{.File "tokenizer"}}`, err: `File "tokenizer": no such file`},
		{name: "ambiguous file", cmd: `serve {{.File "shard"}}`, err: "2 files in"},
		{name: "file outside", cmd: `serve {{.File "../etc/passwd"}}`, err: "inside the release directory"},
		{name: "no command", cmd: "  ", err: "no command"},
		{name: "empty program", cmd: "{{.Model}} x", vars: Vars{Dir: dir}, err: "program name is empty"},
		{name: "bad quoting", cmd: `serve "x`, err: "unterminated double quote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := v
			if tc.vars.Dir != "" {
				vars = tc.vars
			}
			c, err := parseCommand(tc.cmd, tc.shell)
			var got []string
			if err == nil {
				got, err = c.render(vars)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.err)
				}
				if tc.name != "no command" && !strings.Contains(err.Error(), strconv.Quote(tc.cmd)) {
					t.Errorf("error %q does not quote the command", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
