package box

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/den-dev/den/internal/fsutil"
)

// AddOptions tune Store.Add.
type AddOptions struct {
	// Version to store the box as; "" takes den's version from the box's
	// metadata, else "0" (Vagrant's version of an unversioned box).
	Version string
	Force   bool   // replace an installed box of the same version
	Source  string // where the box file came from, recorded in the store
	// Catalog is the catalog the box was chosen from, recorded in the
	// store for 'den box outdated' and 'den box update'; may be "".
	Catalog string
	// Progress is called with the box file's bytes read so far; may be nil.
	Progress func(done int64)
	// Warn reports what den skipped or dropped; may be nil.
	Warn func(format string, args ...any)
	// MaxSize is the most the box may unpack to, in bytes (each file
	// rounded up to 4 KiB); 0 means DefaultMaxSize. A box above it is
	// refused with an error wrapping ErrTooLarge.
	MaxSize int64
}

// rootfsNames are the rootfs archive names a box file may hold.
var rootfsNames = []string{"rootfs.tar", "rootfs.tar.gz", "rootfs.tgz", "rootfs.tar.xz", "rootfs.tar.zst", "rootfs.tar.zstd"}

// maxSmallFile bounds metadata.json and lxc-config.
const maxSmallFile = 1 << 20

// Add reads a box file from r and installs it as name. The box is unpacked
// into a temporary folder beside the store and renamed into place only when
// it is whole, so a failed, refused or interrupted add leaves nothing in the
// store. Entries that would land outside the box's folder are refused with
// an *ArchiveError naming them. den never runs anything from a box: an
// lxc-template or other extra file is skipped.
func (s *Store) Add(ctx context.Context, name string, r io.Reader, opts AddOptions) (*Box, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if opts.Version != "" {
		if err := CheckVersion(opts.Version); err != nil {
			return nil, err
		}
		if _, err := s.read(name, opts.Version); err == nil && !opts.Force {
			return nil, fmt.Errorf("box %q version %q is installed already (remove it first, or pass --force)", name, opts.Version)
		}
	}
	warn := opts.Warn
	if warn == nil {
		warn = func(string, ...any) {}
	}
	tmp, err := s.tempName("add")
	if err != nil {
		return nil, err
	}
	lxc := filepath.Join(tmp, "lxc")
	rootfs := filepath.Join(lxc, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			fsutil.RemoveTree(tmp)
		}
	}()
	need := int64(0) // the box unpacks to at least its file's size
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			need = fi.Size()
		}
	}
	bud, err := newBudget(tmp, opts.MaxSize, need)
	if err != nil {
		return nil, err
	}
	cr := &countingReader{ctx: ctx, r: r, progress: opts.Progress}
	parts, err := readBoxFile(cr, rootfs, warn, bud)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("box file: %w", err)
	}
	version := opts.Version
	if version == "" {
		version = "0"
		if parts.meta.Den != nil && parts.meta.Den.Version != "" {
			version = parts.meta.Den.Version
		}
		if err := CheckVersion(version); err != nil {
			return nil, fmt.Errorf("box file: metadata.json: %w", err)
		}
	}
	if err := os.Chmod(rootfs, 0o755); err != nil {
		return nil, err
	}
	size, err := diskUsage(rootfs)
	if err != nil {
		return nil, err
	}
	info := Info{Name: name, Version: version, Added: time.Now().UTC(), Source: opts.Source, Catalog: opts.Catalog, Size: size, Dropped: parts.dropped}
	if err := writeBoxFiles(lxc, parts.metaRaw, parts.lxcConfig, info); err != nil {
		return nil, err
	}
	b, err := s.install(tmp, name, version, opts.Force)
	if err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// boxParts is what readBoxFile found in a box file.
type boxParts struct {
	meta      Metadata
	metaRaw   []byte
	lxcConfig []byte
	dropped   []string
}

