//go:build linux

package idmap

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay's extended attributes: trusted.overlay.* when the overlay is
// mounted by the initial user namespace's root (a privileged container),
// user.overlay.* when it is mounted with the userxattr option (an
// unprivileged container, or den on the host with userxattr).
const (
	trustedOverlay = "trusted.overlay."
	userOverlay    = "user.overlay."
)

// ConvertUpper readies an overlay upper layer written by a privileged
// overlay (a machine made before den ran machines unprivileged) for an
// overlay mounted with userxattr: every trusted.overlay.* attribute (opaque
// folders, redirects, origins, xattr whiteouts, ...) becomes the same
// user.overlay.* one. Without this an unprivileged overlay ignores them,
// and a folder the machine deleted and made again shows the box's
// contents again. It returns how many attributes it converted.
//
// Character-device whiteouts need nothing. User extended attributes exist
// only on folders and regular files, so on a symlink or device a
// trusted.overlay.* attribute (an origin, which only inode numbering uses)
// is dropped. Ownership is left alone: den reaches the upper layer through
// an idmapped mount of the machine's folder, so it keeps the box's ids on
// disk, privileged or not (shifting ids would also mean rewriting ACLs and
// file capabilities, and putting back the set-id bits chown clears).
//
// Each attribute is written under its new name before the old one is
// removed, so ConvertUpper is idempotent and can be killed at any point
// and run again: an attribute present under both names is written again
// from the trusted one. The walk never follows a symlink nor leaves the
// layer's filesystem. The layer must not be in use by a mounted overlay.
func ConvertUpper(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("convert overlay layer: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return 0, fmt.Errorf("convert overlay layer: %w", err)
	}
	c := converter{dev: st.Dev, root: dir}
	err = c.dir(fd, ".")
	return c.n, err
}

type converter struct {
	dev  uint64
	root string
	n    int
}

// dir converts the folder open as fd (closed on return) and its entries.
func (c *converter) dir(fd int, rel string) error {
	defer unix.Close(fd)
	if err := c.attrs(fd, "", unix.S_IFDIR, rel); err != nil {
		return err
	}
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("convert overlay layer: read %s: %w", c.path(rel), err)
	}
	for _, name := range names {
		sub := filepath.Join(rel, name)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("convert overlay layer: %s: %w", c.path(sub), err)
		}
		typ := st.Mode & unix.S_IFMT
		if typ != unix.S_IFDIR {
			if err := c.attrs(fd, name, typ, sub); err != nil {
				return err
			}
			continue
		}
		if st.Dev != c.dev {
			return fmt.Errorf("convert overlay layer: %s is another filesystem mounted in the layer; unmount it first", c.path(sub))
		}
		child, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("convert overlay layer: %s: %w", c.path(sub), err)
		}
		if err := c.dir(child, sub); err != nil {
			return err
		}
	}
	return nil
}

func (c *converter) path(rel string) string { return filepath.Join(c.root, rel) }

// attrs converts the attributes of name in the folder dirFd ("" is the
// folder itself), an entry of type typ.
func (c *converter) attrs(dirFd int, name string, typ uint32, rel string) error {
	// A path through /proc/self/fd reaches the entry without following a
	// symlink in the layer; the l*xattr calls do not follow the last
	// component ("." for the folder itself, not the /proc link).
	if name == "" {
		name = "."
	}
	p := fmt.Sprintf("/proc/self/fd/%d/%s", dirFd, name)
	keys, err := listXattrs(p)
	if err != nil {
		return fmt.Errorf("convert overlay layer: list attributes of %s: %w", c.path(rel), err)
	}
	for _, k := range keys {
		suffix, ok := strings.CutPrefix(k, trustedOverlay)
		if !ok {
			continue
		}
		if typ == unix.S_IFDIR || typ == unix.S_IFREG {
			v, err := getXattr(p, k)
			if err != nil {
				return fmt.Errorf("convert overlay layer: read %s of %s: %w", k, c.path(rel), err)
			}
			if err := unix.Lsetxattr(p, userOverlay+suffix, v, 0); err != nil {
				return fmt.Errorf("convert overlay layer: set %s%s on %s: %w", userOverlay, suffix, c.path(rel), err)
			}
		}
		if err := unix.Lremovexattr(p, k); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("convert overlay layer: remove %s from %s: %w", k, c.path(rel), err)
		}
		c.n++
	}
	return nil
}

func readDirNames(fd int) ([]string, error) {
	// Read through a duplicate so the caller's offset and fd stay its own.
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dup)
	var names []string
	buf := make([]byte, 32*1024)
	for {
		n, err := unix.Getdents(dup, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func listXattrs(path string) ([]string, error) {
	size := 1024
	for {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			size *= 4
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var keys []string
		for _, k := range strings.Split(string(buf[:n]), "\x00") {
			if k != "" {
				keys = append(keys, k)
			}
		}
		return keys, nil
	}
}

func getXattr(path, key string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, key, buf)
		if errors.Is(err, unix.ERANGE) {
			size *= 4
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
