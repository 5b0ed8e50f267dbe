package process

import (
	"fmt"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	var tl tail
	if got := tl.suffix(tailLines); got != "; no output" {
		t.Errorf("empty tail: %q", got)
	}
	for i := range 100 {
		fmt.Fprintf(&tl, "line %d\n", i)
	}
	fmt.Fprint(&tl, "loading 10%\rloading 55%\rloading 90%")
	lines := strings.Split(tl.String(), "\n")
	if len(lines) != tailLines+1 {
		t.Fatalf("%d lines kept, want %d and the unfinished one", len(lines), tailLines+1)
	}
	if lines[0] != "line 36" || lines[tailLines-1] != "line 99" || lines[tailLines] != "loading 90%" {
		t.Errorf("kept %q … %q, %q", lines[0], lines[tailLines-1], lines[tailLines])
	}
	fmt.Fprint(&tl, "\r\nwindows line\r\n"+strings.Repeat("x", 3*maxLine)+"\n")
	lines = strings.Split(tl.String(), "\n")
	if n := len(lines); lines[n-3] != "loading 90%" || lines[n-2] != "windows line" || len(lines[n-1]) != maxLine {
		t.Errorf("last lines %q, %q and one of %d bytes", lines[n-3], lines[n-2], len(lines[n-1]))
	}
	if s := tl.suffix(tailLines); !strings.HasPrefix(s, "; last output:\n\tline") || strings.Count(s, "\n\t") != tailLines {
		t.Errorf("suffix %.60q… has %d lines", s, strings.Count(s, "\n\t"))
	}
	if s := tl.suffix(2); s != "; last output:\n\twindows line\n\t"+strings.Repeat("x", maxLine) {
		t.Errorf("suffix(2) = %.80q…", s)
	}
}
