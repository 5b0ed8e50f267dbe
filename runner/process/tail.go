package process

import (
	"strings"
	"sync"
)

// tailLines is how many lines of the server's output an error quotes.
const tailLines = 64

// maxLine caps one kept line; a server printing a megabyte without a
// newline (a progress bar) should not grow the buffer.
const maxLine = 1024

// tail keeps the last lines written to it, from stdout and stderr
// interleaved as they arrive, to put in errors.
type tail struct {
	mu      sync.Mutex
	lines   [tailLines]string
	next    int // index of the slot the next line goes to
	n       int // lines kept
	partial []byte
	cr      bool // a carriage return ended partial
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range p {
		switch c {
		case '\n':
			t.push()
		case '\r':
			t.cr = true
		default:
			if t.cr {
				// A progress bar rewrote the line: keep its last state.
				t.partial, t.cr = t.partial[:0], false
			}
			if len(t.partial) < maxLine {
				t.partial = append(t.partial, c)
			}
		}
	}
	return len(p), nil
}

func (t *tail) push() {
	t.lines[t.next] = string(t.partial)
	t.partial, t.cr = t.partial[:0], false
	t.next = (t.next + 1) % tailLines
	t.n = min(t.n+1, tailLines)
}

// String is the kept lines, oldest first, and the unfinished last line.
func (t *tail) String() string { return t.last(tailLines + 1) }

// last is the last n lines, the unfinished one counting as one.
func (t *tail) last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := make([]string, 0, t.n+1)
	for i := range t.n {
		lines = append(lines, t.lines[(t.next-t.n+i+tailLines)%tailLines])
	}
	if len(t.partial) > 0 {
		lines = append(lines, string(t.partial))
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// suffix is "; last output:" and the last n lines, indented, or "; no
// output" when the server printed nothing.
func (t *tail) suffix(n int) string {
	s := t.last(n)
	if strings.TrimSpace(s) == "" {
		return "; no output"
	}
	return "; last output:\n\t" + strings.ReplaceAll(s, "\n", "\n\t")
}
