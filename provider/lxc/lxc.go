// Package lxc runs den's machines as LXC system containers through go-lxc,
// each with an overlay rootfs over a read-only box.
package lxc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	golxc "github.com/lxc/go-lxc"
	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/provider"
)

// Provider keeps its containers in one LXC path owned by den.
type Provider struct {
	Path string // absolute lxcpath, e.g. /var/lib/den/machines
	// Storage is the store new machines get: StoreOverlay or StoreBtrfs
	// (see SetStorage).
	Storage    string
	storageWhy string
}

// New returns a provider for the LXC path dir (created when missing),
// whose new machines get the btrfs store when dir is on btrfs, else the
// overlay store (SetStorage chooses otherwise).
func New(dir string) (*Provider, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("lxc path %q must be absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create lxc path: %w", err)
	}
	p := &Provider{Path: dir}
	if err := p.SetStorage("auto"); err != nil {
		return nil, err
	}
	return p, nil
}

var _ provider.Provider = (*Provider)(nil)

func (p *Provider) dir(name string) string { return filepath.Join(p.Path, name) }

func (p *Provider) logFile(name string) string { return filepath.Join(p.dir(name), "lxc.log") }

// open returns the go-lxc handle of name; the caller must Release it.
func (p *Provider) open(name string) (*golxc.Container, error) {
	c, err := golxc.NewContainer(name, p.Path)
	if err != nil {
		return nil, fmt.Errorf("open container %q: %w", name, err)
	}
	return c, nil
}

func (p *Provider) exists(name string) bool {
	_, err := os.Stat(filepath.Join(p.dir(name), "config"))
	return err == nil
}

// scratchDirs are the folders in a machine's folder where den mounts an
// overlay for a moment (Create's prepare, package's export).
var scratchDirs = []string{"prep", "export"}

// dropScratch unmounts and deletes what a killed den left in the machine
// folder dir's scratch folders.
func dropScratch(dir string) error {
	for _, d := range scratchDirs {
		if err := dropOverlay(filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	return nil
}

// creatingPrefix names the folders Create builds machines in before it
// renames them into place.
const creatingPrefix = ".creating-"

// Create builds the machine in a folder of its own beside the others
// (overlay upper layer, spec.Prepare on the merged tree), renames it into
// place and writes its config, which makes it a container, as the last
// step. An interrupted Create — a failure, Ctrl-C, even kill -9 — leaves
// no container: a work folder, or the machine's folder without a config,
// which the next Create removes.
func (p *Provider) Create(ctx context.Context, spec *provider.Spec) (err error) {
	dir := p.dir(spec.Name)
	if _, err := os.Lstat(dir); err == nil {
		if p.exists(spec.Name) {
			return fmt.Errorf("container %q already exists in %s", spec.Name, p.Path)
		}
		if err := dropCreating(dir); err != nil {
			return fmt.Errorf("remove what an interrupted create of %q left: %w", spec.Name, err)
		}
	}
	if strings.ContainsAny(spec.Rootfs, ",:\n") {
		return fmt.Errorf("box rootfs path %q contains ',' or ':', which overlay mounts cannot take", spec.Rootfs)
	}
	if _, err := os.Stat(spec.Rootfs); err != nil {
		return fmt.Errorf("box rootfs %q: %w", spec.Rootfs, err)
	}
	st, err := p.newStore(spec.Storage)
	if err != nil {
		return err
	}
	p.sweepCreating()
	tmp := fsutil.TempName(p.Path, creatingPrefix)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create machine folder: %w", err)
	}
	work := tmp // what to remove on failure: the work folder, then the machine's
	defer func() {
		if err != nil {
			if rerr := dropCreating(work); rerr != nil {
				err = fmt.Errorf("%w (cleanup also failed: %v)", err, rerr)
			}
		}
	}()
	if err := st.make(ctx, tmp, spec.Rootfs); err != nil {
		return err
	}
	layer := layerState{Box: spec.Rootfs, Xattrs: xattrsTrusted}
	if st.name() != StoreOverlay {
		layer.Store = st.name()
	}
	if spec.IDBase != 0 {
		layer.Xattrs = xattrsUser
	}
	if err := writeLayer(tmp, layer); err != nil {
		return err
	}
	if _, dropped, _ := FilterBoxConfig(spec.BoxConfig); spec.Warn != nil {
		for _, d := range dropped {
			spec.Warn("box lxc-config line dropped (a box may not set it): %s", d)
		}
	}
	if spec.Prepare != nil {
		if err := p.prepare(ctx, spec, st, tmp, layer); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("put machine folder %s in place: %w", dir, err)
	}
	work = dir
	return p.writeConfig(spec, st, filepath.Join(dir, "config"))
}

// sweepCreating removes the work folders of Creates whose process died.
func (p *Provider) sweepCreating() {
	entries, err := os.ReadDir(p.Path)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), creatingPrefix) && fsutil.DeadTemp(e.Name(), creatingPrefix) {
			dropCreating(filepath.Join(p.Path, e.Name()))
		}
	}
}

