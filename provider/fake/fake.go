// Package fake is an in-memory provider for unit tests of den's domain:
// machines are folders (a copy of the box's rootfs), states live in a map,
// and each running machine answers ssh in process — with the host key and
// authorized_keys den wrote into it — through the Dialer ability, running
// a tiny guest shell that unpacks uploads and records commands. It passes
// the same conformance suite (provider/providertest) as the real
// providers. It never runs a command on the host.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/provider"
)

// Provider is the fake. Set its exported fields before use; it is safe for
// concurrent use.
type Provider struct {
	// Dir holds the machines' filesystems and snapshots.
	Dir string
	// HostErr, when set, is what CheckHost returns.
	HostErr error
	// Fail makes the named method ("Create", "Start", "Stop", "Destroy",
	// "Freeze", "SaveSnapshot", "Prepare"...) fail with the error, once
	// per entry: the entry is removed when it fires.
	Fail map[string]error
	// Run, when set, decides the exit status of a command a machine runs
	// (after the fake's own handling of uploads); it may write to stdout.
	Run func(machine, cmd string, stdout func(string)) int
	// Subnet is where AllocateAddress hands out addresses (default
	// 10.77.0.0/24, gateway .1).
	Subnet netip.Prefix
	// HostNetworks are subnets EnsureNetwork treats as the host's own.
	HostNetworks []netip.Prefix
	// MissingStores are stores (of "overlay", the default, and "btrfs")
	// this host lacks, each with why (Stores).
	MissingStores map[string]string

	mu       sync.Mutex
	machines map[string]*machine
	networks map[string]provider.ProjectNetwork
}

type machine struct {
	state    provider.State
	spec     provider.Spec
	commands []string
	snaps    []provider.Snapshot
	store    string // what Create made it in (the spec's Storage or "overlay")
}

var (
	_ provider.Provider     = (*Provider)(nil)
	_ provider.Addresser    = (*Provider)(nil)
	_ provider.Dialer       = (*Provider)(nil)
	_ provider.Snapshotter  = (*Provider)(nil)
	_ provider.Exporter     = (*Provider)(nil)
	_ provider.Limiter      = (*Provider)(nil)
	_ provider.Execer       = (*Provider)(nil)
	_ provider.Isolator     = (*Provider)(nil)
	_ provider.Networker    = (*Provider)(nil)
	_ provider.StoreChooser = (*Provider)(nil)
)

// New returns a fake keeping its machines under dir.
func New(dir string) *Provider {
	return &Provider{Dir: dir, Subnet: netip.MustParsePrefix("10.77.0.0/24"), Fail: map[string]error{}, machines: map[string]*machine{}}
}

// Name is "fake".
func (p *Provider) Name() string { return "fake" }

// Describe says what it is.
func (p *Provider) Describe() string { return "in-memory fake" }

// CheckHost returns HostErr.
func (p *Provider) CheckHost(ctx context.Context, networks []string) error { return p.HostErr }

// Hints are placeholders.
func (p *Provider) Hints(name string) provider.Hints {
	return provider.Hints{Shell: "fake-shell " + name, Remove: "fake-remove " + name, Log: filepath.Join(p.dir(name), "log")}
}

func (p *Provider) dir(name string) string    { return filepath.Join(p.Dir, name) }
func (p *Provider) rootfs(name string) string { return filepath.Join(p.Dir, name, "rootfs") }

// fail returns the injected failure for method, once.
func (p *Provider) fail(method string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err, ok := p.Fail[method]
	if ok {
		delete(p.Fail, method)
	}
	return err
}

func (p *Provider) get(name string) (*machine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.machines[name]
	return m, ok
}

