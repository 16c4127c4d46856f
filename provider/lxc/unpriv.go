package lxc

// Unprivileged machines: each runs in a user namespace whose ids 0-65535
// are a range of den's block of subordinate ids (internal/idmap), its own.
// The box and the machine's layer keep their ids on disk (the box's); the
// container reaches them through idmapped mounts den makes on the host in
// MountRoot/NAME, kept from the start until the machine stops (a guest
// reboot mounts its rootfs again from them):
//
//	MountRoot/NAME/box        the box rootfs, read-only, 0 -> base
//	MountRoot/NAME/machine    the machine's folder (delta0, the overlay's
//	                          work folder), 0 -> base
//	MountRoot/NAME/folderN    each synced folder, its owner shown as the
//	                          login user (idmap.OwnerMap), with the guards
//	                          laid over it (den.hcl read-only, .den/ hidden)
//
// LXC binds the folders with rbind: mounts the host made before the
// container's namespaces exist are locked there, so guest root can
// neither unmount nor remount the guards. Every start clears what a killed
// den left in MountRoot/NAME first, and every stop unmounts it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/idmap"
	"github.com/den-dev/den/provider"
)

var _ provider.Isolator = (*Provider)(nil)

// MountRoot holds the host-side mounts of unprivileged machines, one
// folder per container (mode 0711: each machine's root must pass through
// it to its own folder, 0700 and owned by the machine's root).
var MountRoot = "/run/den/mnt"

// subIDs are the files of den's id block (tests use copies).
var subIDs = idmap.SystemFiles

func (p *Provider) mountDir(name string) string { return filepath.Join(MountRoot, name) }

// layerFile is what the provider keeps about a machine's layer, beside it.
const layerFile = "layer.json"

// Overlay keeps its metadata (opaque folders, redirects, whiteouts) in
// trusted.overlay.* attributes when root of the host mounts it, and in
// user.overlay.* when it is mounted with userxattr, as an unprivileged
// machine's is.
const (
	xattrsTrusted = "trusted"
	xattrsUser    = "user"
)

// layerState says which box a machine's layer lies over and which
// attributes its overlay metadata is in. A machine made before den ran
// machines unprivileged has no layer.json: its box is in the config's
// lxc.rootfs.path and its attributes are trusted.overlay.*.
type layerState struct {
	Box    string `json:"box"`
	Xattrs string `json:"xattrs"`
	// Store is the machine's store ("" for the overlay store, which
	// machines had before den had others).
	Store string `json:"store,omitempty"`
}

// user reports whether the machine runs unprivileged (for an overlay:
// its metadata is in user.overlay.* attributes).
func (l layerState) user() bool { return l.Xattrs == xattrsUser }

func (l layerState) store() string {
	if l.Store == "" {
		return StoreOverlay
	}
	return l.Store
}

// readLayer reads the machine's layer.json, or derives it from the config
// of a machine made before den wrote one.
func (p *Provider) readLayer(name string) (layerState, error) {
	b, err := fsutil.ReadRegular(filepath.Join(p.dir(name), layerFile), 1<<16)
	if errors.Is(err, fs.ErrNotExist) {
		box, err := p.configLower(name)
		return layerState{Box: box, Xattrs: xattrsTrusted}, err
	}
	if err != nil {
		return layerState{}, err
	}
	var l layerState
	if err := json.Unmarshal(b, &l); err != nil || (l.Xattrs != xattrsUser && l.Xattrs != xattrsTrusted) || !filepath.IsAbs(l.Box) || (l.Store != "" && l.Store != StoreOverlay && l.Store != StoreBtrfs) {
		return layerState{}, fmt.Errorf("container %q: %s is damaged (%q)", name, filepath.Join(p.dir(name), layerFile), b)
	}
	return l, nil
}

func writeLayer(dir string, l layerState) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, layerFile), append(b, '\n'), 0o600)
}

// unprivilege converts the stopped machine's layer and every snapshot's
// (all written by a privileged machine) for an unprivileged one (the
// store's unprivilege: an overlay's trusted.overlay.* attributes become
// user.overlay.*). The ids on disk stay. layer.json records it last, so a
// conversion cut short runs again, whole, at the next start.
func (p *Provider) unprivilege(name string, st store, l layerState) (layerState, error) {
	var snaps []string
	entries, err := os.ReadDir(p.snapshots(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return l, err
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			snaps = append(snaps, p.snapshot(name, e.Name()))
		}
	}
	if err := st.unprivilege(p.dir(name), snaps); err != nil {
		return l, fmt.Errorf("convert machine %q to run unprivileged: %w", name, err)
	}
	l.Xattrs = xattrsUser
	return l, writeLayer(p.dir(name), l)
}

// checkBase refuses a range that is not one of den's block: a record in
// .den/ is data, and a base of 1000 would make guest root a host user.
func checkBase(base uint32) error {
	b, ok, err := subIDs.Current()
	if err != nil {
		return err
	}
	if !ok || base < b.Base || uint64(base)+idmap.RangeSize > b.End() || (base-b.Base)%idmap.RangeSize != 0 {
		return fmt.Errorf("id range %d is not one of den's id block (%s); den allocates ranges itself", base, subIDs.Record)
	}
	return nil
}

