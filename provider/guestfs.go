package provider

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/den-dev/den/internal/fsutil"
)

// GuestFS is a machine's own filesystem before it boots, as Spec.Prepare
// sees it: names are slash-separated and relative to the machine's root,
// and no operation follows a symlink out of it (a box is untrusted: its
// /home/den/.ssh may be a link to /root/.ssh, or to the host's /).
type GuestFS interface {
	// ReadFile reads a file.
	ReadFile(name string) ([]byte, error)
	// WriteFile replaces name (a file or a symlink, never followed) with
	// data, mode and owner.
	WriteFile(name string, data []byte, mode fs.FileMode, uid, gid int) error
	// Remove removes a file, a symlink or an empty folder.
	Remove(name string) error
	// Lstat describes name without following a last symlink; Owner reads
	// its owner.
	Lstat(name string) (fs.FileInfo, error)
	// ReadDir lists a folder.
	ReadDir(name string) ([]fs.DirEntry, error)
	// MkdirAll makes name and its missing parents with mode; folders that
	// exist keep their mode and owner.
	MkdirAll(name string, mode fs.FileMode) error
	// Lchown changes the owner of name, not of a symlink's target.
	Lchown(name string, uid, gid int) error
	// Chmod changes the mode of name.
	Chmod(name string, mode fs.FileMode) error
}

// Owner returns the owner of a file GuestFS.Lstat described.
func Owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return int(st.Uid), int(st.Gid), true
	case FileOwner:
		return st.UID, st.GID, true
	case *FileOwner:
		return st.UID, st.GID, true
	}
	return 0, 0, false
}

// FileOwner is what a GuestFS not backed by a local folder returns from
// FileInfo.Sys.
type FileOwner struct{ UID, GID int }

// RootFS is a GuestFS over a local folder opened as an os.Root, which
// refuses every path that leaves it.
func RootFS(root *os.Root) GuestFS { return rootFS{root} }

type rootFS struct{ r *os.Root }

func (g rootFS) ReadFile(name string) ([]byte, error) { return g.r.ReadFile(name) }

func (g rootFS) WriteFile(name string, data []byte, mode fs.FileMode, uid, gid int) error {
	if err := fsutil.WriteInRoot(g.r, name, data, mode, uid, gid); err != nil {
		return fmt.Errorf("%w (in the machine)", err)
	}
	return nil
}

func (g rootFS) Remove(name string) error               { return g.r.Remove(name) }
func (g rootFS) Lstat(name string) (fs.FileInfo, error) { return g.r.Lstat(name) }
func (g rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	return fs.ReadDir(g.r.FS(), name)
}
func (g rootFS) MkdirAll(name string, mode fs.FileMode) error { return g.r.MkdirAll(name, mode) }
func (g rootFS) Lchown(name string, uid, gid int) error       { return g.r.Lchown(name, uid, gid) }
func (g rootFS) Chmod(name string, mode fs.FileMode) error    { return g.r.Chmod(name, mode) }