// Create copies the box's rootfs into the machine's folder and runs
// Prepare; a failure leaves nothing.
func (p *Provider) Create(ctx context.Context, spec *provider.Spec) (err error) {
	if err := p.fail("Create"); err != nil {
		return err
	}
	if _, ok := p.get(spec.Name); ok {
		return fmt.Errorf("machine %q already exists", spec.Name)
	}
	store := spec.Storage
	if store == "" {
		store = "overlay"
	}
	if why, ok := p.Stores()[store]; !ok || why != "" {
		return fmt.Errorf("store %q is not available: %s", store, why)
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(p.dir(spec.Name), 0o700); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(p.dir(spec.Name))
		}
	}()
	if err := copyTree(spec.Rootfs, p.rootfs(spec.Name)); err != nil {
		return err
	}
	if err := p.prepare(ctx, spec); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.machines[spec.Name] = &machine{state: provider.Stopped, spec: *spec, store: store}
	return ctx.Err()
}

func (p *Provider) prepare(ctx context.Context, spec *provider.Spec) error {
	if spec.Prepare == nil {
		return nil
	}
	if err := p.fail("Prepare"); err != nil {
		return err
	}
	root, err := os.OpenRoot(p.rootfs(spec.Name))
	if err != nil {
		return err
	}
	defer root.Close()
	return spec.Prepare(ctx, guestFS{provider.RootFS(root)})
}

// guestFS is the machine's folder as a GuestFS. Without root, files keep
// this process as their owner (a unit test need not run as root).
type guestFS struct{ provider.GuestFS }

func (g guestFS) WriteFile(name string, data []byte, mode fs.FileMode, uid, gid int) error {
	if os.Geteuid() != 0 {
		uid, gid = os.Geteuid(), os.Getegid()
	}
	return g.GuestFS.WriteFile(name, data, mode, uid, gid)
}

func (g guestFS) Lchown(name string, uid, gid int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return g.GuestFS.Lchown(name, uid, gid)
}

// Start runs Prepare when set and marks the machine running.
func (p *Provider) Start(ctx context.Context, spec *provider.Spec) error {
	m, ok := p.get(spec.Name)
	if !ok {
		return fmt.Errorf("machine %q does not exist", spec.Name)
	}
	if st := p.state(m); st == provider.Running || st == provider.Frozen {
		return nil
	}
	if err := p.fail("Start"); err != nil {
		return err
	}
	if err := p.prepare(ctx, spec); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m.spec, m.state = *spec, provider.Running
	return nil
}

func (p *Provider) state(m *machine) provider.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return m.state
}

func (p *Provider) setState(name string, st provider.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.machines[name]; ok {
		m.state = st
	}
}

// Stop marks the machine stopped (a frozen one too, as LXC thaws first).
func (p *Provider) Stop(ctx context.Context, name string, force bool, timeout time.Duration) error {
	if err := p.fail("Stop"); err != nil {
		return err
	}
	p.setState(name, provider.Stopped)
	return nil
}

// Destroy removes the machine and its folder; an absent one is fine.
func (p *Provider) Destroy(ctx context.Context, name string) error {
	if err := p.fail("Destroy"); err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.machines, name)
	p.mu.Unlock()
	return os.RemoveAll(p.dir(name))
}

// State reports the machine's state.
func (p *Provider) State(ctx context.Context, name string) (provider.State, error) {
	m, ok := p.get(name)
	if !ok {
		return provider.NotCreated, nil
	}
	return p.state(m), nil
}