// checkTraversable makes sure an unprivileged machine's root can pass
// through every folder of the LXC path, as liblxc requires before it
// starts one (it refuses with "Could not access ..."). The LXC path and
// the den home that holds it are den's own: one that others cannot
// enter (made by an older den, or by hand) gets o+x and g+x, as den
// makes them; a folder above them is the host's, and only named.
func checkTraversable(dir string) error {
	own := filepath.Dir(dir) // DEN_HOME
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if d == dir || d == own {
				if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
					return fmt.Errorf("let unprivileged machines pass through den's folder %s: %w", d, err)
				}
			} else {
				return fmt.Errorf("an unprivileged machine's root must pass through %s to start, but its mode is %04o: run 'chmod o+x %s', or use a DEN_HOME whose folders others may enter", d, fi.Mode().Perm(), d)
			}
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// AllocateIDs reserves den's id block when it is not yet (idmap.Files.Reserve:
// root's line in /etc/subuid and /etc/subgid), then returns prefer when it
// is a range of the block that nothing uses, else the block's first free
// range from the one name hashes to. In use: taken, the ranges in the
// configs of this LXC path (but name's), and the ranges of every process
// of the host running with an id of the block (a machine of a den home
// den does not know about).
func (p *Provider) AllocateIDs(ctx context.Context, name string, prefer uint32, taken []uint32) (uint32, error) {
	block, err := subIDs.Reserve()
	if err != nil {
		return 0, fmt.Errorf("reserve den's subordinate ids: %w", err)
	}
	inUse := slices.Clone(taken)
	inUse = append(inUse, p.configRanges(name)...)
	inUse = append(inUse, liveRanges(block)...)
	if prefer != 0 && prefer >= block.Base && uint64(prefer)+idmap.RangeSize <= block.End() && (prefer-block.Base)%idmap.RangeSize == 0 {
		free := true
		for _, u := range inUse {
			if u < prefer+idmap.RangeSize && prefer < u+idmap.RangeSize {
				free = false
			}
		}
		if free {
			return prefer, nil
		}
	}
	return block.Pick(inUse, name)
}

// configRanges lists the first host uid of the lxc.idmap lines of every
// container config in this LXC path but self's.
func (p *Provider) configRanges(self string) []uint32 {
	var out []uint32
	configs, _ := filepath.Glob(filepath.Join(p.Path, "*", "config"))
	for _, c := range configs {
		if filepath.Base(filepath.Dir(c)) == self {
			continue
		}
		eachLine(c, func(l string) {
			k, v, ok := strings.Cut(l, "=")
			if !ok || strings.TrimSpace(k) != "lxc.idmap" {
				return
			}
			if f := strings.Fields(v); len(f) == 4 && f[0] == "u" {
				if n, err := strconv.ParseUint(f[2], 10, 32); err == nil {
					out = append(out, uint32(n))
				}
			}
		})
	}
	return out
}

// liveRanges lists the ranges of block that processes run in: a process
// whose uid is in the block belongs to a machine using that range.
func liveRanges(block idmap.Block) []uint32 {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	seen := map[uint32]bool{}
	var out []uint32
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+n, &st) != nil {
			continue
		}
		if st.Uid < block.Base || uint64(st.Uid) >= block.End() {
			continue
		}
		base := block.Base + (st.Uid-block.Base)/idmap.RangeSize*idmap.RangeSize
		if !seen[base] {
			seen[base] = true
			out = append(out, base)
		}
	}
	return out
}

// folderMount is one synced folder or guard of an unprivileged machine,
// as den lays it out on the host before the start.
type folderMount struct {
	provider.Mount
	parent int    // index of the mount it lies in, or -1
	dir    string // where it is mounted on the host
}

// planFolders lays the spec's mounts out under the machine's mount folder:
// each mount not inside another gets folderN; one inside an earlier mount
// goes at its place in that mount's tree.
func (p *Provider) planFolders(spec *provider.Spec) []folderMount {
	var plan []folderMount
	for _, m := range spec.Mounts {
		f := folderMount{Mount: m, parent: -1}
		target := filepath.Clean(m.Target)
		for i := len(plan) - 1; i >= 0; i-- {
			pt := filepath.Clean(plan[i].Target)
			if rel, ok := strings.CutPrefix(target, pt+"/"); ok || pt == "/" {
				if pt == "/" {
					rel = strings.TrimPrefix(target, "/")
				}
				f.parent, f.dir = i, filepath.Join(plan[i].dir, rel)
				break
			}
		}
		if f.parent < 0 {
			n := 0
			for _, q := range plan {
				if q.parent < 0 {
					n++
				}
			}
			f.dir = filepath.Join(p.mountDir(spec.Name), "folder"+strconv.Itoa(n))
		}
		plan = append(plan, f)
	}
	return plan
}

