//go:build unix

package pack

import "golang.org/x/sys/unix"

// statEntry is the cache's key for the file at abs: device, inode, size,
// modification time and change time (ctime moves on any write or rename,
// whatever a tool does to the modification time). x/sys/unix names the
// times alike on every Unix; the conversions are for the systems whose
// types differ.
func statEntry(abs string) (cacheEntry, bool) {
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return cacheEntry{}, false
	}
	return cacheEntry{Path: abs, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: int64(st.Size),
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, true
}