// Inspect reports the state and den.hcl's limits as the ones in force.
func (p *Provider) Inspect(ctx context.Context, name string) (provider.Info, error) {
	m, ok := p.get(name)
	if !ok {
		return provider.Info{State: provider.NotCreated}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	info := provider.Info{State: m.state, MemoryLimit: m.spec.Memory, LogFile: filepath.Join(p.dir(name), "log")}
	if m.spec.CPUs > 0 {
		cpus := make([]string, m.spec.CPUs)
		for i := range cpus {
			cpus[i] = fmt.Sprint(i)
		}
		info.CPUs = strings.Join(cpus, ",")
	}
	return info, nil
}

// SetLimits changes a running machine's limits.
func (p *Provider) SetLimits(ctx context.Context, name string, memory int64, cpus int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.machines[name]
	if !ok || m.state != provider.Running {
		return fmt.Errorf("machine %q is not running", name)
	}
	m.spec.Memory, m.spec.CPUs = memory, cpus
	return nil
}

// Freeze suspends a running machine.
func (p *Provider) Freeze(ctx context.Context, name string) error {
	if err := p.fail("Freeze"); err != nil {
		return err
	}
	m, ok := p.get(name)
	if !ok || p.state(m) != provider.Running {
		return fmt.Errorf("machine %q is not running", name)
	}
	p.setState(name, provider.Frozen)
	return nil
}

// Unfreeze resumes a frozen machine.
func (p *Provider) Unfreeze(ctx context.Context, name string) error {
	m, ok := p.get(name)
	if !ok || p.state(m) != provider.Frozen {
		return fmt.Errorf("machine %q is not frozen", name)
	}
	p.setState(name, provider.Running)
	return nil
}

// AllocateAddress hands out the highest free address of Subnet.
func (p *Provider) AllocateAddress(ctx context.Context, spec *provider.Spec, prefer netip.Prefix, taken []netip.Addr) (provider.Network, error) {
	network := spec.Network.Bridge
	subnet := p.Subnet
	p.mu.Lock()
	for _, pn := range p.networks {
		if pn.Bridge == network {
			subnet = pn.Subnet
		}
	}
	p.mu.Unlock()
	gw := subnet.Masked().Addr().Next()
	free := func(a netip.Addr) bool { return subnet.Contains(a) && a != gw && !slices.Contains(taken, a) }
	n := provider.Network{Bridge: network, Gateway: gw}
	if prefer.IsValid() && free(prefer.Addr()) {
		n.Address = netip.PrefixFrom(prefer.Addr(), subnet.Bits())
		n.MAC = mac(prefer.Addr())
		return n, nil
	}
	for a := lastAddr(subnet); subnet.Contains(a) && a != gw; a = a.Prev() {
		if free(a) {
			n.Address, n.MAC = netip.PrefixFrom(a, subnet.Bits()), mac(a)
			return n, nil
		}
	}
	return provider.Network{}, fmt.Errorf("no free address on %s", network)
}

// FakeNetworks is where EnsureNetwork picks subnets: the /24s of
// 10.78.0.0/16.
var FakeNetworks = netip.MustParsePrefix("10.78.0.0/16")

// EnsureNetwork keeps project networks in memory: bridge fake-ID, the
// first free /24 of FakeNetworks (or want).
func (p *Provider) EnsureNetwork(ctx context.Context, id string, want netip.Prefix, fixed bool, taken []netip.Prefix) (provider.ProjectNetwork, error) {
	if err := p.fail("EnsureNetwork"); err != nil {
		return provider.ProjectNetwork{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.networks == nil {
		p.networks = map[string]provider.ProjectNetwork{}
	}
	if pn, ok := p.networks[id]; ok && (!fixed || pn.Subnet == want) {
		return pn, nil
	}
	free := func(s netip.Prefix) bool {
		for _, t := range append(slices.Clone(taken), p.HostNetworks...) {
			if t.Overlaps(s) {
				return false
			}
		}
		for oid, o := range p.networks {
			if oid != id && o.Subnet.Overlaps(s) {
				return false
			}
		}
		return true
	}
	pn := provider.ProjectNetwork{ID: id, Bridge: "fake-" + id[:min(len(id), 10)]}
	switch {
	case want.IsValid() && free(want):
		pn.Subnet = want
	case fixed:
		return pn, errdefs.Newf(errdefs.Exists, "subnet %s is taken", want)
	default:
		base := FakeNetworks.Addr().As4()
		for i := range 256 {
			s := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(i), 0}), 24)
			if free(s) {
				pn.Subnet = s
				break
			}
		}
		if !pn.Subnet.IsValid() {
			return pn, errors.New("no free subnet")
		}
	}
	p.networks[id] = pn
	return pn, nil
}

// RemoveNetwork forgets network id; one a running machine is attached to
// stays (errdefs.Exists).
func (p *Provider) RemoveNetwork(ctx context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	pn, ok := p.networks[id]
	if !ok {
		return nil
	}
	for name, m := range p.machines {
		if m.spec.Network.Bridge == pn.Bridge && (m.state == provider.Running || m.state == provider.Frozen) {
			return errdefs.Newf(errdefs.Exists, "network %s: machine %s is attached", pn.Bridge, name)
		}
	}
	delete(p.networks, id)
	return nil
}

