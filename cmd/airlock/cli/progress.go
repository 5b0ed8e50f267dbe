package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progress draws one status line on stderr while bytes move. It draws
// nothing when stderr is not a terminal (CI logs stay clean) or when
// --no-progress is given.
type progress struct {
	w     io.Writer
	verb  string
	total int64
	done  atomic.Int64
	// count draws done/of as a count of things, not bytes.
	count atomic.Bool
	of    atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// newProgress starts drawing if g allows it. Call finish when done.
func newProgress(g *globals, verb string, total int64) *progress {
	p := &progress{w: g.stderr, verb: verb, total: total, start: time.Now()}
	f, ok := g.stderr.(*os.File)
	if g.noProgress || !ok || !term.IsTerminal(int(f.Fd())) {
		return p
	}
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// add is a pack.Progress.
func (p *progress) add(_ string, n int64) { p.done.Add(n) }

func (p *progress) draw() {
	done := p.done.Load()
	secs := time.Since(p.start).Seconds()
	if p.count.Load() {
		fmt.Fprintf(p.w, "\r\033[K%s %d/%d  %.0f/s", p.verb, done, p.of.Load(), float64(done)/max(secs, 1e-3))
		return
	}
	rate := ""
	if secs > 0 {
		rate = fmt.Sprintf("  %s/s", bytesHuman(int64(float64(done)/secs)))
	}
	pct := ""
	if p.total > 0 {
		pct = fmt.Sprintf(" %3.0f%%", 100*float64(done)/float64(p.total))
	}
	of := ""
	if p.total > 0 {
		of = " / " + bytesHuman(p.total)
	}
	fmt.Fprintf(p.w, "\r\033[K%s%s  %s%s%s", p.verb, pct, bytesHuman(done), of, rate)
}

func (p *progress) finish() {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
	}
}

// bytesHuman formats a byte count in binary units.
func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
