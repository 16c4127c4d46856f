package lxc

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/den-dev/den/internal/btrfs"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/provider"
)

// A store keeps machines' root filesystems: how a machine's is made from
// its box, what LXC boots, how it is snapshotted, restored and shown for
// packaging. Each machine keeps the store it was made with (layer.json);
// a new machine gets the one its Spec.Storage names (den.hcl's storage),
// else the provider's (Provider.Storage). The overlay store
// (overlay.go) is the default; the btrfs store (btrfsstore.go) is what a
// DEN_HOME on btrfs gets. A ZFS or LVM thin store would be one more file
// implementing this (ZFS datasets and clones, thin volumes and their
// snapshots), and a line in stores; this host's kernel has neither (see
// StorageInfo).
type store interface {
	// name is the store's name in layer.json and in den host check.
	name() string
	// make builds a new machine's filesystem in dir (a Create's work
	// folder, renamed into place afterwards) from the box rootfs box.
	make(ctx context.Context, dir, box string) error
	// view calls fn with the stopped machine's whole filesystem, writable
	// (Prepare's view); nothing stays mounted afterwards.
	view(ctx context.Context, dir string, l layerState, fn func(root string) error) error
	// rootfs is lxc.rootfs.path and lxc.rootfs.options of the machine in
	// dir over box; an unprivileged machine's through its mounts in mnt
	// (see layers).
	rootfs(dir, box, mnt string, unprivileged bool) (path, options string)
	// layers lists what an unprivileged machine's container reaches
	// through den's idmapped mounts: each source, its name in the
	// machine's mount folder, and whether it is read-only.
	layers(dir, box string) []layerMount
	// unprivilege readies a machine made privileged, and its snapshots
	// (their folders), for an unprivileged start; ids on disk stay.
	unprivilege(dir string, snaps []string) error
	// save saves the machine's filesystem into the new snapshot folder
	// snap: the bytes it copied, and whether it shares its blocks with the
	// machine instead (a copy-on-write snapshot).
	save(ctx context.Context, dir, snap string) (size int64, shared bool, err error)
	// restore replaces the stopped machine's filesystem with snapshot
	// snap's: interrupted anywhere, the machine has the one or the other,
	// whole.
	restore(ctx context.Context, dir, snap string) error
	// export calls fn with the stopped machine's whole filesystem, which
	// fn may change: its changes go to a scratch copy, thrown away.
	export(ctx context.Context, dir string, l layerState, fn func(root string) error) error
}

// layerMount is one of an unprivileged machine's idmapped mounts.
type layerMount struct {
	src, at string
	ro      bool
	// rootfs is set for the machine's root filesystem as LXC binds it:
	// set-id programs work there (an overlay LXC mounts has flags of its
	// own).
	rootfs bool
}

// Store names.
const (
	StoreOverlay = "overlay"
	StoreBtrfs   = "btrfs"
)

// storeOf returns the store of a machine's layer.
func (p *Provider) storeOf(l layerState) (store, error) {
	return p.store(l.store())
}

// store returns the store called name.
func (p *Provider) store(name string) (store, error) {
	switch name {
	case StoreOverlay:
		return overlayStore{}, nil
	case StoreBtrfs:
		return btrfsStore{cache: p.boxVolumes()}, nil
	}
	return nil, fmt.Errorf("unknown store %q", name)
}

// removeTree removes a folder of den's, btrfs subvolumes in it included,
// never following a symlink nor crossing a mount point.
func removeTree(dir string) error { return fsutil.RemoveTreeWith(dir, btrfs.RemoveAt) }

// SetStorage chooses the store of the machines this provider makes from
// now on whose Spec.Storage names none: "overlay", "btrfs" (the LXC path
// must be on btrfs) or "auto" (btrfs when the LXC path is on it, else
// overlay; what New chose). Machines made before keep theirs.
func (p *Provider) SetStorage(name string) error {
	onBtrfs, err := btrfs.Is(p.Path)
	if err != nil {
		return err
	}
	switch name {
	case "", "auto":
		p.Storage, p.storageWhy = StoreOverlay, "the default ("+p.Path+" is not on btrfs)"
		if onBtrfs {
			p.Storage, p.storageWhy = StoreBtrfs, p.Path+" is on btrfs"
		}
	case StoreOverlay:
		p.Storage, p.storageWhy = StoreOverlay, "chosen with DEN_STORAGE=overlay"
	case StoreBtrfs:
		if !onBtrfs {
			return fmt.Errorf("DEN_STORAGE=btrfs, but %s is not on a btrfs filesystem: put DEN_HOME on btrfs, or leave DEN_STORAGE unset", p.Path)
		}
		p.Storage, p.storageWhy = StoreBtrfs, "chosen with DEN_STORAGE=btrfs"
	default:
		return fmt.Errorf("DEN_STORAGE=%q: den's stores are \"overlay\" and \"btrfs\" (or \"auto\": btrfs when DEN_HOME is on btrfs)", name)
	}
	return nil
}