// dropCreating unmounts what a Create mounted in its work folder and
// removes the folder.
func dropCreating(tmp string) error {
	if err := dropScratch(tmp); err != nil {
		return err
	}
	return removeTree(tmp)
}

// prepare calls spec.Prepare with the stopped machine's whole filesystem
// in its folder dir (the store's view: for an overlay, mounted on the
// host for a moment, so copy-up keeps every parent's mode and owner).
// Nothing stays mounted under the machine's folder.
func (p *Provider) prepare(ctx context.Context, spec *provider.Spec, st store, dir string, l layerState) error {
	l.Box = spec.Rootfs
	err := st.view(ctx, dir, l, func(merged string) error {
		root, err := os.OpenRoot(merged)
		if err != nil {
			return err
		}
		defer root.Close()
		return spec.Prepare(ctx, provider.RootFS(root))
	})
	if err != nil {
		return fmt.Errorf("prepare machine %q: %w", spec.Name, err)
	}
	return nil
}

// dropOverlay unmounts whatever is mounted in dir, deepest first, and
// deletes dir. It never deletes while something stays mounted there.
func dropOverlay(dir string) error {
	mounts, err := fsutil.MountsUnder(dir)
	if err != nil {
		return err
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mounts {
		if err := unix.Unmount(m, 0); err != nil {
			if err2 := unix.Unmount(m, unix.MNT_DETACH); err2 != nil {
				return fmt.Errorf("unmount %s: %w", m, err)
			}
		}
	}
	return removeTree(dir)
}

// setItem sets one config key, naming it in the error.
func setItem(c *golxc.Container, key, value string) error {
	if err := c.SetConfigItem(key, value); err != nil {
		return fmt.Errorf("set LXC config %s = %q: %w", key, value, err)
	}
	return nil
}

// config returns den's keys for spec, in order, for a machine of store st.
func (p *Provider) config(spec *provider.Spec, st store) ([][2]string, error) {
	kv := [][2]string{{"lxc.include", "/usr/share/lxc/config/common.conf"}}
	if spec.IDBase != 0 {
		kv = append(kv,
			[2]string{"lxc.idmap", fmt.Sprintf("u 0 %d %d", spec.IDBase, provider.IDRangeSize)},
			[2]string{"lxc.idmap", fmt.Sprintf("g 0 %d %d", spec.IDBase, provider.IDRangeSize)},
		)
	}
	rootfs, opts := st.rootfs(p.dir(spec.Name), spec.Rootfs, p.mountDir(spec.Name), spec.IDBase != 0)
	kv = append(kv, [2]string{"lxc.rootfs.path", rootfs})
	if opts != "" {
		kv = append(kv, [2]string{"lxc.rootfs.options", opts})
	}
	kv = append(kv,
		[2]string{"lxc.uts.name", spec.Hostname},
		[2]string{"lxc.log.file", p.logFile(spec.Name)},
		[2]string{"lxc.log.level", "WARN"},
	)
	apparmor := false
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		apparmor = true
		kv = append(kv, [2]string{"lxc.apparmor.profile", "generated"})
	} else {
		kv = append(kv, [2]string{"lxc.apparmor.profile", "unconfined"})
	}
	if spec.Nesting {
		kv = append(kv, nestingConfig(apparmor, spec.IDBase != 0)...)
	}
	n := spec.Network
	if n.Bridge != "" {
		bcast, err := broadcast(n)
		if err != nil {
			return nil, err
		}
		kv = append(kv,
			[2]string{"lxc.net.0.type", "veth"},
			[2]string{"lxc.net.0.link", n.Bridge},
			[2]string{"lxc.net.0.flags", "up"},
			[2]string{"lxc.net.0.name", "eth0"},
			[2]string{"lxc.net.0.hwaddr", n.MAC},
			[2]string{"lxc.net.0.ipv4.address", n.Address.String() + " " + bcast},
			[2]string{"lxc.net.0.ipv4.gateway", n.Gateway.String()},
		)
	}
	v2 := host.CgroupLayout() == host.CgroupV2
	if spec.Memory > 0 {
		mem := strconv.FormatInt(spec.Memory, 10)
		if v2 {
			kv = append(kv, [2]string{"lxc.cgroup2.memory.max", mem})
		} else {
			kv = append(kv, [2]string{"lxc.cgroup.memory.limit_in_bytes", mem})
		}
	}
	if spec.CPUs > 0 {
		set, err := cpuset(spec.CPUs)
		if err != nil {
			return nil, err
		}
		if v2 {
			kv = append(kv, [2]string{"lxc.cgroup2.cpuset.cpus", set})
		} else {
			kv = append(kv, [2]string{"lxc.cgroup.cpuset.cpus", set})
		}
	}
	if spec.IDBase == 0 {
		for _, m := range spec.Mounts {
			kv = append(kv, [2]string{"lxc.mount.entry", mountEntry(m)})
		}
	} else {
		// den builds each folder, guards included, on the host; LXC
		// binds the whole tree.
		for _, f := range p.planFolders(spec) {
			if f.parent < 0 {
				kv = append(kv, [2]string{"lxc.mount.entry", treeEntry(f)})
			}
		}
	}
	allowed, _, err := FilterBoxConfig(spec.BoxConfig)
	if err != nil {
		return nil, fmt.Errorf("box config %s refused: %w", filepath.Join(filepath.Dir(spec.Rootfs), "lxc-config"), err)
	}
	kv = append(kv, allowed...)
	kv = append(kv, spec.RawConfig...)
	return kv, nil
}

