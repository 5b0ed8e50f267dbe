//go:build unix && !linux

package process

import (
	"errors"
	"strconv"
	"syscall"
)

// liveInGroup reports the group pgid as live while signal 0 reaches it
// (zombies included: there is no /proc to tell them apart).
func liveInGroup(pgid int) []string {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return []string{"process group " + strconv.Itoa(pgid)}
}
