package lxc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/idmap"
)

// overlayStore: a machine is an overlay upper layer (its folder's
// delta0, LXC puts the work folder beside it) over its box's rootfs, used
// read-only; a snapshot is a copy of delta0 (snapshots/SNAP/delta0).
type overlayStore struct{}

func (overlayStore) name() string { return StoreOverlay }

func upperOf(dir string) string { return filepath.Join(dir, "delta0") }

// make creates the empty upper layer, whose root takes the box root's
// mode and owner: an overlay shows the upper's attributes for a folder
// present in both.
func (overlayStore) make(ctx context.Context, dir, box string) error {
	var rootSt unix.Stat_t
	if err := unix.Stat(box, &rootSt); err != nil {
		return fmt.Errorf("box rootfs %q: %w", box, err)
	}
	up := upperOf(dir)
	if err := os.Mkdir(up, os.FileMode(rootSt.Mode&0o7777)); err != nil {
		return err
	}
	if err := os.Chown(up, int(rootSt.Uid), int(rootSt.Gid)); err != nil {
		return err
	}
	return os.Chmod(up, os.FileMode(rootSt.Mode&0o777))
}

// view mounts the overlay of the box and the upper layer on the host for
// a moment (in dir/prep), so copy-up keeps every parent's mode and owner.
func (overlayStore) view(ctx context.Context, dir string, l layerState, fn func(string) error) error {
	return withOverlay(filepath.Join(dir, "prep"), []string{l.Box}, upperOf(dir), l.user(), fn)
}

func (overlayStore) rootfs(dir, box, mnt string, unprivileged bool) (string, string) {
	if !unprivileged {
		return "overlay:" + box + ":" + upperOf(dir), ""
	}
	// The layers through den's idmapped mounts; the overlay keeps its
	// metadata in user.overlay.* (trusted.* is not the guest's).
	return "overlay:" + filepath.Join(mnt, "box") + ":" + filepath.Join(mnt, "machine", "delta0"), "userxattr"
}

// layers: the box read-only, and the whole machine folder (the overlay's
// work folder is beside delta0).
func (overlayStore) layers(dir, box string) []layerMount {
	return []layerMount{{src: box, at: "box", ro: true}, {src: dir, at: "machine"}}
}

// unprivilege rewrites the overlay metadata of the layer and of every
// snapshot's from trusted.overlay.* to user.overlay.* (idmap.ConvertUpper,
// idempotent).
func (overlayStore) unprivilege(dir string, snaps []string) error {
	layers := []string{upperOf(dir)}
	for _, s := range snaps {
		if _, err := os.Lstat(upperOf(s)); err == nil {
			layers = append(layers, upperOf(s))
		}
	}
	for _, d := range layers {
		if _, err := idmap.ConvertUpper(d); err != nil {
			return err
		}
	}
	return nil
}

// save copies the upper layer (what the machine changed on top of its
// box) exactly.
func (overlayStore) save(ctx context.Context, dir, snap string) (int64, bool, error) {
	size, err := fsutil.CopyTree(ctx, upperOf(dir), upperOf(snap))
	return size, false, err
}

// restore copies the snapshot's layer to delta0.restore beside the
// machine's, then swaps the two with one rename (RENAME_EXCHANGE) and
// deletes the old one.
func (overlayStore) restore(ctx context.Context, dir, snap string) error {
	tmp := filepath.Join(dir, "delta0.restore")
	if err := removeTree(tmp); err != nil {
		return err
	}
	if _, err := fsutil.CopyTree(ctx, upperOf(snap), tmp); err != nil {
		removeTree(tmp)
		return err
	}
	return swapIn(tmp, upperOf(dir))
}

// export shows the upper layer over the box, both read-only, with a
// scratch layer on top in dir/export.
func (overlayStore) export(ctx context.Context, dir string, l layerState, fn func(string) error) error {
	return withOverlay(filepath.Join(dir, "export"), []string{upperOf(dir), l.Box}, "", l.user(), fn)
}

// swapIn puts the folder tmp in place of cur with one rename
// (RENAME_EXCHANGE), then removes what was cur; with no cur at all (a
// damaged machine) tmp just takes its place.
func swapIn(tmp, cur string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, cur, unix.RENAME_EXCHANGE); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			removeTree(tmp)
			return fmt.Errorf("swap layers: %w", err)
		}
		return os.Rename(tmp, cur)
	}
	return removeTree(tmp) // the machine's previous layer
}

// withOverlay mounts an overlay of lowers (top first) under upper at
// dir/merged, calls fn with that path, then unmounts and deletes dir, also
// when fn fails. With upper "", a scratch layer dir/upper takes fn's
// writes (it gets the top lower's mode and owner, which the merged root
// shows) and goes with dir. A dir a killed den left is cleared first, so
// nothing stays mounted under a machine's folder. With userXattrs the
// overlay keeps its metadata in user.overlay.* attributes, as an
// unprivileged machine's overlay does (the layers are given by their
// plain paths: over an idmapped layer, the host's root is nobody).
func withOverlay(dir string, lowers []string, upper string, userXattrs bool, fn func(merged string) error) (err error) {
	for _, d := range append([]string{upper}, lowers...) {
		if strings.ContainsAny(d, ",:\n") {
			return fmt.Errorf("path %q contains ',' or ':', which overlay mounts cannot take", d)
		}
	}
	if err := dropOverlay(dir); err != nil {
		return err
	}
	work, merged := filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	folders := []string{dir, work, merged}
	scratch := upper == ""
	if scratch {
		upper = filepath.Join(dir, "upper")
		folders = append(folders, upper)
	}
	for _, d := range folders {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	defer func() {
		if derr := dropOverlay(dir); derr != nil && err == nil {
			err = derr
		}
	}()
	if scratch {
		var st unix.Stat_t
		if err := unix.Stat(lowers[0], &st); err != nil {
			return err
		}
		if err := os.Chown(upper, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := os.Chmod(upper, os.FileMode(st.Mode&0o777)); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"), upper, work)
	if userXattrs {
		opts += ",userxattr"
	}
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount the machine's overlay: %w", err)
	}
	return fn(merged)
}

// upper is the overlay upper layer of machine name.
func (p *Provider) upper(name string) string { return upperOf(p.dir(name)) }