// mountLayers makes the host-side mounts an unprivileged machine starts
// from (see the top of this file). On failure it unmounts what it made.
func (p *Provider) mountLayers(spec *provider.Spec, st store) (err error) {
	name, base := spec.Name, spec.IDBase
	dir := p.mountDir(name)
	if err := os.MkdirAll(MountRoot, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(MountRoot, 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create the machine's mount folder: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := p.release(name); rerr != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, rerr)
			}
		}
	}()
	if err := os.Chown(dir, int(base), int(base)); err != nil {
		return err
	}
	ns, err := idmap.NewUserNS(idmap.RangeMap(base))
	if err != nil {
		return err
	}
	defer ns.Close()
	for _, l := range st.layers(p.dir(name), spec.Rootfs) {
		target := filepath.Join(dir, l.at)
		if err := os.Mkdir(target, 0o700); err != nil {
			return err
		}
		mount := func() error { return idmap.Mount(l.src, target, ns, l.ro) }
		if l.rootfs {
			mount = func() error { return idmap.MountRootfs(l.src, target, ns) }
		}
		if err := mount(); err != nil {
			return err
		}
	}
	plan := p.planFolders(spec)
	for _, f := range plan {
		if err := p.mountFolder(spec, plan, f); err != nil {
			return fmt.Errorf("mount %s at %s in the machine: %w", f.Source, f.Target, err)
		}
	}
	return nil
}

// mountFolder makes one planned mount. A folder shows its owner as the
// login user (idmap.OwnerMap); a root-owned one, or any source when the
// login user is unknown, is bound as it is (the guest sees its files as
// nobody's). A read-only mount of what its parent already shows there (den.hcl over itself)
// keeps the parent's map.
func (p *Provider) mountFolder(spec *provider.Spec, plan []folderMount, f folderMount) error {
	if f.parent < 0 {
		var err error
		if f.File {
			err = os.WriteFile(f.dir, nil, 0o600)
		} else {
			err = os.Mkdir(f.dir, 0o700)
		}
		if err != nil {
			return err
		}
	} else {
		parent := plan[f.parent]
		if _, err := os.Lstat(f.dir); errors.Is(err, fs.ErrNotExist) {
			// Make the mount point where LXC's create=dir would have: in
			// the parent's host folder (through the mapped tree, root is
			// nobody and may not write).
			rel, _ := filepath.Rel(parent.dir, f.dir)
			at := filepath.Join(parent.Source, rel)
			if f.File {
				err = os.WriteFile(at, nil, 0o644)
			} else {
				err = os.MkdirAll(at, 0o755)
			}
			if err != nil {
				return err
			}
		}
		if rel, _ := filepath.Rel(parent.dir, f.dir); f.ReadOnly && filepath.Join(parent.Source, rel) == filepath.Clean(f.Source) {
			return idmap.BindReadOnly(f.dir, f.dir)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(f.Source, &st); err != nil {
		return err
	}
	if f.File || st.Uid == 0 || st.Gid == 0 || spec.GuestUID == 0 || spec.GuestGID == 0 {
		return idmap.Bind(f.Source, f.dir, f.ReadOnly)
	}
	m, err := idmap.OwnerMap(spec.IDBase, idmap.Owner{UID: st.Uid, GID: st.Gid, GuestUID: spec.GuestUID, GuestGID: spec.GuestGID})
	if err != nil {
		return err
	}
	ns, err := idmap.NewUserNS(m)
	if err != nil {
		return err
	}
	defer ns.Close()
	return idmap.Mount(f.Source, f.dir, ns, f.ReadOnly)
}

// release undoes mountLayers (also what a killed den left): it unmounts
// everything in the machine's mount folder, deepest first, removes the
// folder, and removes the empty cgroups LXC's monitor left behind for the
// container. It never deletes while a mount stays.
func (p *Provider) release(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("bad container name %q", name)
	}
	removeMonitorCgroups(name)
	dir := p.mountDir(name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for range 16 {
		mounts, err := fsutil.MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			break
		}
		slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
		for _, m := range mounts {
			if err := idmap.Unmount(m); err != nil {
				return err
			}
		}
	}
	if err := fsutil.RemoveTree(dir); err != nil {
		return fmt.Errorf("remove the machine's mount folder: %w", err)
	}
	return nil
}

// removeMonitorCgroups removes the empty lxc.monitor.NAME cgroups LXC
// leaves after a stop or a failed start (an unprivileged start then fails
// with "File exists"). A cgroup that still has processes stays.
func removeMonitorCgroups(name string) {
	var dirs []string
	for _, pat := range []string{"/sys/fs/cgroup/*/lxc.monitor." + name, "/sys/fs/cgroup/lxc.monitor." + name} {
		m, _ := filepath.Glob(pat)
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		removeCgroup(d)
	}
}

// removeCgroup removes an empty cgroup folder and its empty children.
func removeCgroup(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// waitMonitorGone removes the monitor's cgroups, retrying for a second
// while a monitor that just ended still holds them.
func waitMonitorGone(ctx context.Context, name string) {
	deadline := time.Now().Add(time.Second)
	for {
		removeMonitorCgroups(name)
		left, _ := filepath.Glob("/sys/fs/cgroup/*/lxc.monitor." + name)
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
