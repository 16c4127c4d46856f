// Package fsutil removes den's own folders without ever leaving them: no
// symlink is followed and no mount point is crossed.
package fsutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MountsUnder returns the mount points at or below dir, from
// /proc/self/mountinfo.
func MountsUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	return found, sc.Err()
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ErrMounted is returned when something is mounted inside a folder to remove.
var ErrMounted = errors.New("something is mounted inside")

// RemoveTree deletes dir and everything below it. It refuses to start while
// anything is mounted at or below dir, never follows symlinks (they are
// unlinked), and never descends into another filesystem. It is safe to run
// again after an interruption. A missing dir is not an error.
func RemoveTree(dir string) error { return RemoveTreeWith(dir, nil) }

// RemoveTreeWith is RemoveTree, but where the tree holds a folder on
// another device that is no mount point (a btrfs subvolume), it calls
// other with the folder's parent, its name and its path, which removes it
// or refuses. With other nil such a folder is refused.
func RemoveTreeWith(dir string, other func(parentFd int, name, path string) error) error {
	dir = filepath.Clean(dir)
	if !filepath.IsAbs(dir) || dir == "/" {
		return fmt.Errorf("refusing to remove %q: not an absolute folder below /", dir)
	}
	mounts, err := MountsUnder(dir)
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	if len(mounts) > 0 {
		return fmt.Errorf("refusing to remove %q: %w: %s (unmount it first)", dir, ErrMounted, strings.Join(mounts, ", "))
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("remove %q: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlink(dir)
	}
	parent, err := unix.Open(filepath.Dir(dir), unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %q: %w", dir, err)
	}
	defer unix.Close(parent)
	var pst unix.Stat_t
	if err := unix.Fstat(parent, &pst); err != nil {
		return fmt.Errorf("remove %q: %w", dir, err)
	}
	if st.Dev != pst.Dev && other != nil {
		// dir itself is a subvolume.
		return other(parent, filepath.Base(dir), dir)
	}
	r := remover{other: other}
	return r.removeAt(parent, filepath.Base(dir), st.Dev, dir)
}

type remover struct {
	other func(parentFd int, name, path string) error
}

// removeAt removes name inside the directory parentFd, staying on device dev.
func (r remover) removeAt(parentFd int, name string, dev uint64, path string) error {
	fd, err := unix.Openat(parentFd, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("open %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("stat %q: %w", path, err)
	}
	if st.Dev != dev {
		unix.Close(fd)
		if r.other != nil {
			return r.other(parentFd, name, path)
		}
		return fmt.Errorf("refusing to remove %q: it is on another filesystem (a mount point)", path)
	}
	d := os.NewFile(uintptr(fd), path)
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, n := range names {
			var cst unix.Stat_t
			if err := unix.Fstatat(fd, n, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return fmt.Errorf("stat %q: %w", filepath.Join(path, n), err)
			}
			if cst.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := r.removeAt(fd, n, dev, filepath.Join(path, n)); err != nil {
					return err
				}
				continue
			}
			if err := unix.Unlinkat(fd, n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove %q: %w", filepath.Join(path, n), err)
			}
		}
		if err != nil || len(names) == 0 {
			break
		}
		// Entries were removed: start the listing again from the top.
		if _, err := d.Seek(0, 0); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(parentFd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %q: %w", path, err)
	}
	return nil
}
