package machine

import (
	"io/fs"
	"os"
	"syscall"
)

// chownIfOwned gives p to newUID/newGID when it belonged to oldUID/oldGID.
func chownIfOwned(root *os.Root, p string, info fs.FileInfo, oldUID, oldGID, newUID, newGID int) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid, gid := -1, -1
	if int(st.Uid) == oldUID {
		uid = newUID
	}
	if int(st.Gid) == oldGID {
		gid = newGID
	}
	if uid == -1 && gid == -1 {
		return nil
	}
	mode := info.Mode()
	if err := root.Lchown(p, uid, gid); err != nil {
		return err
	}
	// chown clears setuid/setgid bits: put them back on regular files.
	if mode.Type() == 0 && mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		return root.Chmod(p, mode)
	}
	return nil
}
