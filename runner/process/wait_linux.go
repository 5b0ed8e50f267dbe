package process

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// waitExit blocks until the process pid has exited, without reaping it:
// the zombie keeps its pid, and so the process group id, from being
// reused while Stop may still signal the group (waitid(2), WNOWAIT). It
// reports false when it could not wait that way.
func waitExit(pid int) bool {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}

// waitGroup waits up to d for the processes of group pgid that were sent
// SIGKILL to die: a process takes a moment to exit, and a Stop that
// returned should leave nothing running. Zombies do not count; an orphan
// whose init does not reap (containers) stays one.
func waitGroup(pgid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; groupRuns(pgid) && time.Now().Before(deadline); wait = min(2*wait, 50*time.Millisecond) {
		time.Sleep(wait)
	}
}

// groupRuns reports whether a process of group pgid is alive and not a
// zombie, from /proc/PID/stat (proc(5): pid (comm) state ppid pgrp …).
// Without /proc it reports false.
func groupRuns(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	want := strconv.Itoa(pgid)
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 && f[2] == want && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}