// writeConfig writes spec's config to path (the container's config file,
// or one in a Create's work folder).
func (p *Provider) writeConfig(spec *provider.Spec, st store, path string) error {
	kv, err := p.config(spec, st)
	if err != nil {
		return err
	}
	c, err := p.open(spec.Name)
	if err != nil {
		return err
	}
	defer c.Release()
	c.ClearConfig()
	for _, item := range kv {
		if err := setItem(c, item[0], item[1]); err != nil {
			return err
		}
	}
	// Written beside and renamed over: a config (which makes a folder a
	// container) is whole or absent.
	tmp := path + ".new"
	if err := c.SaveConfigFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save LXC config %s: %w", path, err)
	}
	if err := appendLines(tmp, clearHooks); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save LXC config %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save LXC config %s: %w", path, err)
	}
	// Saving a config with lxc.idmap gives the container's folder to the
	// container's root on disk (liblxc's create_container_dir). den's
	// layers keep the box's ids on disk and the container reaches its
	// folder through an idmapped mount, where such an owner is nobody:
	// give it back to root.
	if err := os.Chown(p.dir(spec.Name), 0, 0); err != nil {
		return fmt.Errorf("save LXC config %s: %w", path, err)
	}
	return nil
}

// mountEntry renders a bind mount as an fstab-style lxc.mount.entry: the
// target is relative to the rootfs, and spaces and the like are escaped.
func mountEntry(m provider.Mount) string {
	opts := "bind,create=dir"
	if m.File {
		opts = "bind,create=file"
	}
	if m.ReadOnly {
		opts += ",ro"
	}
	return fmt.Sprintf("%s %s none %s 0 0", fstabEscape(m.Source), fstabEscape(strings.TrimPrefix(filepath.Clean(m.Target), "/")), opts)
}

// treeEntry binds a folder den laid out on the host (with the mounts in
// it) at its target.
func treeEntry(f folderMount) string {
	opts := "rbind,create=dir"
	if f.File {
		opts = "rbind,create=file"
	}
	if f.ReadOnly {
		opts += ",ro"
	}
	return fmt.Sprintf("%s %s none %s 0 0", fstabEscape(f.dir), fstabEscape(strings.TrimPrefix(filepath.Clean(f.Target), "/")), opts)
}

