package regtest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill docker-registry if the process
// that started it dies without stopping it (a test binary killed by
// go test's -timeout, a benchmark hit by Ctrl-C), so no orphan registry
// keeps a port and a temp dir alive. The kernel ties this to the OS thread
// that forked, which Go only retires for goroutines that exit while locked
// with runtime.LockOSThread; callers of RunDistribution must not do that.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
