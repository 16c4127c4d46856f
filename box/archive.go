package box

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/ui"
)

// Compression names a stream compression a box file or rootfs archive uses.
type Compression string

// The compressions den reads and writes.
const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Xz   Compression = "xz"
	Zstd Compression = "zstd"
)

// ParseCompression checks a compression name given by a person.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Gzip, Xz, Zstd, None:
		return c, nil
	}
	return "", fmt.Errorf("unknown compression %q: use zstd, gzip or xz", s)
}

// ext is the file name suffix of a rootfs archive with this compression.
func (c Compression) ext() string {
	switch c {
	case Gzip:
		return ".gz"
	case Xz:
		return ".xz"
	case Zstd:
		return ".zst"
	}
	return ""
}

// magic numbers of the compressed formats, and of formats den refuses.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
)

// Decompress detects the compression of r by its first bytes (never by a
// file name) and returns a reader of the decompressed stream. A stream
// that is none of gzip, xz or zstd is returned as it is (a plain tar). A
// zstd window or xz dictionary above 128 MiB is refused before the decoder
// allocates it.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", err
	}
	switch {
	case len(head) == 0:
		return nil, "", errors.New("the archive is empty")
	case hasPrefix(head, magicGzip):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("gzip: %w", err)
		}
		return z, Gzip, nil
	case hasPrefix(head, magicXz):
		z, err := xz.NewReader(newXzGuard(br, maxWindow))
		if err != nil {
			return nil, "", fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(z), Xz, nil
	case hasPrefix(head, magicZstd):
		z, err := zstd.NewReader(br, zstd.WithDecoderLowmem(false), zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderMaxMemory(maxWindow))
		if err != nil {
			return nil, "", fmt.Errorf("zstd: %w", err)
		}
		return zstdReadCloser{z}, Zstd, nil
	case hasPrefix(head, magicBzip2):
		return nil, "", errors.New("bzip2 archives are not supported: recompress with zstd, gzip or xz")
	}
	return io.NopCloser(br), None, nil
}

func hasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }

type zstdReadCloser struct{ d *zstd.Decoder }

func (z zstdReadCloser) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = &windowError{fmt.Sprintf("zstd: the window is larger than %s, the most den (and the zstd tool) allows", ui.Bytes(maxWindow)), err}
	}
	return n, err
}

// windowError is a compressed stream refused for the memory its decoder
// would need.
type windowError struct {
	msg string
	err error
}

func (e *windowError) Error() string  { return e.msg }
func (e *windowError) Unwrap() error  { return e.err }
func (z zstdReadCloser) Close() error { z.d.Close(); return nil }

// Compress returns a writer that compresses into w; fast picks the fastest
// level (for data that is compressed already). Close flushes it but does not
// close w.
func Compress(w io.Writer, c Compression, fast bool) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		level := gzip.DefaultCompression
		if fast {
			level = gzip.BestSpeed
		}
		return gzip.NewWriterLevel(w, level)
	case Xz:
		return xz.NewWriter(w)
	case Zstd:
		level := zstd.SpeedDefault
		if fast {
			level = zstd.SpeedFastest
		}
		return zstd.NewWriter(w, zstd.WithEncoderLevel(level))
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// ArchiveError is an archive entry den refuses; it names the entry.
type ArchiveError struct {
	Archive string // which archive: "box file", "rootfs.tar.gz"
	Entry   string // the entry's name as the archive has it
	Reason  string
}

func (e *ArchiveError) Error() string {
	return fmt.Sprintf("%s: entry %q refused: %s", e.Archive, e.Entry, e.Reason)
}

// extractOptions say what an extraction allows.
type extractOptions struct {
	archive string // name for errors
	// strip is a leading folder every entry must sit in and that is removed
	// ("rootfs/" in vagrant-lxc's rootfs.tar.gz); "" to detect it from the
	// first entry.
	strip   string
	devices bool // device nodes and fifos may be made (a rootfs)
	// skipOutside skips entries outside strip instead of refusing them
	// (an LXD image holds metadata.yaml and templates/ beside rootfs/).
	skipOutside bool
	chown       bool // apply the entries' owners (as root)
	// dropped counts extended attributes den did not apply, by name.
	dropped map[string]int
	// budget, when set, is charged for every entry before it is written.
	budget *budget
}

