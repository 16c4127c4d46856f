// Package box keeps den's boxes: the store under DEN_HOME, box files
// (vagrant-lxc's layout) read safely and written, and boxes built with
// debootstrap.
package box

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/version"
)

// Store is the box store: DEN_HOME/boxes/NAME/VERSION/lxc/, with "/" in a
// name stored as "-VAGRANTSLASH-" as Vagrant does.
type Store struct {
	dir string // DEN_HOME/boxes
	// LockWait is how long Lock waits for another den (default 10 s).
	LockWait time.Duration
}

// NewStore returns the store of the den home folder home.
func NewStore(home string) *Store { return &Store{dir: filepath.Join(home, "boxes")} }

// Path is the store's folder.
func (s *Store) Path() string { return s.dir }

// Box is one installed version of a box.
type Box struct {
	Name    string
	Version string
	Dir     string // .../NAME/VERSION/lxc
	Meta    Metadata
	Info    Info
	Created time.Time // when it was added to the store
}

// Rootfs is the box's unpacked root filesystem, used read-only by machines.
func (b *Box) Rootfs() string { return filepath.Join(b.Dir, "rootfs") }

// Size is the disk space of the unpacked box, as measured when it was added.
func (b *Box) Size() (int64, error) { return b.Info.Size, nil }

// LXCConfig returns the lines of the box's lxc-config (none when it has no
// such file), split as LXC splits them. They are untrusted: the provider
// applies only allowed keys. A file holding a NUL or another control
// character is refused with an error naming it and the line.
func (b *Box) LXCConfig() ([]string, error) {
	path := filepath.Join(b.Dir, "lxc-config")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines, err := splitLXCConfig(data)
	if err != nil {
		return nil, fmt.Errorf("box %q version %q: %s: %w; remove the box ('den box remove %s --version %s')", b.Name, b.Version, path, err, b.Name, b.Version)
	}
	return lines, nil
}

// splitLXCConfig splits a box's lxc-config on every line ending LXC knows:
// liblxc 5.0 reads a config file as lines ended by '\r' or '\n' (any
// number of them) and stops at a NUL. A line holding a NUL or any other
// control character but a tab is refused, naming the line; "\r\n" counts
// as one line ending.
func splitLXCConfig(data []byte) ([]string, error) {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if j := strings.IndexFunc(l, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }); j >= 0 {
			r, _ := utf8.DecodeRuneInString(l[j:])
			return nil, fmt.Errorf("line %d %q: control character %U", i+1, l, r)
		}
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil, nil
	}
	return lines, nil
}

// Metadata is a box's metadata.json: vagrant-lxc's fields and den's own.
type Metadata struct {
	Provider string `json:"provider"`
	// Version is vagrant-lxc's box format version ("1.0.0", "2", "3"), not
	// the box's release; den writes "3".
	Version      string            `json:"version,omitempty"`
	BuiltOn      string            `json:"built-on,omitempty"`
	TemplateOpts map[string]string `json:"template-opts,omitempty"`
	Den          *DenMetadata      `json:"den,omitempty"`
}

// DenMetadata is what den adds to a box it builds or packages.
type DenMetadata struct {
	Version string    `json:"version,omitempty"` // the box's release, e.g. 2026.11.23.150405
	User    string    `json:"user"`              // the login user
	Suite   string    `json:"suite,omitempty"`
	Created time.Time `json:"created"`
}

// FormatVersion is the vagrant-lxc box format den writes in its own
// format (FormatDen).
const FormatVersion = "3"

// VagrantLXCVersion is the box format vagrant-lxc 1.x reads without its
// deprecation path (HandleBoxMetadata: "1.0.0"; "2" and "3" are its
// pre-1.0 formats, for which it passes --auth-key to the template).
const VagrantLXCVersion = "1.0.0"

// Format is a layout of box file that den writes.
type Format string

// The box formats den writes. Both are read by 'den box add'.
const (
	// FormatDen is den's own: format "3", a zstd (or gzip, xz) rootfs
	// archive, den's metadata (login user, version, suite).
	FormatDen Format = "den"
	// FormatVagrantLXC is what vagrant-lxc 1.4 takes: a gzip tar of
	// metadata.json ("provider": "lxc", "version": "1.0.0"), lxc-config and
	// rootfs.tar.gz, whose entries are ./rootfs/... (its template unpacks
	// with tar xfz --strip-components=2 --xattrs), with numeric owners,
	// modes and extended attributes; no lxc-template (vagrant-lxc's own
	// one is used) and no template-opts.
	FormatVagrantLXC Format = "vagrant-lxc"
)

// ParseFormat checks a box format name given by a person.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatDen, FormatVagrantLXC:
		return f, nil
	}
	return "", fmt.Errorf("unknown box format %q: use den or vagrant-lxc", s)
}

