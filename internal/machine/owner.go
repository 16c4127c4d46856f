package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/sshx"
)

// Privileged reports whether machine m runs (or would run) without a
// user namespace of its own, so that root in the guest is root on the
// host: den.hcl's privileged = true for a machine to be made, its record
// for one that exists (a machine made privileged that stays so). A server
// lets a user who is not root use only machines for which this is false,
// unless its administrator allows more.
func Privileged(m *Machine) bool {
	rec, err := m.Record()
	switch {
	case err == nil && rec != nil && rec.IDBase != 0:
		return false // made unprivileged; it stays so
	case err == nil && rec != nil && tooHigh(rec):
		return true // an old machine den cannot convert
	}
	return m.Config.Privileged
}

// DialDirect opens a pinned ssh connection to a machine with its record,
// key and pinned host key from .den/ alone, without asking the provider
// for its state: for a front end that learnt the state from den's server
// (a user who is not root cannot ask LXC).
func DialDirect(ctx context.Context, m *Machine) (*ssh.Client, error) {
	rec, err := m.Record()
	if err != nil {
		return nil, err
	}
	name := m.Name()
	if rec == nil || rec.Address == "" {
		return nil, errdefs.Machinef(errdefs.NotCreated, name, "machine %q is not created: run 'den up %s'", name, name)
	}
	t, err := pinnedTarget(m, rec)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := sshx.Dial(dctx, t)
	if err != nil {
		return nil, fmt.Errorf("connect to machine %q: %w", name, err)
	}
	return c, nil
}

// ChownState gives the project's .den/ — its folders and the files den
// wrote there — to the owner of the project folder, so that person can use
// the machines' keys (den ssh, ssh-config) when a server running as root
// made them. It never follows a symlink, changes only real folders and
// regular files with one link (a hard link to a file elsewhere is left
// alone), and works through open folder handles so a folder swapped for a
// link meanwhile is not followed either.
func ChownState(p *config.Project) error {
	uid, gid := ownerOf(p.Dir)
	if uid == 0 {
		return nil
	}
	proj, err := unix.Open(p.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open project folder: %w", err)
	}
	defer unix.Close(proj)
	top, err := unix.Openat(proj, layout.StateDirName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(p.Dir, layout.StateDirName), err)
	}
	defer unix.Close(top)
	return chownTree(top, uid, gid, 1)
}

// chownTree chowns the open folder dir and what it holds, folders down to
// depth more levels.
func chownTree(dir, uid, gid, depth int) error {
	if err := unix.Fchown(dir, uid, gid); err != nil {
		return err
	}
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if depth == 0 {
				continue
			}
			sub, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			err = chownTree(sub, uid, gid, depth-1)
			unix.Close(sub)
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			var fst unix.Stat_t
			if unix.Fstat(fd, &fst) == nil && fst.Mode&unix.S_IFMT == unix.S_IFREG && fst.Nlink == 1 {
				err = unix.Fchown(fd, uid, gid)
			}
			unix.Close(fd)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// readNames lists the names in the open folder dir.
func readNames(dir int) ([]string, error) {
	d, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return names, nil
}
