//go:build unix

package router

import (
	"errors"
	"net"
	"syscall"
)

// usable reports whether a pooled connection may carry a request: the
// upstream has not closed it (a FIN or RST waiting to be read) and has sent
// nothing unasked. It peeks at the socket without blocking, one system
// call, so that a connection the upstream closed while it was idle is
// found before a request is written to it, not after.
func usable(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var (
		rerr error
		buf  [1]byte
	)
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait: the answer is whatever is there now
	})
	if err != nil {
		return false
	}
	// Nothing to read: open and quiet.
	if errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) {
		return true
	}
	// 0 bytes is the upstream's FIN; an error (ECONNRESET) its RST; a byte
	// is an answer nobody asked for.
	return false
}
