package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// TempName returns an unused path in dir named prefix + "PID-NANOS-N", after
// this process, so SweepDead can tell the leftovers of a process that was
// killed half way. It creates nothing.
func TempName(dir, prefix string) string {
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("%s%d-%d-%d", prefix, os.Getpid(), time.Now().UnixNano(), i))
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p
		}
	}
}

// SweepDead removes the entries of dir that TempName named with prefix for
// a process that is gone, with RemoveTree. Errors are ignored: a sweep is
// tidying, and what it cannot remove stays for the next one.
func SweepDead(dir, prefix string) { SweepDeadWith(dir, prefix, RemoveTree) }

// SweepDeadWith is SweepDead removing with remove.
func SweepDeadWith(dir, prefix string, remove func(string) error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if DeadTemp(e.Name(), prefix) {
			remove(filepath.Join(dir, e.Name()))
		}
	}
}

// DeadTemp reports whether name is one TempName made with prefix for a
// process that is gone.
func DeadTemp(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	f := strings.Split(rest, "-")
	if !ok || len(f) < 3 {
		return false
	}
	pid, err := strconv.Atoi(f[len(f)-3])
	return err == nil && pid != os.Getpid() && !alive(pid)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