// nestingConfig lets a machine run containers itself: proc and sysfs
// mounted once more where nothing covers them (/dev/.lxc/proc and
// /dev/.lxc/sys, as LXC's nesting.conf does), since the kernel lets a
// user namespace mount proc or sysfs only where a whole one is visible;
// every cgroup v1 hierarchy mounted read-write at the machine's own
// cgroup (with common.conf's cgroup:mixed, cpu and cpuacct stayed
// unmounted in a bookworm guest on a hybrid host, and LXC in the guest
// could not start); and, under AppArmor, LXC's generated profile with
// nesting allowed. In an unprivileged machine what these show of the host
// stays the host root's: nothing global becomes writable, and the
// machine's own limits stay root's (files LXC does not give the machine).
// A privileged machine keeps cgroup:mixed: its root is the host's.
func nestingConfig(apparmor, unprivileged bool) [][2]string {
	kv := [][2]string{
		{"lxc.mount.entry", "proc dev/.lxc/proc proc create=dir,optional 0 0"},
		{"lxc.mount.entry", "sys dev/.lxc/sys sysfs create=dir,optional 0 0"},
	}
	if unprivileged {
		kv = append(kv, [2]string{"lxc.mount.auto", "cgroup:rw:force"})
	}
	if apparmor {
		kv = append(kv, [2]string{"lxc.apparmor.allow_nesting", "1"})
	}
	return kv
}

func fstabEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\\', '#':
			fmt.Fprintf(&b, "\\%03o", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func broadcast(n provider.Network) (string, error) {
	if !n.Address.IsValid() || !n.Address.Addr().Is4() {
		return "", fmt.Errorf("machine address %v is not an IPv4 prefix", n.Address)
	}
	ip := n.Address.Addr().As4()
	mask := net.CIDRMask(n.Address.Bits(), 32)
	for i := range ip {
		ip[i] |= ^mask[i]
	}
	return net.IP(ip[:]).String(), nil
}

// cpuset picks n host CPUs (the first n online ones).
func cpuset(n int) (string, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return "", fmt.Errorf("read online CPUs: %w", err)
	}
	cpus, err := host.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return "", err
	}
	if n > len(cpus) {
		return "", fmt.Errorf("cpus = %d, but this host has %d CPUs online", n, len(cpus))
	}
	parts := make([]string, n)
	for i := range n {
		parts[i] = strconv.Itoa(cpus[i])
	}
	return strings.Join(parts, ","), nil
}

