//go:build !unix

package process

import (
	"errors"
	"syscall"
)

const supported = false

func groupAttr() *syscall.SysProcAttr { return nil }

func signalGroup(int, syscall.Signal) error { return errors.ErrUnsupported }