var (
	_ provider.StorageReporter = (*Provider)(nil)
	_ provider.StoreChooser    = (*Provider)(nil)
)

// Stores lists the stores a new machine may ask for (Spec.Storage): the
// overlay store always, the btrfs store when the LXC path is on btrfs.
func (p *Provider) Stores() map[string]string {
	out := map[string]string{StoreOverlay: "", StoreBtrfs: ""}
	if onBtrfs, err := btrfs.Is(p.Path); err != nil {
		out[StoreBtrfs] = fmt.Sprintf("den cannot tell whether DEN_HOME is on a btrfs filesystem (%v)", err)
	} else if !onBtrfs {
		out[StoreBtrfs] = fmt.Sprintf("DEN_HOME must be on a btrfs filesystem for it, and %s is not", p.Path)
	}
	return out
}

// MachineStore is the store machine name was made with (its layer.json);
// "" when there is no such machine.
func (p *Provider) MachineStore(ctx context.Context, name string) (string, error) {
	if !p.exists(name) {
		return "", nil
	}
	l, err := p.readLayer(name)
	if err != nil {
		return "", err
	}
	return l.store(), nil
}

// newStore returns the store a new machine asks for: want, or the
// provider's (Storage) when want is "". A store this host does not have
// is an error saying why.
func (p *Provider) newStore(want string) (store, error) {
	if want == "" {
		return p.store(p.Storage)
	}
	why, ok := p.Stores()[want]
	switch {
	case !ok:
		return nil, errdefs.Newf(errdefs.Invalid, "den has no store %q for LXC machines (it has %q and %q)", want, StoreOverlay, StoreBtrfs)
	case why != "":
		return nil, errdefs.Newf(errdefs.HostNotReady, "the %s store is not available: %s", want, why)
	}
	return p.store(want)
}

// StorageInfo says which store new machines get and why, and what the
// other stores need on this host, each a line for 'den host check'.
func (p *Provider) StorageInfo() []string {
	lines := []string{fmt.Sprintf("storage: %s for new machines unless den.hcl's storage says otherwise (%s)", p.Storage, p.storageWhy)}
	switch p.Storage {
	case StoreBtrfs:
		lines = append(lines, "  btrfs: a box is a read-only subvolume, a machine a writable snapshot of it, snapshots are btrfs snapshots (constant time)")
	default:
		lines = append(lines, "  overlay: a machine is an overlay upper layer over its box; snapshots copy that layer (reflinks where the filesystem has them)")
		lines = append(lines, "  btrfs: available when DEN_HOME is on a btrfs filesystem")
	}
	lines = append(lines, "  zfs: "+zfsState(), "  lvm thin: "+lvmThinState())
	return lines
}

// zfsState says whether ZFS could hold machines here: it needs the zfs
// kernel module, which this kernel would have to load.
func zfsState() string {
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && strings.Contains(string(b), "\tzfs\n") {
		return "the kernel has ZFS, but den has no ZFS store yet"
	}
	if modulesLoadable() {
		return "not available: the kernel has no zfs (a module den does not load: apt-get install zfs-dkms, then modprobe zfs)"
	}
	return "not available: the kernel has no zfs and loads no modules"
}

// lvmThinState says whether LVM thin volumes could hold machines here:
// they need device-mapper's thin-pool target.
func lvmThinState() string {
	b, err := os.ReadFile("/proc/devices")
	dm := err == nil && strings.Contains(string(b), " device-mapper\n")
	if !dm {
		if modulesLoadable() {
			return "not available: the kernel has no device-mapper (modprobe dm_thin_pool)"
		}
		return "not available: the kernel has no device-mapper and loads no modules"
	}
	return "device-mapper is there, but den has no LVM thin store yet"
}

// modulesLoadable reports whether this kernel loads modules.
func modulesLoadable() bool {
	_, err := os.Stat("/proc/modules")
	return err == nil
}