// Start writes spec's config and starts the container, waiting until LXC
// reports it running. Errors quote the ERROR lines of the machine's LXC
// log. In order: spec.Prepare (which may set the spec's ids), the
// conversion of a machine made privileged that is to run unprivileged,
// the host-side mounts of an unprivileged machine (what a killed den left
// is cleared first), the config, the start. A failed start unmounts what
// it mounted.
func (p *Provider) Start(ctx context.Context, spec *provider.Spec) (err error) {
	state, err := p.State(ctx, spec.Name)
	if err != nil {
		return err
	}
	switch state {
	case provider.NotCreated:
		return fmt.Errorf("container %q does not exist", spec.Name)
	case provider.Running, provider.Frozen:
		return nil
	}
	layer, err := p.readLayer(spec.Name)
	if err != nil {
		return err
	}
	st, err := p.storeOf(layer)
	if err != nil {
		return err
	}
	if spec.Prepare != nil {
		if err := p.prepare(ctx, spec, st, p.dir(spec.Name), layer); err != nil {
			return err
		}
	}
	switch {
	case spec.IDBase == 0 && layer.user():
		return fmt.Errorf("container %q runs unprivileged since it was made or converted, and cannot run privileged: destroy it and make it anew to have a privileged machine", spec.Name)
	case spec.IDBase != 0 && !layer.user():
		layer.Box = spec.Rootfs
		if layer, err = p.unprivilege(spec.Name, st, layer); err != nil {
			return err
		}
	}
	if err := p.release(spec.Name); err != nil {
		return fmt.Errorf("clear what an earlier run of %q left mounted: %w", spec.Name, err)
	}
	defer func() {
		if err != nil {
			if c, oerr := p.open(spec.Name); oerr == nil {
				if c.State() == golxc.STOPPED {
					waitMonitorGone(context.WithoutCancel(ctx), spec.Name)
					p.release(spec.Name)
				}
				c.Release()
			}
		}
	}()
	if spec.IDBase != 0 {
		if err := checkBase(spec.IDBase); err != nil {
			return err
		}
		if err := checkTraversable(p.Path); err != nil {
			return err
		}
		// LXC maps ids through newuidmap when the uidmap package is
		// installed, which needs den's block in /etc/subuid.
		if _, err := subIDs.Reserve(); err != nil {
			return fmt.Errorf("reserve den's subordinate ids: %w", err)
		}
		if err := p.mountLayers(spec, st); err != nil {
			return err
		}
	}
	if err := p.writeConfig(spec, st, filepath.Join(p.dir(spec.Name), "config")); err != nil {
		return err
	}
	logOff := fileSize(p.logFile(spec.Name))
	c, err := p.open(spec.Name)
	if err != nil {
		return err
	}
	defer c.Release()
	if err := c.Start(); err != nil {
		return p.logError(spec.Name, logOff, fmt.Errorf("start container %q: %w", spec.Name, err))
	}
	werr := provider.WaitFor(ctx, 10*time.Millisecond, func() bool {
		s := c.State()
		return s == golxc.RUNNING || s == golxc.STOPPED
	})
	if werr != nil {
		return werr
	}
	if c.State() != golxc.RUNNING {
		return p.logError(spec.Name, logOff, fmt.Errorf("container %q stopped right after starting", spec.Name))
	}
	return nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logError adds the ERROR lines LXC logged since offset to err.
func (p *Provider) logError(name string, offset int64, err error) error {
	f, ferr := os.Open(p.logFile(name))
	if ferr != nil {
		return err
	}
	defer f.Close()
	f.Seek(offset, io.SeekStart)
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), " ERROR ") {
			lines = append(lines, "  "+sc.Text())
		}
	}
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	if len(lines) == 0 {
		return fmt.Errorf("%w (see %s)", err, p.logFile(name))
	}
	return fmt.Errorf("%w; LXC said:\n%s\n(full log: %s)", err, strings.Join(lines, "\n"), p.logFile(name))
}

// Stop shuts the container down (SIGPWR to init) within timeout, then
// kills it; force kills at once. A frozen container is thawed first. A
// stopped container's host-side mounts (an unprivileged machine's) are
// unmounted, also when it was already stopped (by its guest, or a stop
// whose den was killed).
func (p *Provider) Stop(ctx context.Context, name string, force bool, timeout time.Duration) error {
	if !p.exists(name) {
		return p.release(name)
	}
	c, err := p.open(name)
	if err != nil {
		return err
	}
	defer c.Release()
	if err := p.stop(ctx, c, name, force, timeout); err != nil {
		return err
	}
	return p.release(name)
}

