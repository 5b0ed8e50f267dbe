//go:build !linux

package promtest

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; t.Cleanup still stops Prometheus in the normal case.
func setParentDeathSignal(cmd *exec.Cmd) {}
