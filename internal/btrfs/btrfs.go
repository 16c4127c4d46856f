// Package btrfs makes, snapshots and deletes btrfs subvolumes through the
// kernel's ioctls (no btrfs-progs needed at run time).
package btrfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Magic is btrfs's statfs type.
const Magic = 0x9123683e

// The ioctls (linux/btrfs.h): _IOW/_IOR(0x94, nr, size).
const (
	iocSubvolCreate   = 0x5000940e // _IOW(0x94, 14, struct btrfs_ioctl_vol_args)
	iocSnapDestroy    = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	iocSnapCreateV2   = 0x50009417 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	iocSubvolGetflags = 0x80089419 // _IOR(0x94, 25, __u64)
	iocSubvolSetflags = 0x4008941a // _IOW(0x94, 26, __u64)

	subvolRdonly = 1 << 1 // BTRFS_SUBVOL_RDONLY

	// firstFreeObjectID is the inode number of every subvolume's root
	// folder; emptySubvolDirID that of the empty folder a snapshot shows
	// where its source had a subvolume inside (snapshots do not recurse).
	firstFreeObjectID = 256
	emptySubvolDirID  = 2
)

// volArgs is struct btrfs_ioctl_vol_args.
type volArgs struct {
	fd   int64
	name [4088]byte
}

// volArgsV2 is struct btrfs_ioctl_vol_args_v2.
type volArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [4040]byte
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// Is reports whether path is on a btrfs filesystem.
func Is(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return st.Type == Magic, nil
}

// IsSubvolume reports whether path is the root of a btrfs subvolume.
func IsSubvolume(path string) bool {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != firstFreeObjectID {
		return false
	}
	ok, _ := Is(path)
	return ok
}

// openParent opens path's parent folder (never following a last symlink)
// and returns it with path's name in it, checked for the ioctls.
func openParent(path string) (int, string, error) {
	name := filepath.Base(path)
	if name == "." || name == ".." || name == "/" || len(name) > 4039 {
		return -1, "", fmt.Errorf("bad subvolume name %q", path)
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	return fd, name, nil
}

// Create makes an empty subvolume at path.
func Create(path string) error {
	parent, name, err := openParent(path)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	var a volArgs
	copy(a.name[:], name)
	if err := ioctl(parent, iocSubvolCreate, unsafe.Pointer(&a)); err != nil {
		return &os.PathError{Op: "create subvolume", Path: path, Err: err}
	}
	return nil
}

// Snapshot makes dst a snapshot of the subvolume src, read-only when
// readOnly: at once, whatever src holds (the two share their blocks until
// either changes). Subvolumes inside src are not included (dst shows an
// empty folder in their place).
func Snapshot(src, dst string, readOnly bool) error {
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(sfd)
	parent, name, err := openParent(dst)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	a := volArgsV2{fd: int64(sfd)}
	if readOnly {
		a.flags = subvolRdonly
	}
	copy(a.name[:], name)
	if err := ioctl(parent, iocSnapCreateV2, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("snapshot %s as %s: %w", src, dst, err)
	}
	return nil
}

// SetReadOnly makes the subvolume at path read-only, or writable.
func SetReadOnly(path string, readOnly bool) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(fd, iocSubvolGetflags, unsafe.Pointer(&flags)); err != nil {
		return &os.PathError{Op: "read subvolume flags", Path: path, Err: err}
	}
	if readOnly {
		flags |= subvolRdonly
	} else {
		flags &^= subvolRdonly
	}
	if err := ioctl(fd, iocSubvolSetflags, unsafe.Pointer(&flags)); err != nil {
		return &os.PathError{Op: "set subvolume flags", Path: path, Err: err}
	}
	return nil
}

// Delete deletes the subvolume at path with the subvolumes inside it.
func Delete(path string) error {
	parent, name, err := openParent(path)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	return deleteAt(parent, name, path)
}

// deleteAt deletes subvolume name of the folder parent: at once, whatever
// it holds (the space comes back in the background). The kernel refuses a
// subvolume that holds others (a guest may make some in its root): those
// are found and deleted first.
func deleteAt(parent int, name, path string) error {
	var a volArgs
	copy(a.name[:], name)
	err := ioctl(parent, iocSnapDestroy, unsafe.Pointer(&a))
	if !errors.Is(err, unix.ENOTEMPTY) {
		if err != nil {
			return &os.PathError{Op: "delete subvolume", Path: path, Err: err}
		}
		return nil
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	err = deleteNested(fd, st.Dev, path)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := ioctl(parent, iocSnapDestroy, unsafe.Pointer(&a)); err != nil {
		return &os.PathError{Op: "delete subvolume", Path: path, Err: err}
	}
	return nil
}

// deleteNested walks the folder dirFd of the subvolume on device dev,
// never following a symlink nor leaving the subvolume, and deletes every
// subvolume it finds inside.
func deleteNested(dirFd int, dev uint64, path string) error {
	dup, err := unix.Dup(dirFd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), path)
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirFd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		p := filepath.Join(path, n)
		if st.Dev != dev {
			if err := RemoveAt(dirFd, n, p); err != nil {
				return err
			}
			continue
		}
		fd, err := unix.Openat(dirFd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: p, Err: err}
		}
		err = deleteNested(fd, dev, p)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrNotSubvolume is RemoveAt's error for a folder on another device that
// is no subvolume: a mount point, which den never crosses.
var ErrNotSubvolume = errors.New("on another filesystem (a mount point)")

// RemoveAt removes the folder name of the folder parent that lies on
// another device than its parent: a btrfs subvolume (deleted with the
// subvolumes in it) or the empty folder a snapshot shows for one.
// Anything else (a mount point) is refused with ErrNotSubvolume. It is
// what fsutil.RemoveTreeWith calls where a tree crosses devices.
func RemoveAt(parent int, name, path string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	var fs unix.Statfs_t
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	err = unix.Fstatfs(fd, &fs)
	unix.Close(fd)
	if err != nil || fs.Type != Magic {
		return fmt.Errorf("refusing to remove %q: %w", path, ErrNotSubvolume)
	}
	switch st.Ino {
	case firstFreeObjectID:
		return deleteAt(parent, name, path)
	case emptySubvolDirID:
		if err := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR); err != nil {
			return &os.PathError{Op: "remove", Path: path, Err: err}
		}
		return nil
	}
	return fmt.Errorf("refusing to remove %q: %w", path, ErrNotSubvolume)
}
