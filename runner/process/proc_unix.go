//go:build unix

package process

import "syscall"

// supported reports whether this system can run the engine: it needs
// process groups.
const supported = true

// groupAttr starts the server as the leader of a new process group, so
// that Stop reaches whatever it starts (vLLM's engine core, workers).
func groupAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends sig to every process of the group pgid.
func signalGroup(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }
