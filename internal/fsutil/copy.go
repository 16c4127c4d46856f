package fsutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// CopyTree copies the folder src to dst, which must not exist, exactly as
// an overlay upper layer needs it: every file type (folders, files,
// symlinks, character and block devices such as overlay's 0:0 whiteouts,
// fifos, sockets), owners, modes with setuid/setgid/sticky, every extended
// attribute (trusted.overlay.* such as opaque folders, security.capability,
// ACLs, user.*), access and modification times to the nanosecond, and hard
// links among the copied files. It never follows a symlink and refuses to
// descend into another filesystem (a mount point). On error dst may hold a
// partial copy; the caller removes it. It returns the disk space the copy
// takes, counting hard-linked files once.
func CopyTree(ctx context.Context, src, dst string) (int64, error) {
	return copyTree(ctx, src, dst, true)
}

// CopyInto is CopyTree into the folder dst, which exists and is empty
// (a btrfs subvolume, say); dst gets src's owner, mode and attributes.
func CopyInto(ctx context.Context, src, dst string) (int64, error) {
	return copyTree(ctx, src, dst, false)
}

func copyTree(ctx context.Context, src, dst string, mkdir bool) (int64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return 0, fmt.Errorf("copy %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("copy %s: not a folder", src)
	}
	srcFd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", src, err)
	}
	defer unix.Close(srcFd)
	if mkdir {
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return 0, fmt.Errorf("copy to %s: %w", dst, err)
		}
	}
	dstFd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("copy to %s: %w", dst, err)
	}
	defer unix.Close(dstFd)
	c := &copier{ctx: ctx, dev: st.Dev, src: src, dst: dst, dstRoot: dstFd, links: map[inode]string{}}
	if err := c.dir(srcFd, dstFd, "."); err != nil {
		return 0, err
	}
	if err := c.attrs(srcFd, dstFd, "", &st, "."); err != nil {
		return 0, err
	}
	var dst0 unix.Stat_t
	if err := unix.Fstat(dstFd, &dst0); err == nil {
		c.size += dst0.Blocks * 512
	}
	return c.size, nil
}

type inode struct{ dev, ino uint64 }

type copier struct {
	ctx      context.Context
	dev      uint64 // src's filesystem
	src, dst string // for messages
	dstRoot  int
	links    map[inode]string // first copy (relative to dst) of a multiply linked inode
	size     int64
}

// dir copies the entries of the open folder srcFd into dstFd; rel is the
// folder's path relative to the roots.
func (c *copier) dir(srcFd, dstFd int, rel string) error {
	dup, err := unix.Dup(srcFd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), filepath.Join(c.src, rel))
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read folder %s: %w", filepath.Join(c.src, rel), err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.entry(srcFd, dstFd, name, filepath.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

// entry copies srcFd/name to dstFd/name.
func (c *copier) entry(srcFd, dstFd int, name, rel string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(srcFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %s: %w", filepath.Join(c.src, rel), err)
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		key := inode{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok {
			if err := unix.Linkat(c.dstRoot, first, dstFd, name, 0); err != nil {
				return fmt.Errorf("hard link %s to %s: %w", filepath.Join(c.dst, rel), first, err)
			}
			return nil
		}
		c.links[key] = rel
	}
	switch typ {
	case unix.S_IFDIR:
		return c.subdir(srcFd, dstFd, name, rel, &st)
	case unix.S_IFREG:
		return c.file(srcFd, dstFd, name, rel, &st)
	case unix.S_IFLNK:
		target, err := readlinkat(srcFd, name)
		if err != nil {
			return fmt.Errorf("read symlink %s: %w", filepath.Join(c.src, rel), err)
		}
		if err := unix.Symlinkat(target, dstFd, name); err != nil {
			return fmt.Errorf("create symlink %s: %w", filepath.Join(c.dst, rel), err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknodat(dstFd, name, st.Mode&(unix.S_IFMT|0o7777), int(st.Rdev)); err != nil {
			return fmt.Errorf("create node %s: %w", filepath.Join(c.dst, rel), err)
		}
	default:
		return fmt.Errorf("copy %s: unknown file type %#o", filepath.Join(c.src, rel), typ)
	}
	return c.attrs(srcFd, dstFd, name, &st, rel)
}

func (c *copier) subdir(srcFd, dstFd int, name, rel string, st *unix.Stat_t) error {
	if st.Dev != c.dev {
		return fmt.Errorf("refusing to copy %s: it is on another filesystem (a mount point)", filepath.Join(c.src, rel))
	}
	if err := unix.Mkdirat(dstFd, name, 0o700); err != nil {
		return fmt.Errorf("create folder %s: %w", filepath.Join(c.dst, rel), err)
	}
	sub, err := unix.Openat(srcFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(c.src, rel), err)
	}
	defer unix.Close(sub)
	dsub, err := unix.Openat(dstFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(c.dst, rel), err)
	}
	defer unix.Close(dsub)
	if err := c.dir(sub, dsub, rel); err != nil {
		return err
	}
	var dst unix.Stat_t
	if err := unix.Fstat(dsub, &dst); err == nil {
		c.size += dst.Blocks * 512
	}
	// The folder's own mode (maybe 0555) and times go on last, once it is
	// filled.
	return c.attrs(srcFd, dstFd, name, st, rel)
}

func (c *copier) file(srcFd, dstFd int, name, rel string, st *unix.Stat_t) error {
	in, err := unix.Openat(srcFd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(c.src, rel), err)
	}
	inF := os.NewFile(uintptr(in), filepath.Join(c.src, rel))
	defer inF.Close()
	out, err := unix.Openat(dstFd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(c.dst, rel), err)
	}
	outF := os.NewFile(uintptr(out), filepath.Join(c.dst, rel))
	defer outF.Close()
	if st.Size > 0 {
		// A reflink where the filesystem has them, else a copy
		// (copy_file_range under io.Copy).
		if err := unix.IoctlFileClone(out, in); err != nil {
			if _, err := io.Copy(outF, inF); err != nil {
				return fmt.Errorf("copy %s: %w", filepath.Join(c.src, rel), err)
			}
		}
	}
	var dst unix.Stat_t
	if err := unix.Fstat(out, &dst); err == nil {
		c.size += dst.Blocks * 512
	}
	return c.attrs(srcFd, dstFd, name, st, rel)
}