// LoginUser is the user den logs in as: den's own field, else "vagrant"
// (vagrant-lxc boxes).
func (m Metadata) LoginUser() string {
	if m.Den != nil && m.Den.User != "" {
		return m.Den.User
	}
	return "vagrant"
}

// check validates metadata read from a box file.
func (m Metadata) check() error {
	if m.Provider != FormatProvider {
		return fmt.Errorf("metadata.json: provider is %q; den takes boxes for the \"lxc\" provider only", m.Provider)
	}
	switch m.Version {
	case "", "1.0.0", "2", "3":
	default:
		return fmt.Errorf("metadata.json: box format version %q is unknown (vagrant-lxc has 1.0.0, 2 and 3)", m.Version)
	}
	if u := m.LoginUser(); !userRE.MatchString(u) || u == "root" {
		return fmt.Errorf("metadata.json: login user %q is not a valid user name", u)
	}
	return nil
}

// Info is what den records about an installed box (lxc/den-box.json).
type Info struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Added   time.Time `json:"added"`
	Source  string    `json:"source,omitempty"` // the file or URL it came from
	// Catalog is the URL (or path) of the Vagrant catalog the box was
	// chosen from, which 'den box outdated' and 'den box update' read;
	// "" for a box added from a file or built.
	Catalog string   `json:"catalog,omitempty"`
	Size    int64    `json:"size"` // bytes on disk
	Dropped []string `json:"dropped,omitempty"`
}

const (
	infoFile = "den-box.json"
	metaFile = "metadata.json"
	tmpDir   = ".tmp"
	slash    = "-VAGRANTSLASH-"
)

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// CheckName validates a box name such as "debian/bookworm".
func CheckName(name string) error {
	if !nameRE.MatchString(name) || len(name) > 128 {
		return fmt.Errorf("invalid box name %q: use letters, digits, '.', '_' and '-', with at most one '/' (e.g. \"debian/bookworm\")", name)
	}
	return nil
}

// CheckVersion validates a box version such as "1.2.0" or "2026.11.23".
func CheckVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("invalid box version %q: use letters, digits, '.', '_', '+' and '-'", v)
	}
	return nil
}

func (s *Store) nameDir(name string) string {
	return filepath.Join(s.dir, strings.ReplaceAll(name, "/", slash))
}

func (s *Store) versionDir(name, version string) string {
	return filepath.Join(s.nameDir(name), version)
}

// ErrNotInstalled is returned by Get for a box (or version) not in the store.
var ErrNotInstalled = errors.New("box is not installed")

// Get returns the installed box name at version, or its newest version
// when version is "".
func (s *Store) Get(name, version string) (*Box, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if version != "" {
		b, err := s.read(name, version)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("box %q version %q: %w (installed: %s)", name, version, ErrNotInstalled, s.VersionList(name))
		}
		return b, err
	}
	boxes, err := s.Versions(name)
	if err != nil {
		return nil, err
	}
	if len(boxes) == 0 {
		return nil, fmt.Errorf("box %q: %w; add it with 'den box add %s FILE' (or 'den box build %s' for Debian)", name, ErrNotInstalled, name, name)
	}
	return boxes[len(boxes)-1], nil
}

// VersionList is the installed versions of name, oldest first ("none"),
// for messages.
func (s *Store) VersionList(name string) string {
	boxes, _ := s.Versions(name)
	if len(boxes) == 0 {
		return "none"
	}
	var vs []string
	for _, b := range boxes {
		vs = append(vs, b.Version)
	}
	return strings.Join(vs, ", ")
}

// Versions returns the installed versions of name, oldest first.
func (s *Store) Versions(name string) ([]*Box, error) {
	entries, err := os.ReadDir(s.nameDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Box
	for _, e := range entries {
		if !e.IsDir() || CheckVersion(e.Name()) != nil {
			continue
		}
		b, err := s.read(name, e.Name())
		if err != nil {
			continue // not a complete box: never shown
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Box) int { return version.Order(a.Version, b.Version) })
	return out, nil
}

// read loads one installed box; a version folder without den-box.json is
// not a box (the rename into place is the last step of an add).
func (s *Store) read(name, version string) (*Box, error) {
	if err := CheckVersion(version); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.versionDir(name, version), "lxc")
	b := &Box{Name: name, Version: version, Dir: dir}
	if err := readJSON(filepath.Join(dir, infoFile), &b.Info); err != nil {
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, metaFile), &b.Meta); err != nil {
		return nil, err
	}
	b.Created = b.Info.Added
	return b, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s is damaged: %w", path, err)
	}
	return nil
}

