//go:build linux

package idmap

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mount makes an idmapped bind mount of the folder src at target (an
// existing folder): files show there with their ids mapped through userns
// (a file owned by 0 on disk shows as owned by the host id the namespace
// maps 0 to), and a write there by host id h lands on disk as the id
// that userns maps to h. Ids the namespace does not map show as 65534 and
// cannot be written (EOVERFLOW). With readOnly the mount is read-only.
//
// Only src itself is mounted, not the mounts below it (no AT_RECURSIVE:
// an idmap can only be set on filesystems that support it, and a nested
// proc or nsfs mount would make the whole call fail). The mount is made
// detached (open_tree with OPEN_TREE_CLONE), given its idmap and flags in
// one mount_setattr, and only then attached with move_mount, so target
// never shows src unmapped, not even for an instant.
func Mount(src, target string, userns *os.File, readOnly bool) error {
	return mount(src, target, userns, readOnly, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
}

// MountRootfs is Mount for a machine's root filesystem that LXC binds as
// it is (a btrfs subvolume): set-id programs keep working (sudo in the
// guest), device nodes do not. Through the map a set-id file of the
// guest's root is the machine's own id range's: nothing of the host's.
func MountRootfs(src, target string, userns *os.File) error {
	return mount(src, target, userns, false, unix.MOUNT_ATTR_NODEV)
}

func mount(src, target string, userns *os.File, readOnly bool, flags uint64) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("idmapped mount of %s: open_tree: %w", src, err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | flags,
		Userns_fd: uint64(userns.Fd()),
	}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("idmapped mount of %s: mount_setattr: %w%s", src, err, setattrHint(err))
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("idmapped mount of %s on %s: move_mount: %w", src, target, err)
	}
	return nil
}

// BindReadOnly bind-mounts src (a folder or a file) read-only on target,
// in one step: the mount is made detached and read-only before it is
// attached, so target never shows src writable. A src inside an idmapped
// mount keeps that mount's idmap. Used to lay read-only files and hiding
// folders over a project tree before LXC binds it into a machine: mounts
// the host made before the container's namespaces are created are locked
// there, so guest root can neither unmount nor remount them.
func BindReadOnly(src, target string) error { return Bind(src, target, true) }

// Bind bind-mounts src (a folder or a file, not the mounts below it) on
// target, nosuid and nodev, read-only when readOnly: made detached, given
// its flags, then attached, as BindReadOnly.
func Bind(src, target string, readOnly bool) error {
	what := "bind"
	if readOnly {
		what = "read-only bind"
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("%s of %s: open_tree: %w", what, src, err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("%s of %s: mount_setattr: %w", what, src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("%s of %s on %s: move_mount: %w", what, src, target, err)
	}
	return nil
}

func setattrHint(err error) string {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return " (the kernel has no idmapped mounts: Linux 5.12 or later is needed)"
	case errors.Is(err, unix.EINVAL):
		return " (the filesystem may not support idmapped mounts, or the user namespace is the initial one)"
	}
	return ""
}

// Unmount detaches the mount at target (made by Mount, BindReadOnly or
// Pin). A target that is not a mount point is not an error. A busy mount,
// or one with mounts below it, is detached lazily with everything below
// it: the kernel drops them when the last user goes.
func Unmount(target string) error {
	err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH)
	}
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", target, err)
}
