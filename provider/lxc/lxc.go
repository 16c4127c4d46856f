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
}

// New returns a provider for the LXC path dir (created when missing).
func New(dir string) (*Provider, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("lxc path %q must be absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create lxc path: %w", err)
	}
	return &Provider{Path: dir}, nil
}

var _ provider.Provider = (*Provider)(nil)

func (p *Provider) dir(name string) string { return filepath.Join(p.Path, name) }

func (p *Provider) upper(name string) string { return filepath.Join(p.dir(name), "delta0") }

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
	var rootSt unix.Stat_t
	if err := unix.Stat(spec.Rootfs, &rootSt); err != nil {
		return fmt.Errorf("box rootfs %q: %w", spec.Rootfs, err)
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
	// The upper layer's root takes the lower root's mode and owner: an overlay
	// shows the upper's attributes for a directory present in both.
	up := filepath.Join(tmp, "delta0")
	if err := os.Mkdir(up, os.FileMode(rootSt.Mode&0o7777)); err != nil {
		return err
	}
	if err := os.Chown(up, int(rootSt.Uid), int(rootSt.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(up, os.FileMode(rootSt.Mode&0o777)); err != nil {
		return err
	}
	if _, dropped, _ := FilterBoxConfig(spec.BoxConfig); spec.Warn != nil {
		for _, d := range dropped {
			spec.Warn("box lxc-config line dropped (a box may not set it): %s", d)
		}
	}
	if spec.Prepare != nil {
		if err := p.prepare(ctx, spec, filepath.Join(tmp, "prep"), up); err != nil {
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
	return p.writeConfig(spec, filepath.Join(dir, "config"))
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
	return fsutil.RemoveTree(tmp)
}

// prepare mounts the overlay of the box and upper on the host for a
// moment (in prepDir) so spec.Prepare sees the merged tree (copy-up keeps
// every parent's mode and owner), then unmounts it. Nothing stays
// mounted under the machine's folder.
func (p *Provider) prepare(ctx context.Context, spec *provider.Spec, prepDir, upper string) error {
	err := p.withOverlay(prepDir, []string{spec.Rootfs}, upper, func(merged string) error {
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

// withOverlay mounts an overlay of lowers (top first) under upper at
// dir/merged, calls fn with that path, then unmounts and deletes dir, also
// when fn fails. With upper "", a scratch layer dir/upper takes fn's
// writes (it gets the top lower's mode and owner, which the merged root
// shows) and goes with dir. A dir a killed den left is cleared first, so
// nothing stays mounted under a machine's folder.
func (p *Provider) withOverlay(dir string, lowers []string, upper string, fn func(merged string) error) (err error) {
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
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount the machine's overlay: %w", err)
	}
	return fn(merged)
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
	return fsutil.RemoveTree(dir)
}

// setItem sets one config key, naming it in the error.
func setItem(c *golxc.Container, key, value string) error {
	if err := c.SetConfigItem(key, value); err != nil {
		return fmt.Errorf("set LXC config %s = %q: %w", key, value, err)
	}
	return nil
}

// config returns den's keys for spec, in order.
func (p *Provider) config(spec *provider.Spec) ([][2]string, error) {
	kv := [][2]string{
		{"lxc.include", "/usr/share/lxc/config/common.conf"},
		{"lxc.rootfs.path", "overlay:" + spec.Rootfs + ":" + p.upper(spec.Name)},
		{"lxc.uts.name", spec.Hostname},
		{"lxc.log.file", p.logFile(spec.Name)},
		{"lxc.log.level", "WARN"},
	}
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		kv = append(kv, [2]string{"lxc.apparmor.profile", "generated"})
	} else {
		kv = append(kv, [2]string{"lxc.apparmor.profile", "unconfined"})
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
	for _, m := range spec.Mounts {
		kv = append(kv, [2]string{"lxc.mount.entry", mountEntry(m)})
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
func (p *Provider) writeConfig(spec *provider.Spec, path string) error {
	kv, err := p.config(spec)
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
	if err := os.Rename(tmp, path); err != nil {
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
// reports it running. Errors quote the ERROR lines of the machine's LXC log.
func (p *Provider) Start(ctx context.Context, spec *provider.Spec) error {
	st, err := p.State(ctx, spec.Name)
	if err != nil {
		return err
	}
	switch st {
	case provider.NotCreated:
		return fmt.Errorf("container %q does not exist", spec.Name)
	case provider.Running, provider.Frozen:
		return nil
	}
	if err := p.writeConfig(spec, filepath.Join(p.dir(spec.Name), "config")); err != nil {
		return err
	}
	if spec.Prepare != nil {
		if err := p.prepare(ctx, spec, filepath.Join(p.dir(spec.Name), "prep"), p.upper(spec.Name)); err != nil {
			return err
		}
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
// kills it; force kills at once. A frozen container is thawed first.
func (p *Provider) Stop(ctx context.Context, name string, force bool, timeout time.Duration) error {
	if !p.exists(name) {
		return nil
	}
	c, err := p.open(name)
	if err != nil {
		return err
	}
	defer c.Release()
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

// Destroy kills the container and removes its folder (config, overlay upper
// and work dirs, log) with a walk that never follows a symlink nor crosses a
// mount point; an overlay a killed den left in its own scratch folders
// (prep, export) is unmounted first. It does not use LXC's destroy, which deletes whatever
// lxc.rootfs.path names.
func (p *Provider) Destroy(ctx context.Context, name string) error {
	dir := p.dir(name)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := p.Stop(ctx, name, true, 0); err != nil {
		return err
	}
	if err := dropScratch(dir); err != nil {
		return err
	}
	if err := fsutil.RemoveTree(dir); err != nil {
		return fmt.Errorf("remove machine folder: %w", err)
	}
	return nil
}

// State maps LXC's state; a container without a config is not created.
func (p *Provider) State(ctx context.Context, name string) (provider.State, error) {
	if !p.exists(name) {
		return provider.NotCreated, nil
	}
	c, err := p.open(name)
	if err != nil {
		return provider.Unknown, err
	}
	defer c.Release()
	return p.state(c), nil
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
	st, err := p.State(ctx, name)
	info.State = st
	if err != nil || (st != provider.Running && st != provider.Frozen) {
		return info, err
	}
	c, err := p.open(name)
	if err != nil {
		return info, err
	}
	defer c.Release()
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
