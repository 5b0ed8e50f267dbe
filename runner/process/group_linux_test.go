package process

import (
	"os"
	"strconv"
	"strings"
)

// liveInGroup lists the processes of group pgid that are still running,
// from /proc. Zombies do not count: an orphan that a non-reaping init
// (containers) never reaps is dead all the same.
func liveInGroup(pgid int) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []string{"reading /proc: " + err.Error()}
	}
	var live []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) || f[0] == "Z" || f[0] == "X" {
			continue
		}
		live = append(live, strings.TrimSpace(s[:i+1])+" "+f[0])
	}
	return live
}
