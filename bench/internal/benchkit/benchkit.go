// Package benchkit holds what the benchmark programs under bench/ share:
// size parsing and formatting, medians, raw HTTP requests to a registry,
// and the /proc readings (peak RSS, CPU time) that the reports quote.
package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ParseSize reads a byte count with an optional unit: KiB, MiB, GiB, TiB
// (also K, M, G, T) are binary, KB, MB, GB, TB decimal.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
		{"B", 1},
	}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional unit (256MiB, 2GiB)", s)
	}
	return int64(f * float64(mult)), nil
}

// SizeFlag formats a size so that ParseSize reads it back exactly.
func SizeFlag(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprint(n)
}

// Human formats a byte count in binary units.
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Median of ds, which must not be empty.
func Median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MiBps is size bytes over d in MiB/s (0 for a zero duration).
func MiBps(size int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(size) / (1 << 20) / d.Seconds()
}

// MBps is size bytes over d in decimal MB/s, the unit the registry
// baselines are quoted in.
func MBps(size int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(size) / 1e6 / d.Seconds()
}

// ProcField returns the value of the first "key: value" line of a /proc
// file, or "".
func ProcField(path, key string) string {
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// PeakRSS is process pid's peak resident set (VmHWM) in bytes, or 0 when
// it cannot be read.
func PeakRSS(pid int) int64 {
	var kb int64
	if _, err := fmt.Sscanf(ProcField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM"), "%d kB", &kb); err != nil {
		return 0
	}
	return kb << 10
}

// ResetPeakRSS restarts pid's VmHWM from its current RSS (Linux 4.0+,
// writing 5 to clear_refs), so that the next PeakRSS covers one step.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// CPUTime is the user plus system CPU time process pid has used so far,
// from /proc/PID/stat, or 0 when it cannot be read.
func CPUTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after its closing
	// parenthesis start with field 3, so utime (14) and stime (15) are at
	// 11 and 12.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const clockTicks = 100 // USER_HZ on every Linux architecture Go supports
	return time.Duration(ut+st) * time.Second / clockTicks
}

// MemAvailable reads MemAvailable from /proc/meminfo, or 0.
func MemAvailable() int64 {
	var kb int64
	if _, err := fmt.Sscanf(ProcField("/proc/meminfo", "MemAvailable"), "%d kB", &kb); err != nil {
		return 0
	}
	return kb << 10
}

// FreeDisk is the space available to this user on dir's file system.
func FreeDisk(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Settle flushes dirty pages before a timed step, so that no step pays for
// writing back what an earlier one wrote.
func Settle() {
	syscall.Sync()
	time.Sleep(200 * time.Millisecond)
}

// Evict drops every file under root from the page cache
// (posix_fadvise DONTNEED after a sync), so the next read comes from disk.
func Evict(root string) error {
	syscall.Sync()
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
}

// RawClient is a fresh transport per step, so no step reuses another's
// connection. An *os.File request body goes out with sendfile.
func RawClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.WriteBufferSize = 256 << 10
	t.ReadBufferSize = 256 << 10
	t.DisableCompression = true
	return &http.Client{Transport: t}
}

// RawDo sends one request with an n-byte body and returns its resolved
// Location header (u itself when there is none). A status not in ok is an
// error quoting the start of the response body.
func RawDo(ctx context.Context, c *http.Client, method string, u *url.URL, body io.Reader, n int64, hdr http.Header, ok ...int) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if !slices.Contains(ok, resp.StatusCode) {
		return nil, fmt.Errorf("%s %s: %s: %s", method, u.Redacted(), resp.Status, strings.TrimSpace(string(msg)))
	}
	if l := resp.Header.Get("Location"); l != "" {
		return u.Parse(l)
	}
	return u, nil
}

// WriteReport writes a markdown report to out, relative to the repository
// root unless absolute, creating its directory; an empty out writes
// nothing.
func WriteReport(root, out, report string) error {
	if out == "" {
		return nil
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		return err
	}
	Logf("wrote %s", out)
	return nil
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > n {
		parts = parts[len(parts)-n:]
	}
	return strings.Join(parts, "\n")
}

// Logf prints a timestamped progress line on stderr.
func Logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}
