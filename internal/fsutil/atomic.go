package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic writes data to path through a temporary file of its own
// in the same folder, fsyncs it, renames it into place and syncs the
// folder, so a reader (or a machine that lost power) sees either the old
// file or the whole new one. The file gets exactly mode, whatever the
// umask. A symlink at path is replaced, never followed. This is how den
// writes every record, key, pidfile and index.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Make the rename itself durable.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: syncing its folder: %w", path, err)
	}
	return nil
}

// ErrNotRegular is returned for a path den reads or locks as its own file
// that is a symlink, a folder or a device: something den did not write.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens path (flags as os.OpenFile, O_CREATE allowed) without
// following a symlink at its last element, and refuses anything but a
// regular file, so a file den keeps in a folder others can write (a
// project's .den/) cannot steer den's reads and writes elsewhere.
func OpenRegular(path string, flag int, mode os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, mode)
	if err != nil {
		switch {
		case errors.Is(err, unix.ELOOP):
			return nil, fmt.Errorf("%s: %w (it is a symlink)", path, ErrNotRegular)
		case errors.Is(err, unix.EISDIR):
			return nil, fmt.Errorf("%s: %w (it is a folder)", path, ErrNotRegular)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (it is a %s)", path, ErrNotRegular, kindOf(fi.Mode()))
	}
	// O_NONBLOCK was only there so a FIFO could not hang the open.
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "folder"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// ReadRegular reads the regular file at path, never through a symlink,
// and refuses one larger than max bytes.
func ReadRegular(path string, max int64) ([]byte, error) {
	f, err := OpenRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: den did not write it", path, max)
	}
	return data, nil
}

// WriteInRoot replaces name in root (a file or a symlink there, never
// followed; a folder is refused) with data, mode and owner. Every path
// resolves inside root: writes into a box or a machine's filesystem go
// through it.
func WriteInRoot(root *os.Root, name string, data []byte, mode os.FileMode, uid, gid int) error {
	if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("write /%s: it is a folder", name)
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace /%s: %w", name, err)
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	if err := FillOwned(f, data, mode, uid, gid); err != nil {
		return fmt.Errorf("write /%s: %w", name, err)
	}
	return nil
}

// OwnedFile is a file den has just made and hands to an owner: an
// *os.File, or one in a machine over SFTP.
type OwnedFile interface {
	io.WriteCloser
	Chown(uid, gid int) error
	Chmod(mode fs.FileMode) error
}

// FillOwned writes data to a new file f, gives it uid, gid and exactly
// mode (whatever the umask), and closes it; the first error wins.
func FillOwned(f OwnedFile, data []byte, mode fs.FileMode, uid, gid int) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
