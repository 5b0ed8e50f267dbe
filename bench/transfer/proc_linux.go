package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the registry child if this
// program dies without stopping it, so no orphan keeps gigabytes of memory.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