// Networks lists the networks the fake has.
func (p *Provider) Networks(ctx context.Context) ([]provider.ProjectNetwork, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []provider.ProjectNetwork
	for _, pn := range p.networks {
		out = append(out, pn)
	}
	slices.SortFunc(out, func(a, b provider.ProjectNetwork) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// FakeIDBlock is where the fake's AllocateIDs hands out id ranges: 16
// ranges from 0x40000000.
const FakeIDBlock = 0x40000000

// AllocateIDs hands out prefer when it is one of the fake's ranges and
// not in taken, else the lowest free one.
func (p *Provider) AllocateIDs(ctx context.Context, name string, prefer uint32, taken []uint32) (uint32, error) {
	free := func(b uint32) bool {
		return b >= FakeIDBlock && b < FakeIDBlock+16*provider.IDRangeSize && b%provider.IDRangeSize == 0 && !slices.Contains(taken, b)
	}
	if prefer != 0 && free(prefer) {
		return prefer, nil
	}
	for i := range uint32(16) {
		if b := FakeIDBlock + i*provider.IDRangeSize; free(b) {
			return b, nil
		}
	}
	return 0, errors.New("no free id range")
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 2
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func mac(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// DialGuest connects to the machine's in-process sshd (port 22 only).
func (p *Provider) DialGuest(ctx context.Context, name string, port int) (net.Conn, error) {
	m, ok := p.get(name)
	if !ok || p.state(m) != provider.Running {
		return nil, fmt.Errorf("dial %s:%d: machine is not running", name, port)
	}
	if port != 22 {
		return nil, fmt.Errorf("dial %s:%d: connection refused", name, port)
	}
	client, server, err := socketPair()
	if err != nil {
		return nil, err
	}
	go p.serveSSH(name, server)
	return client, nil
}

// socketPair returns two connected, buffered stream sockets (net.Pipe is
// unbuffered: both ssh sides write their version first and would block).
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "fake-ssh")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		conns[i] = c
	}
	return conns[0], conns[1], nil
}

// Exec runs a command as the guest shell does for ssh (the Exec hook
// decides its status), recording it with its user, folder and environment
// as "exec UID:GID DIR ENV... -- ARGV...".
func (p *Provider) Exec(ctx context.Context, name string, cmd provider.ExecCommand) (int, error) {
	m, ok := p.get(name)
	if !ok || p.state(m) != provider.Running {
		return -1, fmt.Errorf("exec in %s: machine is not running", name)
	}
	line := strings.Join(cmd.Argv, " ")
	p.record(name, fmt.Sprintf("exec %d:%d %s %s -- %s", cmd.UID, cmd.GID, cmd.Dir, strings.Join(cmd.Env, " "), line))
	if p.Run == nil {
		return 0, nil
	}
	return p.Run(name, line, func(s string) { io.WriteString(cmd.Stdout, s+"\n") }), nil
}

// Commands returns the commands machine name ran, in order.
func (p *Provider) Commands(name string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.machines[name]; ok {
		return slices.Clone(m.commands)
	}
	return nil
}

func (p *Provider) record(name, cmd string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.machines[name]; ok {
		m.commands = append(m.commands, cmd)
	}
}

// Stores has "overlay" and "btrfs", but for MissingStores.
func (p *Provider) Stores() map[string]string {
	out := map[string]string{"overlay": "", "btrfs": ""}
	for name, why := range p.MissingStores {
		out[name] = why
	}
	return out
}

// MachineStore is the store Create made the machine in.
func (p *Provider) MachineStore(ctx context.Context, name string) (string, error) {
	m, ok := p.get(name)
	if !ok {
		return "", nil
	}
	return m.store, nil
}

// Spec returns the spec the machine was last created or started with.
func (p *Provider) Spec(name string) (provider.Spec, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.machines[name]
	if !ok {
		return provider.Spec{}, false
	}
	return m.spec, true
}

// Rootfs is the folder holding the machine's filesystem.
func (p *Provider) Rootfs(name string) string { return p.rootfs(name) }

// SaveSnapshot copies the machine's folder.
func (p *Provider) SaveSnapshot(ctx context.Context, name, snap string, replace bool) (provider.Snapshot, error) {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return provider.Snapshot{}, err
	}
	if err := p.fail("SaveSnapshot"); err != nil {
		return provider.Snapshot{}, err
	}
	m, ok := p.get(name)
	if !ok {
		return provider.Snapshot{}, fmt.Errorf("machine %q does not exist", name)
	}
	dst := filepath.Join(p.dir(name), "snapshots", snap)
	p.mu.Lock()
	exists := slices.ContainsFunc(m.snaps, func(s provider.Snapshot) bool { return s.Name == snap })
	p.mu.Unlock()
	if exists && !replace {
		return provider.Snapshot{}, fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotExists)
	}
	os.RemoveAll(dst)
	if err := copyTree(p.rootfs(name), dst); err != nil {
		return provider.Snapshot{}, err
	}
	s := provider.Snapshot{Name: snap, Created: time.Now(), Size: 1}
	p.mu.Lock()
	defer p.mu.Unlock()
	m.snaps = slices.DeleteFunc(m.snaps, func(x provider.Snapshot) bool { return x.Name == snap })
	m.snaps = append(m.snaps, s)
	return s, nil
}

