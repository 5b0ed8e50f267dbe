//go:build !linux

package main

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; Stop still ends the child in the normal case.
func setParentDeathSignal(cmd *exec.Cmd) {}