func (p *Provider) stop(ctx context.Context, c *golxc.Container, name string, force bool, timeout time.Duration) error {
	switch p.state(c) {
	case provider.Stopped:
		return nil
	case provider.Frozen:
		if err := thaw(ctx, c); err != nil {
			return fmt.Errorf("thaw %q before stopping it: %w", name, err)
		}
	}
	if !force {
		// go-lxc rounds to whole seconds; under one second means "don't wait".
		secs := max(time.Second, timeout.Round(time.Second))
		if err := c.Shutdown(secs); err == nil && c.State() == golxc.STOPPED {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if c.State() == golxc.STOPPED {
		return nil
	}
	if err := c.Stop(); err != nil && c.State() != golxc.STOPPED {
		return fmt.Errorf("stop container %q: %w (see %s)", name, err, p.logFile(name))
	}
	return nil
}

// Destroy kills the container, unmounts what den mounted for it (its
// host-side mounts, a package export or prepare overlay a killed den left)
// and removes its folder (config, overlay upper and work dirs, log,
// snapshots) with a walk that never follows a symlink nor crosses a mount
// point, and refuses while anything stays mounted in the folder. It does
// not use LXC's destroy, which deletes whatever lxc.rootfs.path names.
func (p *Provider) Destroy(ctx context.Context, name string) error {
	dir := p.dir(name)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return p.release(name)
	}
	if err := p.Stop(ctx, name, true, 0); err != nil {
		return err
	}
	if err := dropScratch(dir); err != nil {
		return fmt.Errorf("remove machine folder: %w", err)
	}
	if err := removeTree(dir); err != nil {
		return fmt.Errorf("remove machine folder: %w", err)
	}
	return nil
}

// State maps LXC's state; a container without a config is not created.
func (p *Provider) State(ctx context.Context, name string) (provider.State, error) {
	c, st, err := p.opened(name)
	if c != nil {
		c.Release()
	}
	return st, err
}

// opened opens the container and reads its state; no container (and
// NotCreated) when there is none. The caller releases it.
func (p *Provider) opened(name string) (*golxc.Container, provider.State, error) {
	if !p.exists(name) {
		return nil, provider.NotCreated, nil
	}
	c, err := p.open(name)
	if err != nil {
		return nil, provider.Unknown, err
	}
	return c, p.state(c), nil
}

// state is the container's state, with the cgroup freezer's word on
// whether a running one is frozen: den freezes through the cgroup itself,
// and a den killed half way leaves a frozen (or FREEZING) cgroup that
// liblxc's monitor may still call RUNNING.
func (p *Provider) state(c *golxc.Container) provider.State {
	st := mapState(c.State())
	if st == provider.Running || st == provider.Frozen {
		switch freezerState(c) {
		case "FROZEN", "FREEZING":
			return provider.Frozen
		case "THAWED":
			return provider.Running
		}
	}
	return st
}

func mapState(s golxc.State) provider.State {
	switch s {
	case golxc.STOPPED:
		return provider.Stopped
	case golxc.STARTING, golxc.RUNNING, golxc.STOPPING, golxc.ABORTING:
		return provider.Running
	case golxc.FREEZING, golxc.FROZEN, golxc.THAWED:
		if s == golxc.THAWED {
			return provider.Running
		}
		return provider.Frozen
	}
	return provider.Unknown
}

// Inspect reads the limits in force from the running container's cgroup.
func (p *Provider) Inspect(ctx context.Context, name string) (provider.Info, error) {
	info := provider.Info{LogFile: p.logFile(name)}
	// One open for the state and the limits: liblxc parses the whole
	// config at each, the most of what a state request costs den serve.
	c, st, err := p.opened(name)
	info.State = st
	if c == nil {
		return info, err
	}
	defer c.Release()
	if st != provider.Running && st != provider.Frozen {
		return info, nil
	}
	memKey, cpuKey := "memory.limit_in_bytes", "cpuset.cpus"
	if host.CgroupLayout() == host.CgroupV2 {
		memKey, cpuKey = "memory.max", "cpuset.cpus.effective"
	}
	if v := c.CgroupItem(memKey); len(v) > 0 {
		if n, err := strconv.ParseInt(strings.TrimSpace(v[0]), 10, 64); err == nil && n < 1<<62 {
			info.MemoryLimit = n
		}
	}
	if v := c.CgroupItem(cpuKey); len(v) > 0 {
		info.CPUs = strings.TrimSpace(v[0])
	}
	if pid := c.InitPid(); pid > 0 {
		if devs, err := guestLXCFS(pid); err == nil {
			info.Notes = hostLXCFS.guestNotes(devs, info.MemoryLimit > 0 || fewerCPUs(info.CPUs))
		}
	}
	return info, nil
}

// fewerCPUs reports whether the cpuset set leaves out some of the host's
// online CPUs.
func fewerCPUs(set string) bool {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return false
	}
	online, err1 := host.ParseCPUList(strings.TrimSpace(string(b)))
	mine, err2 := host.ParseCPUList(set)
	return err1 == nil && err2 == nil && len(mine) < len(online)
}

// clearHooks follows den's keys in every config: Debian's lxcfs adds to
// every container, through common.conf.d, a post-stop hook that only
// sleeps 0.5 s (its reboot hook): half a second on every halt and destroy.
// An empty value clears the hooks common.conf set; liblxc keeps no empty
// key in a config it saves, so den writes it after saving.
const clearHooks = "lxc.hook.post-stop =\n"

// appendLines adds lines to the end of the file at path.
func appendLines(path, lines string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(lines); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
