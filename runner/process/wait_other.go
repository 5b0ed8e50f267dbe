//go:build !linux

package process

import "time"

// waitExit cannot wait without reaping here: the watcher reaps at once,
// and what is left of the group is not signalled after the leader exits.
func waitExit(int) bool { return false }

// waitGroup has no /proc to look at: it returns at once.
func waitGroup(int, time.Duration) {}
