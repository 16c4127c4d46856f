//go:build linux

package idmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Pin creates a user namespace with the map m and keeps it alive on path,
// a bind mount of its nsfs file on an empty regular file (as `ip netns`
// keeps network namespaces): LXC's idmap=<path> mount option (see
// LXCMountOption) opens that path when the container starts, from inside
// the container's user namespace, where no /proc/PID/ns/user of a helper
// process could be opened (ptrace access is denied across sibling
// namespaces). The namespace lives until Unpin; a pin survives den but not
// a host reboot when path is on a tmpfs such as /run.
//
// The parent folder must exist and be traversable by the container's root
// (mode 0711 or wider) for LXC to reach the file. A path already pinned is
// pinned again with m.
func Pin(m Map, path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("pin path %q must be absolute", path)
	}
	ns, err := NewUserNS(m)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := Unpin(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY|unix.O_NOFOLLOW, 0o444)
	if err != nil {
		return fmt.Errorf("create user namespace pin %s: %w", path, err)
	}
	f.Close()
	fd, err := unix.OpenTree(int(ns.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err == nil {
		err = unix.MoveMount(fd, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(fd)
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("pin user namespace on %s: %w", path, err)
	}
	return nil
}

// Pinned reports whether path holds a pinned namespace (an nsfs mount).
func Pinned(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// Unpin unmounts the namespace pinned on path and removes the file. A
// missing path is not an error; a path that is something else than a pin
// or its empty file is left alone and reported.
func Unpin(path string) error {
	for Pinned(path) {
		if err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unpin user namespace %s: %w", path, err)
		}
	}
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unpin user namespace: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() != 0 {
		return fmt.Errorf("unpin user namespace: %s is not a pin (a %v of %d bytes); remove it by hand", path, st.Mode().Type(), st.Size())
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin user namespace: %w", err)
	}
	return nil
}

// LXCMountOption returns the option "idmap=<path>" for an lxc.mount.entry
// bind mount ("<src> <dst> none bind,create=dir,idmap=<path> 0 0"), with
// which LXC 5 makes the mount idmapped through the namespace pinned on
// path. LXC finds its own options by substring and cuts them out of the
// option string (parse_lxc_mount_attrs in conf.c), so a path containing
// "optional" or "relative" would be mangled: such paths are refused, as
// are relative ones and any character but letters, digits and /._-+@. Never use "idmap=container"
// for a host folder: it maps guest root to host root in that folder.
func LXCMountOption(path string) (string, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return "", fmt.Errorf("idmap path %q must be absolute and clean", path)
	}
	for _, r := range path {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+@", r)) {
			return "", fmt.Errorf("idmap path %q has %q; LXC's mount options take letters, digits and /._-+@ only here", path, r)
		}
	}
	for _, word := range []string{"optional", "relative"} {
		if strings.Contains(path, word) {
			return "", fmt.Errorf("idmap path %q contains %q, which LXC would take for its own mount option; choose another path", path, word)
		}
	}
	return "idmap=" + path, nil
}