// extractTar unpacks the tar stream r into the empty folder dir. Every entry
// must land inside dir: names with ".." or a leading "/" are refused, no
// write goes through a symlink, a hard link must point at an earlier entry
// inside dir, and a relative symlink may not lead above dir (absolute link
// targets are kept: they are resolved inside the machine's root when it
// runs). Owners, modes (setuid too), times and allowed extended attributes
// (file capabilities, user.*, ACLs) are kept.
func extractTar(r io.Reader, dir string, opts *extractOptions) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{root: root, opts: opts, dirs: map[string]*tar.Header{}}
	tr := tar.NewReader(r)
	first := true
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", opts.archive, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return &ArchiveError{opts.archive, hdr.Name, err.Error()}
		}
		if first && opts.strip == "" {
			if name == "rootfs" || strings.HasPrefix(name, "rootfs/") {
				opts.strip = "rootfs/"
			} else {
				opts.strip = "-"
			}
		}
		if name != "." {
			first = false
		}
		name, ok := x.strip(name)
		if !ok && opts.skipOutside {
			continue
		}
		if !ok {
			return &ArchiveError{opts.archive, hdr.Name, "outside the archive's rootfs/ folder"}
		}
		if err := x.entry(hdr, name, tr); err != nil {
			var ae *ArchiveError
			if errors.As(err, &ae) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrNoSpace) {
				return err
			}
			return &ArchiveError{opts.archive, hdr.Name, err.Error()}
		}
	}
	return x.finishDirs()
}

// entryName cleans a tar entry name: "./etc/" → "etc", "." for the root.
// It refuses absolute names and any ".." element.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(raw, "/") {
		return "", errors.New("absolute name (entries must be relative to the archive's root)")
	}
	if strings.ContainsRune(raw, 0) {
		return "", errors.New("NUL byte in name")
	}
	for _, el := range strings.Split(raw, "/") {
		if el == ".." {
			return "", errors.New(`".." in name would leave the target folder`)
		}
	}
	return path.Clean(raw), nil
}

type extractor struct {
	root *os.Root
	opts *extractOptions
	dirs map[string]*tar.Header // folders whose attributes are set at the end
}

// strip removes the archive's leading folder from name.
func (x *extractor) strip(name string) (string, bool) {
	if x.opts.strip == "" || x.opts.strip == "-" || name == "." {
		return name, true
	}
	if name+"/" == x.opts.strip {
		return ".", true
	}
	rest, ok := strings.CutPrefix(name, x.opts.strip)
	return rest, ok
}

// checkParents makes sure every folder above name exists as a real folder
// (not a symlink) inside the root, creating missing ones when create is set.
func (x *extractor) checkParents(name string, create bool) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	p := ""
	for _, el := range strings.Split(dir, "/") {
		p = path.Join(p, el)
		fi, err := x.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !create:
			return &ArchiveError{x.opts.archive, name, fmt.Sprintf("%q does not exist", p)}
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return &ArchiveError{x.opts.archive, name, fmt.Sprintf("would be written through the symlink %q", p)}
		case !fi.IsDir():
			return &ArchiveError{x.opts.archive, name, fmt.Sprintf("%q is not a folder", p)}
		}
	}
	return nil
}

// clear removes what stands at name so a later entry can replace it, as
// tar does; a folder is only replaced by a folder.
func (x *extractor) clear(name string, isDir bool) (exists bool, err error) {
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.IsDir() {
		if isDir {
			return true, nil
		}
		return false, fmt.Errorf("would replace the folder %q", name)
	}
	return false, x.root.Remove(name)
}

func (x *extractor) entry(hdr *tar.Header, name string, r io.Reader) error {
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the archive's root is not a folder")
		}
		x.dirs["."] = hdr
		return nil
	}
	if b := x.opts.budget; b != nil {
		size := int64(0)
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
			size = hdr.Size
		}
		if err := b.take(size); err != nil {
			return err
		}
	}
	if err := x.checkParents(name, true); err != nil {
		return err
	}
	exists, err := x.clear(name, hdr.Typeflag == tar.TypeDir)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := x.root.Mkdir(name, 0o700); err != nil {
				return err
			}
		}
		x.dirs[name] = hdr
		return nil
	case tar.TypeReg, tar.TypeRegA:
		return x.file(hdr, name, r)
	case tar.TypeSymlink:
		return x.symlink(hdr, name)
	case tar.TypeLink:
		return x.hardlink(hdr, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !x.opts.devices {
			return errors.New("device nodes and fifos are allowed only inside a rootfs")
		}
		return x.node(hdr, name)
	}
	return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
}

