package lxc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/btrfs"
	"github.com/den-dev/den/internal/fsutil"
)

// btrfsStore: each box gets a read-only subvolume, made once per box in
// the LXC path's .boxes folder (a reflink copy of the box's rootfs: no
// data is copied); a machine's filesystem is a writable snapshot of it
// (its folder's rootfs), a snapshot a read-only snapshot of that
// (snapshots/SNAP/rootfs), a restore a writable snapshot of the snapshot
// swapped in with one rename: all in constant time, whatever the machine
// changed. A snapshot does not hold the subvolumes a guest made inside its
// own (btrfs snapshots do not recurse): it shows empty folders there.
type btrfsStore struct {
	cache string // where the boxes' subvolumes are
}

func (btrfsStore) name() string { return StoreBtrfs }

func rootOf(dir string) string { return filepath.Join(dir, "rootfs") }

// boxVolumes is where the btrfs store keeps its boxes' subvolumes.
func (p *Provider) boxVolumes() string { return filepath.Join(p.Path, ".boxes") }

func (s btrfsStore) make(ctx context.Context, dir, box string) error {
	vol, err := s.boxVolume(ctx, box)
	if err != nil {
		return err
	}
	return btrfs.Snapshot(vol, rootOf(dir), false)
}

// boxVolume returns the read-only subvolume of box rootfs box, making it
// the first time (a reflink copy into a new subvolume, renamed into place
// when whole; a concurrent maker's is kept). Its name is a hash of the
// box's path and its folder's inode and change time, so a box removed and
// added again gets a new one. The subvolumes of boxes that are gone are
// deleted on the way (machines do not need them: a snapshot stands alone).
func (s btrfsStore) boxVolume(ctx context.Context, box string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(box, &st); err != nil {
		return "", fmt.Errorf("box rootfs %q: %w", box, err)
	}
	if err := os.MkdirAll(s.cache, 0o700); err != nil {
		return "", err
	}
	s.sweep()
	vol := filepath.Join(s.cache, boxKey(box, &st))
	if btrfs.IsSubvolume(vol) {
		return vol, nil
	}
	tmp := fsutil.TempName(s.cache, tmpPrefix)
	if err := btrfs.Create(tmp); err != nil {
		return "", err
	}
	keep := false
	defer func() {
		if !keep {
			removeTree(tmp)
		}
	}()
	if _, err := fsutil.CopyInto(ctx, box, tmp); err != nil {
		return "", fmt.Errorf("make the box's subvolume: %w", err)
	}
	if err := btrfs.SetReadOnly(tmp, true); err != nil {
		return "", err
	}
	// Its record goes first, so a subvolume in place always has one.
	if err := fsutil.WriteFileAtomic(vol+".source", []byte(box+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, vol, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) && btrfs.IsSubvolume(vol) {
			return vol, nil
		}
		return "", err
	}
	keep = true
	return vol, nil
}

func boxKey(box string, st *unix.Stat_t) string {
	sum := sha256.Sum256([]byte(box + "\x00" + strconv.FormatUint(st.Ino, 10) + "\x00" + strconv.FormatInt(st.Ctim.Nano(), 10)))
	return hex.EncodeToString(sum[:8])
}

// sweep removes the work folders of dead makers, and the subvolumes of
// boxes that are gone (their recorded source path is gone, or holds
// another box now) with their records.
func (s btrfsStore) sweep() {
	fsutil.SweepDeadWith(s.cache, tmpPrefix, removeTree)
	records, _ := filepath.Glob(filepath.Join(s.cache, "*.source"))
	for _, rec := range records {
		vol := strings.TrimSuffix(rec, ".source")
		b, err := fsutil.ReadRegular(rec, 4096)
		if err != nil {
			continue
		}
		box := strings.TrimSuffix(string(b), "\n")
		var st unix.Stat_t
		if unix.Stat(box, &st) == nil && boxKey(box, &st) == filepath.Base(vol) {
			continue
		}
		if removeTree(vol) == nil {
			os.Remove(rec)
		}
	}
}

// view is the machine's subvolume itself: the machine is stopped.
func (btrfsStore) view(ctx context.Context, dir string, l layerState, fn func(string) error) error {
	return fn(rootOf(dir))
}

func (btrfsStore) rootfs(dir, box, mnt string, unprivileged bool) (string, string) {
	if unprivileged {
		return "dir:" + rootOf(mnt), ""
	}
	return "dir:" + rootOf(dir), ""
}

// layers: the machine's subvolume alone (it holds the whole filesystem).
func (btrfsStore) layers(dir, box string) []layerMount {
	return []layerMount{{src: rootOf(dir), at: "rootfs", rootfs: true}}
}

// unprivilege has nothing to convert: the subvolume keeps the box's ids,
// and there is no overlay metadata.
func (btrfsStore) unprivilege(dir string, snaps []string) error { return nil }

func (btrfsStore) save(ctx context.Context, dir, snap string) (int64, bool, error) {
	return 0, true, btrfs.Snapshot(rootOf(dir), rootOf(snap), true)
}

// restore makes a writable snapshot of the snapshot beside the machine's
// subvolume and swaps the two with one rename.
func (btrfsStore) restore(ctx context.Context, dir, snap string) error {
	tmp := filepath.Join(dir, "rootfs.restore")
	if err := removeTree(tmp); err != nil {
		return err
	}
	if err := btrfs.Snapshot(rootOf(snap), tmp, false); err != nil {
		return err
	}
	return swapIn(tmp, rootOf(dir))
}

// export is a writable snapshot of the machine's subvolume in
// dir/export, deleted afterwards.
func (btrfsStore) export(ctx context.Context, dir string, l layerState, fn func(string) error) (err error) {
	scratch := filepath.Join(dir, "export")
	if err := dropOverlay(scratch); err != nil {
		return err
	}
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return err
	}
	defer func() {
		if rerr := removeTree(scratch); rerr != nil && err == nil {
			err = rerr
		}
	}()
	view := rootOf(scratch)
	if err := btrfs.Snapshot(rootOf(dir), view, false); err != nil {
		return err
	}
	return fn(view)
}
