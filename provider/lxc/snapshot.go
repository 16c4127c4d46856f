package lxc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/provider"
)

// Snapshots live in the machine's own folder, so Destroy removes them with
// it: snapshots/SNAP/meta.json and what the machine's store saved there
// (overlay: delta0, a copy of the upper layer; btrfs: rootfs, a read-only
// snapshot of the machine's subvolume). Work in progress sits in
// snapshots/.tmp-PID-N and is renamed into place when whole; a restore
// puts the snapshot's filesystem beside the machine's and swaps the two
// in one rename.

var (
	_ provider.Snapshotter = (*Provider)(nil)
	_ provider.Exporter    = (*Provider)(nil)
)

const (
	snapshotsDir = "snapshots"
	snapMeta     = "meta.json"
	tmpPrefix    = ".tmp-"
)

func (p *Provider) snapshots(name string) string { return filepath.Join(p.dir(name), snapshotsDir) }

func (p *Provider) snapshot(name, snap string) string {
	return filepath.Join(p.snapshots(name), snap)
}

func (p *Provider) restoreTemp(name string) string {
	return filepath.Join(p.dir(name), "delta0.restore")
}

// SaveSnapshot copies the machine's overlay upper layer (what it changed on
// top of its box) into snapshots/SNAP. A running container is frozen for the
// copy and thawed afterwards.
func (p *Provider) SaveSnapshot(ctx context.Context, name, snap string, replace bool) (provider.Snapshot, error) {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return provider.Snapshot{}, err
	}
	if !p.exists(name) {
		return provider.Snapshot{}, fmt.Errorf("container %q does not exist", name)
	}
	final := p.snapshot(name, snap)
	if _, err := os.Lstat(final); err == nil && !replace {
		return provider.Snapshot{}, fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotExists)
	}
	if err := os.MkdirAll(p.snapshots(name), 0o700); err != nil {
		return provider.Snapshot{}, fmt.Errorf("create snapshot folder: %w", err)
	}
	p.sweepSnapshots(name)
	tmp, err := p.snapshotTemp(name)
	if err != nil {
		return provider.Snapshot{}, err
	}
	ok := false
	defer func() {
		if !ok {
			removeTree(tmp)
		}
	}()
	layer, err := p.readLayer(name)
	if err != nil {
		return provider.Snapshot{}, err
	}
	store, err := p.storeOf(layer)
	if err != nil {
		return provider.Snapshot{}, err
	}
	st, err := p.State(ctx, name)
	if err != nil {
		return provider.Snapshot{}, err
	}
	created := time.Now().UTC()
	var size int64
	var shared bool
	save := func() (int64, error) {
		var err error
		size, shared, err = store.save(ctx, p.dir(name), tmp)
		return size, err
	}
	switch st {
	case provider.Running:
		_, err = p.frozenFor(ctx, name, func() (int64, error) {
			created = time.Now().UTC()
			return save()
		})
	case provider.Frozen, provider.Stopped:
		_, err = save()
	default:
		err = fmt.Errorf("container %q is %s", name, st)
	}
	if err != nil {
		return provider.Snapshot{}, fmt.Errorf("snapshot %q of %q: %w", snap, name, err)
	}
	s := provider.Snapshot{Name: snap, Created: created, Size: size, Shared: shared}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return provider.Snapshot{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, snapMeta), append(data, '\n'), 0o600); err != nil {
		return provider.Snapshot{}, err
	}
	if err := p.putSnapshot(tmp, final, replace); err != nil {
		return provider.Snapshot{}, fmt.Errorf("snapshot %q of %q: %w", snap, name, err)
	}
	ok = true
	return s, nil
}

// putSnapshot moves the finished snapshot tmp to final. Replacing swaps the
// two in one rename, so final is always a whole snapshot.
func (p *Provider) putSnapshot(tmp, final string, replace bool) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if !replace {
		return provider.ErrSnapshotExists
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE); err != nil {
		return err
	}
	return removeTree(tmp) // now the old snapshot
}

// snapshotTemp makes a new work folder in snapshots/, named after this
// process so a later run can tell a dead one's leftovers.
func (p *Provider) snapshotTemp(name string) (string, error) {
	tmp := fsutil.TempName(p.snapshots(name), tmpPrefix)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", fmt.Errorf("create snapshot work folder: %w", err)
	}
	return tmp, nil
}

// sweepSnapshots removes what an interrupted save, delete or restore left:
// work folders of processes that are gone.
func (p *Provider) sweepSnapshots(name string) {
	fsutil.SweepDeadWith(p.snapshots(name), tmpPrefix, removeTree)
}