func (x *extractor) file(hdr *tar.Header, name string, r io.Reader) error {
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = x.attrs(f, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return x.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

// attrs applies owner, mode (after chown, which clears setuid) and
// extended attributes to an open file or folder.
func (x *extractor) attrs(f *os.File, hdr *tar.Header) error {
	if x.opts.chown {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(tarMode(hdr)); err != nil {
		return err
	}
	return x.xattrs(int(f.Fd()), hdr)
}

// tarMode converts a tar header's mode bits to a FileMode, setuid, setgid
// and sticky included.
func tarMode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// xattrPrefix is how GNU tar and Go's archive/tar carry extended attributes.
const xattrPrefix = "SCHILY.xattr."

// allowedXattr tells which extended attributes a box may set: file
// capabilities (ping), user attributes and ACLs. Never trusted.* (overlayfs
// keeps its own metadata there) nor security labels.
func allowedXattr(name string) bool {
	switch {
	case name == "security.capability",
		name == "system.posix_acl_access",
		name == "system.posix_acl_default":
		return true
	case strings.HasPrefix(name, "user."):
		return !strings.HasPrefix(name, "user.overlay.")
	}
	return false
}

func (x *extractor) xattrs(fd int, hdr *tar.Header) error {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := strings.TrimPrefix(k, xattrPrefix)
		if !allowedXattr(name) || !x.opts.chown {
			x.opts.dropped[name]++
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(hdr.PAXRecords[k]), 0); err != nil {
			return fmt.Errorf("set extended attribute %s: %w", name, err)
		}
	}
	return nil
}

func (x *extractor) symlink(hdr *tar.Header, name string) error {
	target := hdr.Linkname
	if target == "" {
		return errors.New("symlink without a target")
	}
	if !strings.HasPrefix(target, "/") {
		resolved := path.Join(path.Dir(name), target)
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Errorf("symlink to %q leads out of the target folder", target)
		}
	}
	if err := x.root.Symlink(target, name); err != nil {
		return err
	}
	if x.opts.chown {
		if err := x.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) hardlink(hdr *tar.Header, name string) error {
	target, err := entryName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %v", hdr.Linkname, err)
	}
	target, ok := x.strip(target)
	if !ok || target == "." {
		return fmt.Errorf("hard link to %q leads out of the target folder", hdr.Linkname)
	}
	if err := x.checkParents(target, false); err != nil {
		return fmt.Errorf("hard link to %q: %v", hdr.Linkname, err)
	}
	fi, err := x.root.Lstat(target)
	if err != nil {
		return fmt.Errorf("hard link to %q, which is not an earlier entry of the archive", hdr.Linkname)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link to the folder %q", hdr.Linkname)
	}
	return x.root.Link(target, name)
}

// node makes a device node or fifo; os.Root has no mknod, so it is made
// with mknodat in the parent folder, which checkParents showed to be a real
// folder inside the root.
func (x *extractor) node(hdr *tar.Header, name string) error {
	parent, err := x.root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer parent.Close()
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	base := path.Base(name)
	fd := int(parent.Fd())
	if err := unix.Mknodat(fd, base, mode, int(dev)); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if x.opts.chown {
		if err := unix.Fchownat(fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return unix.Fchmodat(fd, base, mode&0o7777, 0)
}

// finishDirs sets the folders' owners, modes and times, deepest first, once
// everything inside them is written (a 0555 folder could not be filled).
func (x *extractor) finishDirs() error {
	names := make([]string, 0, len(x.dirs))
	for n := range x.dirs {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, n := range names {
		hdr := x.dirs[n]
		if n == "." {
			continue // the target folder itself keeps the store's attributes
		}
		f, err := x.root.OpenFile(n, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return &ArchiveError{x.opts.archive, hdr.Name, err.Error()}
		}
		err = x.attrs(f, hdr)
		f.Close()
		if err == nil {
			err = x.root.Chtimes(n, hdr.ModTime, hdr.ModTime)
		}
		if err != nil {
			return &ArchiveError{x.opts.archive, hdr.Name, err.Error()}
		}
	}
	return nil
}

// writeTree writes the folder dir as a tar stream to w, every entry under
// prefix ("rootfs/"), with numeric owners, modes, times, hard links,
// device nodes and extended attributes. Sockets are skipped.
func writeTree(w io.Writer, dir, prefix string) error {
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		full := dir + "/" + p
		if err := unix.Lstat(full, &st); err != nil {
			return err
		}
		name := prefix + p
		if p == "." {
			name = strings.TrimSuffix(prefix, "/")
			if name == "" {
				name = "."
			}
		}
		hdr := &tar.Header{
			Name:    name,
			Mode:    int64(st.Mode & 0o7777),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: time.Unix(st.Mtim.Unix()).Truncate(time.Second),
			Format:  tar.FormatPAX,
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case unix.S_IFREG:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = st.Size
			if st.Nlink > 1 {
				key := inode{st.Dev, st.Ino}
				if first, ok := seen[key]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					seen[key] = name
				}
			}
		case unix.S_IFLNK:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(full); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			hdr.Typeflag = tar.TypeChar
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				hdr.Typeflag = tar.TypeBlock
			}
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			hdr.Typeflag = tar.TypeFifo
		default:
			return nil // sockets are made by the programs that listen on them
		}
		if err := readXattrs(full, hdr); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return nil
		}
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err == nil && n != hdr.Size {
			err = fmt.Errorf("%s changed size while being packed", full)
		}
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// readXattrs puts the allowed extended attributes of the file at p (not
// followed) into hdr's PAX records.
func readXattrs(p string, hdr *tar.Header) error {
	names, err := fsutil.XattrNames(p)
	if err != nil {
		return err
	}
	for _, name := range names {
		if !allowedXattr(name) {
			continue
		}
		val, err := fsutil.Xattr(p, name)
		if err != nil {
			return err
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[xattrPrefix+name] = string(val)
	}
	return nil
}