// attrs gives dstFd/name (dstFd itself when name is "") src's owner, mode,
// extended attributes and times, in that order: chown clears setuid bits
// and file capabilities, so both come after it.
func (c *copier) attrs(srcFd, dstFd int, name string, st *unix.Stat_t, rel string) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("copy %s of %s: %w", what, filepath.Join(c.src, rel), err)
	}
	typ := st.Mode & unix.S_IFMT
	if name == "" {
		if err := unix.Fchown(dstFd, int(st.Uid), int(st.Gid)); err != nil {
			return fail("owner", err)
		}
		if err := unix.Fchmod(dstFd, st.Mode&0o7777); err != nil {
			return fail("mode", err)
		}
		if err := copyXattrs(fdPath(srcFd, ""), fdPath(dstFd, ""), false); err != nil {
			return fail("extended attributes", err)
		}
		ts := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(dstFd, ".", ts, 0); err != nil {
			return fail("times", err)
		}
		return nil
	}
	if err := unix.Fchownat(dstFd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail("owner", err)
	}
	if typ != unix.S_IFLNK {
		if err := unix.Fchmodat(dstFd, name, st.Mode&0o7777, 0); err != nil {
			return fail("mode", err)
		}
	}
	// Through /proc/self/fd the parent is the open folder and name is
	// never followed (the l* calls), so no path is resolved twice.
	if err := copyXattrs(fdPath(srcFd, name), fdPath(dstFd, name), true); err != nil {
		return fail("extended attributes", err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dstFd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail("times", err)
	}
	return nil
}

// fdPath names the entry name of the open folder fd, or the folder itself.
func fdPath(fd int, name string) string {
	p := fmt.Sprintf("/proc/self/fd/%d", fd)
	if name != "" {
		p += "/" + name
	}
	return p
}

// copyXattrs copies every extended attribute of src to dst. With nofollow
// the l* calls act on the entries themselves; without it src and dst are
// /proc/self/fd links to open folders, which must be followed.
func copyXattrs(src, dst string, nofollow bool) error {
	list, get, set := unix.Listxattr, unix.Getxattr, unix.Setxattr
	if nofollow {
		list, get, set = unix.Llistxattr, unix.Lgetxattr, unix.Lsetxattr
	}
	names, err := xattrNames(src, list)
	if err != nil {
		return err
	}
	for _, n := range names {
		val, err := xattrValue(src, n, get)
		if err != nil {
			return fmt.Errorf("read %s: %w", n, err)
		}
		if err := set(dst, n, val, 0); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
	}
	return nil
}

// XattrNames lists the extended attributes of path (not followed).
func XattrNames(path string) ([]string, error) { return xattrNames(path, unix.Llistxattr) }

// Xattr reads one extended attribute of path (not followed).
func Xattr(path, name string) ([]byte, error) { return xattrValue(path, name, unix.Lgetxattr) }

func xattrNames(path string, list func(string, []byte) (int, error)) ([]string, error) {
	for {
		sz, err := list(path, nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil || sz == 0 {
			return nil, err
		}
		buf := make([]byte, sz)
		sz, err = list(path, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		var names []string
		start := 0
		for i, b := range buf[:sz] {
			if b == 0 {
				if i > start {
					names = append(names, string(buf[start:i]))
				}
				start = i + 1
			}
		}
		slices.Sort(names)
		return names, nil
	}
}

func xattrValue(path, name string, get func(string, string, []byte) (int, error)) ([]byte, error) {
	for {
		sz, err := get(path, name, nil)
		if err != nil {
			return nil, err
		}
		val := make([]byte, sz)
		if sz == 0 {
			return val, nil
		}
		sz, err = get(path, name, val)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return val[:sz], nil
	}
}

func readlinkat(dirFd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirFd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
