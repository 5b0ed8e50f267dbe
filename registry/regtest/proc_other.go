//go:build !linux

package regtest

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; Stop and t.Cleanup still end the process in the normal case.
func setParentDeathSignal(cmd *exec.Cmd) {}
