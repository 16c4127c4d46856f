package lxd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/pkg/sftp"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/provider"
)

// sftpFS is a machine's filesystem through LXD's SFTP endpoint (an SFTP
// server LXD runs chrooted in the instance's root, as the instance's
// root user). Names are refused when they would leave the root even
// lexically ("../x"), though the chroot keeps them inside anyway.
type sftpFS struct{ c *sftp.Client }

var _ provider.GuestFS = sftpFS{}

// abs turns a GuestFS name into the SFTP path, refusing one that leaves
// the root.
func abs(name string) (string, error) {
	clean := path.Clean(name)
	if name == "" || path.IsAbs(name) || !fs.ValidPath(clean) {
		return "", &fs.PathError{Op: "open", Path: name, Err: errors.New("path leaves the machine's root")}
	}
	return path.Join("/", clean), nil
}

func (g sftpFS) ReadFile(name string) ([]byte, error) {
	p, err := abs(name)
	if err != nil {
		return nil, err
	}
	f, err := g.c.Open(p)
	if err != nil {
		return nil, pathErr("read", name, err)
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (g sftpFS) WriteFile(name string, data []byte, mode fs.FileMode, uid, gid int) error {
	p, err := abs(name)
	if err != nil {
		return err
	}
	if err := g.c.Remove(p); err != nil && !notExist(err) {
		return fmt.Errorf("replace /%s in the machine: %w", name, err)
	}
	f, err := g.c.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("write /%s in the machine: %w", name, err)
	}
	if err := fsutil.FillOwned(f, data, mode, uid, gid); err != nil {
		return fmt.Errorf("write /%s in the machine: %w", name, err)
	}
	return nil
}

func (g sftpFS) Remove(name string) error {
	p, err := abs(name)
	if err != nil {
		return err
	}
	return pathErr("remove", name, g.c.Remove(p))
}

func (g sftpFS) Lstat(name string) (fs.FileInfo, error) {
	p, err := abs(name)
	if err != nil {
		return nil, err
	}
	fi, err := g.c.Lstat(p)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return fileInfo{fi}, nil
}

func (g sftpFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := abs(name)
	if err != nil {
		return nil, err
	}
	list, err := g.c.ReadDir(p)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	out := make([]fs.DirEntry, len(list))
	for i, fi := range list {
		out[i] = fs.FileInfoToDirEntry(fileInfo{fi})
	}
	return out, nil
}

// MkdirAll makes the missing folders of name with mode, root-owned;
// existing ones keep their mode and owner. A symlink on the way is
// followed inside the machine's root (SFTP runs chrooted there).
func (g sftpFS) MkdirAll(name string, mode fs.FileMode) error {
	p, err := abs(name)
	if err != nil {
		return err
	}
	cur := ""
	for _, el := range strings.Split(strings.Trim(p, "/"), "/") {
		cur += "/" + el
		fi, err := g.c.Stat(cur)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: name, Err: fmt.Errorf("%s is not a folder", cur)}
			}
			continue
		}
		if !notExist(err) {
			return pathErr("mkdir", name, err)
		}
		if err := g.c.Mkdir(cur); err != nil {
			return pathErr("mkdir", name, err)
		}
		if err := g.c.Chmod(cur, mode); err != nil {
			return pathErr("mkdir", name, err)
		}
	}
	return nil
}

// Lchown changes the owner of name. SFTP has no lchown: for a symlink it
// changes nothing (a link's owner grants nothing), and never its target.
func (g sftpFS) Lchown(name string, uid, gid int) error {
	p, err := abs(name)
	if err != nil {
		return err
	}
	fi, err := g.c.Lstat(p)
	if err != nil {
		return pathErr("lchown", name, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	if uid < 0 || gid < 0 {
		st, ok := fi.Sys().(*sftp.FileStat)
		if !ok {
			return &fs.PathError{Op: "lchown", Path: name, Err: errors.New("owner unknown")}
		}
		if uid < 0 {
			uid = int(st.UID)
		}
		if gid < 0 {
			gid = int(st.GID)
		}
	}
	return pathErr("lchown", name, g.c.Chown(p, uid, gid))
}

func (g sftpFS) Chmod(name string, mode fs.FileMode) error {
	p, err := abs(name)
	if err != nil {
		return err
	}
	return pathErr("chmod", name, g.c.Chmod(p, mode))
}

// fileInfo reports the owner as provider.FileOwner.
type fileInfo struct{ fs.FileInfo }

func (f fileInfo) Sys() any {
	if st, ok := f.FileInfo.Sys().(*sftp.FileStat); ok {
		return provider.FileOwner{UID: int(st.UID), GID: int(st.GID)}
	}
	return nil
}

// notExist reports whether an SFTP error says "no such file".
func notExist(err error) bool {
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile
}

// pathErr makes an SFTP error a *fs.PathError that matches fs.ErrNotExist
// when it says so.
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if notExist(err) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}
