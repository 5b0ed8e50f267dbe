package writeback

import (
	"os"

	"golang.org/x/sys/unix"
)

// Window is how much of a large download may sit dirty in the
// page cache before Airlock asks the kernel to write it back and drop it.
const Window = 32 << 20

// Writer streams a large file to disk behind the writer instead of
// letting gigabytes of dirty pages pile up: every window it starts
// writeback of what was just written, waits for the window before that,
// and drops those pages (like dd oflag=nocache). Page-cache pages are then
// recycled instead of freshly allocated, which on virtual machines costs
// more than the copy itself, and a model pull does not evict everything
// else from memory. Errors are ignored: this is advice to the kernel.
type Writer struct {
	fd      int
	off     int64 // file offset of the next byte written
	started int64 // writeback started up to here
	dropped int64 // pages dropped up to here
}

// New starts tracking f from its current offset.
func New(f *os.File) *Writer {
	off, _ := f.Seek(0, 1)
	return &Writer{fd: int(f.Fd()), off: off, started: off, dropped: off}
}

// Wrote records n more bytes written at the end of the file.
func (w *Writer) Wrote(n int64) {
	w.off += n
	if w.off-w.started < Window {
		return
	}
	_ = unix.SyncFileRange(w.fd, w.started, w.off-w.started, unix.SYNC_FILE_RANGE_WRITE)
	if w.started-w.dropped >= Window {
		_ = unix.SyncFileRange(w.fd, w.dropped, w.started-w.dropped,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		_ = unix.Fadvise(w.fd, w.dropped, w.started-w.dropped, unix.FADV_DONTNEED)
		w.dropped = w.started
	}
	w.started = w.off
}
