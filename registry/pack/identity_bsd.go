//go:build darwin || freebsd || netbsd

package pack

import (
	"os"
	"syscall"
)

// fileIdentity is what tells a changed file from the one whose digest was
// cached: device, inode and change time.
// (The conversions are for the architectures where the types differ.)
func fileIdentity(fi os.FileInfo) (dev, ino uint64, ctimeNs int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), st.Ctimespec.Sec*1e9 + st.Ctimespec.Nsec, true
}