// readBoxFile reads the (compressed) outer tar of a box file, unpacking its
// rootfs archive into rootfs as it streams by.
func readBoxFile(r io.Reader, rootfs string, warn func(string, ...any), bud *budget) (*boxParts, error) {
	dr, _, err := Decompress(r)
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	parts := &boxParts{}
	var haveRootfs bool
	dropped := map[string]int{}
	tr := tar.NewReader(bud.streamLimit(dr))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var we *windowError
		if err != nil && (errors.Is(err, ErrTooLarge) || errors.As(err, &we)) {
			return nil, err
		}
		if err != nil {
			if haveRootfs || parts.metaRaw != nil {
				return nil, fmt.Errorf("the box file is truncated or damaged: %w", err)
			}
			return nil, fmt.Errorf("not a box file (a tar archive, compressed with gzip, xz or zstd): %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return nil, &ArchiveError{"box file", hdr.Name, err.Error()}
		}
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader:
			if name == "." || hdr.Typeflag == tar.TypeXGlobalHeader {
				continue
			}
		case tar.TypeReg, tar.TypeRegA:
		default:
			return nil, &ArchiveError{"box file", hdr.Name, "a box file holds plain files only (metadata.json, the rootfs archive, lxc-config)"}
		}
		switch {
		case name == metaFile:
			if parts.metaRaw, err = readSmall(tr, hdr); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(parts.metaRaw, &parts.meta); err != nil {
				return nil, fmt.Errorf("metadata.json: %w", err)
			}
			if err := parts.meta.check(); err != nil {
				return nil, err
			}
		case name == "lxc-config":
			if parts.lxcConfig, err = readSmall(tr, hdr); err != nil {
				return nil, err
			}
			if _, err := splitLXCConfig(parts.lxcConfig); err != nil {
				return nil, fmt.Errorf("lxc-config: %w", err)
			}
		case slices.Contains(rootfsNames, name):
			if haveRootfs {
				return nil, &ArchiveError{"box file", hdr.Name, "a second rootfs archive"}
			}
			haveRootfs = true
			if err := unpackRootfs(tr, name, rootfs, dropped, bud); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return nil, fmt.Errorf("the box file is truncated or damaged: %w", err)
				}
				return nil, err
			}
		case hdr.Typeflag == tar.TypeDir:
			warn("skipped folder %q in the box file", name)
		default:
			warn("skipped %q in the box file (den never runs a box's scripts or templates)", name)
		}
	}
	if parts.metaRaw == nil {
		return nil, errors.New("no metadata.json in the box file (is this a box for the lxc provider?)")
	}
	if !haveRootfs {
		return nil, fmt.Errorf("no rootfs archive in the box file (want one of %s)", strings.Join(rootfsNames, ", "))
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "etc", "passwd")); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("the rootfs has no /etc/passwd: this is not a Linux root filesystem")
	}
	for n, c := range dropped {
		parts.dropped = append(parts.dropped, fmt.Sprintf("%s (%d files)", n, c))
	}
	slices.Sort(parts.dropped)
	if len(parts.dropped) > 0 {
		warn("extended attributes not applied (den keeps file capabilities, user.* and ACLs only): %s", strings.Join(parts.dropped, ", "))
	}
	return parts, nil
}

func readSmall(r io.Reader, hdr *tar.Header) ([]byte, error) {
	if hdr.Size > maxSmallFile {
		return nil, &ArchiveError{"box file", hdr.Name, fmt.Sprintf("%d bytes; den reads at most %d", hdr.Size, maxSmallFile)}
	}
	return io.ReadAll(io.LimitReader(r, maxSmallFile))
}