// RestoreSnapshot puts a snapshot's copy back; the machine must be stopped.
func (p *Provider) RestoreSnapshot(ctx context.Context, name, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	m, ok := p.get(name)
	if !ok {
		return fmt.Errorf("machine %q does not exist", name)
	}
	if st := p.state(m); st != provider.Stopped {
		return fmt.Errorf("machine %q is %s: stop it first", name, st)
	}
	src := filepath.Join(p.dir(name), "snapshots", snap)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	}
	if err := os.RemoveAll(p.rootfs(name)); err != nil {
		return err
	}
	return copyTree(src, p.rootfs(name))
}

// Snapshots lists the machine's snapshots, oldest first.
func (p *Provider) Snapshots(ctx context.Context, name string) ([]provider.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.machines[name]; ok {
		return slices.Clone(m.snaps), nil
	}
	return nil, nil
}

// DeleteSnapshot removes a snapshot.
func (p *Provider) DeleteSnapshot(ctx context.Context, name, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	p.mu.Lock()
	m, ok := p.machines[name]
	found := ok && slices.ContainsFunc(m.snaps, func(s provider.Snapshot) bool { return s.Name == snap })
	if found {
		m.snaps = slices.DeleteFunc(m.snaps, func(s provider.Snapshot) bool { return s.Name == snap })
	}
	p.mu.Unlock()
	if !found {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	}
	return os.RemoveAll(filepath.Join(p.dir(name), "snapshots", snap))
}

// ExportRootfs shows a scratch copy of a stopped machine's filesystem.
func (p *Provider) ExportRootfs(ctx context.Context, name string, fn func(rootfs string) error) error {
	m, ok := p.get(name)
	if !ok {
		return fmt.Errorf("machine %q does not exist", name)
	}
	if st := p.state(m); st != provider.Stopped {
		return errdefs.Newf(errdefs.NotRunning, "machine %q is %s: export needs it stopped", name, st)
	}
	scratch := filepath.Join(p.dir(name), "export")
	os.RemoveAll(scratch)
	defer os.RemoveAll(scratch)
	if err := copyTree(p.rootfs(name), scratch); err != nil {
		return err
	}
	return fn(scratch)
}

// copyTree copies files, folders and symlinks from src to dst, keeping
// modes (and owners, when this process may set them).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, info.Mode().Perm()|0o700); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := fsutil.WriteFileAtomic(target, data, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil
		}
		if uid, gid, ok := provider.Owner(info); ok && os.Geteuid() == 0 {
			if err := os.Lchown(target, uid, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
				return err
			}
		}
		return nil
	})
}