// RestoreSnapshot puts snapshot snap's filesystem beside the machine's
// (overlay: a copy of its layer; btrfs: a writable snapshot of it), then
// swaps the two with one rename (RENAME_EXCHANGE) and deletes the old one:
// interrupted anywhere, the machine has either its old filesystem or the
// snapshot's, whole.
func (p *Provider) RestoreSnapshot(ctx context.Context, name, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	if !p.exists(name) {
		return fmt.Errorf("container %q does not exist", name)
	}
	if _, err := os.Lstat(filepath.Join(p.snapshot(name, snap), snapMeta)); err != nil {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	}
	layer, err := p.readLayer(name)
	if err != nil {
		return err
	}
	store, err := p.storeOf(layer)
	if err != nil {
		return err
	}
	st, err := p.State(ctx, name)
	if err != nil {
		return err
	}
	if st != provider.Stopped {
		return fmt.Errorf("container %q is %s: stop it before restoring a snapshot", name, st)
	}
	p.sweepSnapshots(name)
	if err := store.restore(ctx, p.dir(name), p.snapshot(name, snap)); err != nil {
		return fmt.Errorf("restore snapshot %q of %q: %w", snap, name, err)
	}
	return nil
}

// Snapshots lists the machine's snapshots, oldest first.
func (p *Provider) Snapshots(ctx context.Context, name string) ([]provider.Snapshot, error) {
	entries, err := os.ReadDir(p.snapshots(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []provider.Snapshot
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(p.snapshots(name), e.Name(), snapMeta))
		if err != nil {
			continue // not a whole snapshot
		}
		var s provider.Snapshot
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("snapshot %q of %q: %s is damaged: %w", e.Name(), name, snapMeta, err)
		}
		s.Name = e.Name()
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b provider.Snapshot) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// DeleteSnapshot renames the snapshot out of the list first, then deletes
// it, so an interrupted delete leaves no half snapshot in the list.
func (p *Provider) DeleteSnapshot(ctx context.Context, name, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	dir := p.snapshot(name, snap)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	}
	p.sweepSnapshots(name)
	tmp := filepath.Join(p.snapshots(name), fmt.Sprintf("%s%d-%d-del", tmpPrefix, os.Getpid(), time.Now().UnixNano()))
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("delete snapshot %q of %q: %w", snap, name, err)
	}
	if err := removeTree(tmp); err != nil {
		return fmt.Errorf("delete snapshot %q of %q: %w", snap, name, err)
	}
	return nil
}

// ExportRootfs shows the machine's whole filesystem in export/ of its
// folder and calls fn with it (overlay: its upper layer over its box, both
// read-only, with a scratch layer on top; btrfs: a writable snapshot of
// its subvolume). What fn changes is deleted afterwards; the machine's own
// filesystem is never written.
func (p *Provider) ExportRootfs(ctx context.Context, name string, fn func(rootfs string) error) error {
	if !p.exists(name) {
		return fmt.Errorf("container %q does not exist", name)
	}
	st, err := p.State(ctx, name)
	if err != nil {
		return err
	}
	if st != provider.Stopped {
		return fmt.Errorf("container %q is %s: stop it before exporting its filesystem", name, st)
	}
	layer, err := p.readLayer(name)
	if err != nil {
		return err
	}
	store, err := p.storeOf(layer)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(layer.Box); store.name() == StoreOverlay && (err != nil || !fi.IsDir()) {
		return fmt.Errorf("container %q: its box rootfs %s is missing (was the box removed with --force?)", name, layer.Box)
	}
	return store.export(ctx, p.dir(name), layer, fn)
}

// configLower reads the box's rootfs (the overlay's lower layer) from the
// config of a privileged container.
func (p *Provider) configLower(name string) (string, error) {
	c, err := p.open(name)
	if err != nil {
		return "", err
	}
	defer c.Release()
	v := c.ConfigItem("lxc.rootfs.path")
	if len(v) == 0 {
		return "", fmt.Errorf("container %q has no lxc.rootfs.path", name)
	}
	// liblxc gives the path without its "overlay:" type; the file has it.
	rest := strings.TrimPrefix(strings.TrimSpace(v[0]), "overlay:")
	lower, upper, ok := strings.Cut(rest, ":")
	if !ok || upper != upperOf(p.dir(name)) {
		return "", fmt.Errorf("container %q: lxc.rootfs.path %q is not den's overlay of a box", name, v[0])
	}
	return lower, nil
}