// unpackRootfs extracts the rootfs archive (any compression, found by its
// bytes) streaming from r.
func unpackRootfs(r io.Reader, name, rootfs string, dropped map[string]int, bud *budget) error {
	dr, _, err := Decompress(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer dr.Close()
	lr := bud.streamLimit(dr)
	opts := &extractOptions{archive: name, devices: true, chown: os.Geteuid() == 0, dropped: dropped, budget: bud}
	if err := extractTar(lr, rootfs, opts); err != nil {
		return err
	}
	// Whatever follows the tar's end (padding) must still be read, so the
	// outer archive can go on.
	if _, err = io.Copy(io.Discard, lr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// countingReader reports progress and stops reading when ctx ends.
type countingReader struct {
	ctx      context.Context
	r        io.Reader
	n        int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil {
		c.progress(c.n)
	}
	return n, err
}

// PackOptions tune WriteBoxFile.
type PackOptions struct {
	Format      Format      // the layout; default FormatDen
	Compression Compression // of the rootfs archive; default zstd (gzip, the only one, for vagrant-lxc)
	LXCConfig   []byte      // the box's lxc-config, if any
	// Progress is called with the rootfs bytes packed so far; may be nil.
	Progress func(done int64)
}

// WriteBoxFile packs the folder rootfs and meta into a box file at output
// in vagrant-lxc's layout: a tar holding metadata.json, lxc-config and
// rootfs.tar.<ext> (entries under rootfs/, numeric owners). FormatVagrantLXC
// writes what vagrant-lxc 1.x reads (see Format). The file is written as
// output.part and renamed when complete.
func WriteBoxFile(ctx context.Context, output, rootfs string, meta Metadata, opts PackOptions) (err error) {
	prefix := "rootfs/"
	outer := opts.Compression
	switch opts.Format {
	case FormatDen, "":
		if opts.Compression == "" {
			opts.Compression = Zstd
		}
		meta.Version = FormatVersion
		outer = opts.Compression
	case FormatVagrantLXC:
		if opts.Compression != "" && opts.Compression != Gzip {
			return fmt.Errorf("a box for vagrant-lxc has a gzip rootfs (its template runs tar xfz), not %s", opts.Compression)
		}
		// Its template unpacks with --strip-components=2: "./rootfs/etc"
		// lands as etc. Template options are for a box's own lxc-template,
		// which den never writes; vagrant-lxc's default one refuses them.
		opts.Compression, outer, prefix = Gzip, Gzip, "./rootfs/"
		meta.Version = VagrantLXCVersion
		meta.TemplateOpts = nil
	default:
		return fmt.Errorf("unknown box format %q", opts.Format)
	}
	meta.Provider = FormatProvider
	metaRaw, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	metaRaw = append(metaRaw, '\n')
	inner, err := os.CreateTemp(filepath.Dir(output), ".den-rootfs-*.part")
	if err != nil {
		return err
	}
	defer os.Remove(inner.Name())
	defer inner.Close()
	if err := packRootfs(ctx, inner, rootfs, prefix, opts); err != nil {
		return fmt.Errorf("pack %s: %w", rootfs, err)
	}
	innerSize, err := inner.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := inner.Seek(0, io.SeekStart); err != nil {
		return err
	}

	part := output + ".part"
	f, err := os.Create(part)
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(part)
		}
	}()
	cw, err := Compress(f, outer, true)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(cw)
	now := time.Now().Truncate(time.Second)
	add := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := add(metaFile, int64(len(metaRaw)), strings.NewReader(string(metaRaw))); err != nil {
		return err
	}
	if opts.LXCConfig != nil {
		if err := add("lxc-config", int64(len(opts.LXCConfig)), strings.NewReader(string(opts.LXCConfig))); err != nil {
			return err
		}
	}
	if err := add("rootfs.tar"+opts.Compression.ext(), innerSize, inner); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(part, output)
}

// packRootfs writes rootfs as a compressed tar to w, every entry under
// prefix.
func packRootfs(ctx context.Context, w io.Writer, rootfs, prefix string, opts PackOptions) error {
	fi, err := os.Lstat(rootfs)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", rootfs)
	}
	cw, err := Compress(w, opts.Compression, false)
	if err != nil {
		return err
	}
	pw := &progressWriter{ctx: ctx, w: cw, progress: opts.Progress}
	if err := writeTree(pw, rootfs, prefix); err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

type progressWriter struct {
	ctx      context.Context
	w        io.Writer
	n        int64
	progress func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.progress != nil {
		p.progress(p.n)
	}
	return n, err
}
