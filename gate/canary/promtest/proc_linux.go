package promtest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill Prometheus if the test binary
// dies without stopping it (go test's -timeout, Ctrl-C), so no orphan keeps
// a port and a temporary directory. The kernel ties this to the OS thread
// that forked; Start is not called from goroutines locked to their thread.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