// List returns every installed box, by name then version.
func (s *Store) List() ([]*Box, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Box
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := strings.ReplaceAll(e.Name(), slash, "/")
		if CheckName(name) != nil {
			continue
		}
		bs, err := s.Versions(name)
		if err != nil {
			return nil, err
		}
		out = append(out, bs...)
	}
	return out, nil
}

// Remove deletes version of name, or every version when version is "". The
// folder is first renamed out of the store, so a box is either listed and
// whole or gone.
func (s *Store) Remove(name, version string) error {
	var boxes []*Box
	if version != "" {
		b, err := s.Get(name, version)
		if err != nil {
			return err
		}
		boxes = []*Box{b}
	} else {
		var err error
		if boxes, err = s.Versions(name); err != nil {
			return err
		}
		if len(boxes) == 0 {
			return fmt.Errorf("box %q: %w", name, ErrNotInstalled)
		}
	}
	for _, b := range boxes {
		if err := s.discard(filepath.Dir(b.Dir)); err != nil {
			return err
		}
	}
	os.Remove(s.nameDir(name)) // only when empty
	return nil
}

// discard renames dir into the temp area and deletes it there.
func (s *Store) discard(dir string) error {
	tmp, err := s.tempName("remove")
	if err != nil {
		return err
	}
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("remove box: %w", err)
	}
	return fsutil.RemoveTree(tmp)
}

// TempDir makes a new folder in the store's temp area (same filesystem as
// the store, so it can be renamed into place). Folders left there by a
// process that died are removed by the next store operation.
func (s *Store) TempDir() (string, error) {
	p, err := s.tempName("build")
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", err
	}
	return p, nil
}

// tempName returns an unused path in the temp area, named after this
// process, and sweeps folders of dead processes (an add or build that was
// killed), so an interrupted add leaves nothing for long.
func (s *Store) tempName(what string) (string, error) {
	// The store and DEN_HOME above it may be made here, by den's first
	// command: others (an unprivileged machine's root) must be able to
	// pass through DEN_HOME, so they are not 0700; the temp area is.
	if err := os.MkdirAll(s.dir, 0o711); err != nil {
		return "", fmt.Errorf("box store: %w", err)
	}
	tmp := filepath.Join(s.dir, tmpDir)
	if err := os.Mkdir(tmp, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("box store: %w", err)
	}
	fsutil.SweepDead(tmp, "")
	return fsutil.TempName(tmp, what+"-"), nil
}

// install renames the finished version folder tmp (holding lxc/) into place
// as name/version. It refuses to replace an installed version unless force.
func (s *Store) install(tmp, name, version string, force bool) (*Box, error) {
	dst := s.versionDir(name, version)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dst); err == nil {
		if !force {
			return nil, fmt.Errorf("box %q version %q is installed already (remove it first, or pass --force)", name, version)
		}
		if err := s.discard(dst); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("install box: %w", err)
	}
	return s.read(name, version)
}

// Import installs the rootfs folder built by BuildRootfs (inside a folder
// from TempDir) as name at version, moving it, not copying it.
func (s *Store) Import(name, version string, meta Metadata, rootfs string) (*Box, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := CheckVersion(version); err != nil {
		return nil, err
	}
	tmp, err := s.tempName("import")
	if err != nil {
		return nil, err
	}
	lxc := filepath.Join(tmp, "lxc")
	if err := os.MkdirAll(lxc, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			fsutil.RemoveTree(tmp)
		}
	}()
	if err := os.Rename(rootfs, filepath.Join(lxc, "rootfs")); err != nil {
		return nil, err
	}
	size, err := diskUsage(filepath.Join(lxc, "rootfs"))
	if err != nil {
		return nil, err
	}
	info := Info{Name: name, Version: version, Added: time.Now().UTC(), Source: "den box build", Size: size}
	metaRaw, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeBoxFiles(lxc, append(metaRaw, '\n'), nil, info); err != nil {
		return nil, err
	}
	b, err := s.install(tmp, name, version, false)
	if err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// writeBoxFiles writes metadata.json, lxc-config (when any) and
// den-box.json, the last one last: it marks the box complete.
func writeBoxFiles(lxc string, metaRaw, lxcConfig []byte, info Info) error {
	if err := os.WriteFile(filepath.Join(lxc, metaFile), metaRaw, 0o644); err != nil {
		return err
	}
	if lxcConfig != nil {
		if err := os.WriteFile(filepath.Join(lxc, "lxc-config"), lxcConfig, 0o644); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(lxc, infoFile), append(data, '\n'), 0o644)
}

// diskUsage sums the allocated size of the files under dir, counting hard
// links once.
func diskUsage(dir string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := inode{st.Dev, st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		total += st.Blocks * 512
		return nil
	})
	return total, err
}
