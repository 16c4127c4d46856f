package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// Env is what every machine operation needs.
type Env struct {
	Home     layout.Home
	Provider provider.Provider
	Store    *box.Store
	UI       *ui.UI
	// EnsureBox returns the installed box a machine names, building it when
	// it is missing and den knows how (set by the CLI).
	EnsureBox func(ctx context.Context, m *config.Machine) (*box.Box, error)
	// ReadyTimeout bounds the wait for sshd after start.
	ReadyTimeout time.Duration
}

// Machine is one machine of a project.
type Machine struct {
	Project *config.Project
	Config  *config.Machine
	State   layout.MachineState
}

// New returns the machine named name in p.
func New(p *config.Project, m *config.Machine) *Machine {
	return &Machine{Project: p, Config: m, State: layout.ProjectState(p.Dir).Machine(m.Name)}
}

// Name is the machine's name in den.hcl.
func (m *Machine) Name() string { return m.Config.Name }

// Container is the machine's container name.
func (m *Machine) Container() string { return ContainerName(m.Project.Dir, m.Config.Name) }

// Record reads the machine's record; nil when it was never created.
func (m *Machine) Record() (*Record, error) { return readRecord(m.State) }

// Lock takes the machine's lock for a changing command.
func (m *Machine) Lock(ctx context.Context, what string) (*lock.Lock, error) {
	if err := ensureStateDir(m.Project.Dir, m.State); err != nil {
		return nil, err
	}
	return lock.Acquire(ctx, m.State.Lock(), what, 3*time.Second)
}

// ensureStateDir makes .den/ (0700, ignored by git) and .den/<machine>/.
func ensureStateDir(projectDir string, st layout.MachineState) error {
	top := layout.ProjectState(projectDir).Path()
	if err := os.MkdirAll(top, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", top, err)
	}
	gi := filepath.Join(top, ".gitignore")
	if _, err := os.Stat(gi); errors.Is(err, os.ErrNotExist) {
		os.WriteFile(gi, []byte("# den's machine state: private keys, pinned host keys. Never commit it.\n*\n"), 0o644)
	}
	if err := os.MkdirAll(st.Path(), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", st.Path(), err)
	}
	return nil
}

// Status is what `den status` shows for one machine.
type Status struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Address   string `json:"address,omitempty"`
	Container string `json:"container,omitempty"`
	Box       string `json:"box"`
}

// current reads the machine's record and its state from the provider; a
// machine that was never created has a nil record and state NotCreated.
func (e *Env) current(ctx context.Context, m *Machine) (*Record, provider.State, error) {
	rec, err := m.Record()
	if err != nil || rec == nil {
		return nil, provider.NotCreated, err
	}
	st, err := e.Provider.State(ctx, rec.Container)
	return rec, st, err
}

// Status reads the machine's state without starting or contacting it.
func (e *Env) Status(ctx context.Context, m *Machine) (Status, error) {
	s := Status{Name: m.Name(), Box: m.Config.Box, State: provider.NotCreated.String()}
	rec, st, err := e.current(ctx, m)
	if err != nil || rec == nil {
		return s, err
	}
	s.State, s.Container, s.Address = st.String(), rec.Container, rec.IP()
	if rec.Box != "" {
		s.Box = rec.Box
	}
	return s, nil
}

// UpOptions tune `den up`.
type UpOptions struct {
	Provision ProvisionMode
	With      []string // --provision-with: run just these provisioners
}

// Up creates the machine when missing, starts it when stopped and waits for
// sshd, then provisions it as opts say. It holds the machine's lock
// throughout.
func (e *Env) Up(ctx context.Context, m *Machine, opts UpOptions) error {
	lk, err := m.Lock(ctx, "den up")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	return e.up(ctx, m, opts)
}

// Reload halts the machine and brings it up again with the current
// den.hcl (memory, cpus, synced folders, forwards, lxc config), keeping
// its disk. It holds the machine's lock throughout.
func (e *Env) Reload(ctx context.Context, m *Machine, opts UpOptions, timeout time.Duration) error {
	lk, err := m.Lock(ctx, "den reload")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	if rec, err := m.Record(); err == nil && rec != nil && rec.Box != "" && rec.Box != m.Config.Box {
		e.UI.Warn(m.Name(), "den.hcl names box %s, but the machine was made from %s; 'den destroy' and 'den up' make it anew from the new box", m.Config.Box, rec.Box)
	}
	if err := e.halt(ctx, m, false, timeout); err != nil {
		return err
	}
	return e.up(ctx, m, opts)
}

func (e *Env) up(ctx context.Context, m *Machine, opts UpOptions) error {
	if err := host.Check(host.Need{LXC: true, Bridge: m.Config.Bridge}); err != nil {
		return err
	}
	rec, state, err := e.current(ctx, m)
	if err != nil {
		return err
	}
	name := m.Name()
	var client *ssh.Client
	switch state {
	case provider.Running:
		e.UI.Say(name, "Machine is already running.")
		if err := e.startForwards(m, rec, true); err != nil {
			return err
		}
		if opts.Provision == ProvisionAuto && len(opts.With) == 0 && !hasAlways(m.Config.Provisions) {
			return nil
		}
		if client, _, err = e.Connect(ctx, m); err != nil {
			return err
		}
	case provider.Frozen:
		return fmt.Errorf("machine %q is suspended: run 'den resume %s'", name, name)
	case provider.NotCreated:
		if rec, err = e.create(ctx, m, rec); err != nil {
			return err
		}
		fallthrough
	default:
		if client, err = e.start(ctx, m, rec); err != nil {
			return err
		}
	}
	defer client.Close()
	if len(m.Config.Provisions) == 0 && len(opts.With) == 0 {
		return nil
	}
	popts := ProvisionOptions{Only: opts.With}
	switch {
	case len(opts.With) > 0:
		popts.Force = true
	case opts.Provision == ProvisionNever:
		return nil
	case opts.Provision == ProvisionForce:
		popts.Force = true
	case state != provider.NotCreated:
		// A later up runs only the run = "always" provisioners.
		popts.AlwaysOnly = true
	}
	return e.provision(ctx, m, client, popts)
}

func hasAlways(provs []config.Provision) bool {
	for _, p := range provs {
		if p.Run == config.RunAlways {
			return true
		}
	}
	return false
}

// create makes the container: box, address, keys, the machine's layer.
// rec may hold the address reserved for the machine (see Reserve).
func (e *Env) create(ctx context.Context, m *Machine, reserved *Record) (*Record, error) {
	name := m.Name()
	b, err := e.EnsureBox(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	e.UI.Say(name, "Creating machine from box %s (%s)...", b.Name, b.Version)
	rec := &Record{
		Container:  m.Container(),
		Project:    m.Project.Dir,
		Machine:    name,
		Bridge:     m.Config.Bridge,
		Box:        b.Name,
		BoxVersion: b.Version,
		User:       b.Meta.LoginUser(),
		Created:    time.Now().UTC(),
	}
	prefer := ""
	if reserved != nil && reserved.Bridge == rec.Bridge {
		prefer = reserved.Address
	}
	if err := e.assignAddress(ctx, rec, prefer); err != nil {
		return nil, err
	}
	// Keys: the machine's client key and host key, written before the record
	// so a half-made machine can always be destroyed.
	_, privPEM, authLine, err := sshx.GenerateKey("den " + name)
	if err != nil {
		return nil, err
	}
	hostPEM, hostPub, err := sshx.GenerateHostKey()
	if err != nil {
		return nil, err
	}
	if err := sshx.WriteFileAtomic(m.State.Key(), privPEM, 0o600); err != nil {
		return nil, err
	}
	if err := sshx.WriteFileAtomic(m.State.HostKey(), hostPub, 0o644); err != nil {
		return nil, err
	}
	if err := writeKnownHosts(m, rec, hostPub); err != nil {
		return nil, err
	}
	peers := e.peers(m)
	rec.Hosts = hostsFile(m.Config.Hostname, peers)
	if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
		return nil, err
	}
	uid, gid := ownerOf(m.Project.Dir)
	spec, err := e.spec(m, b, rec)
	if err != nil {
		return nil, err
	}
	spec.Warn = func(format string, args ...any) { e.UI.Warn(name, format, args...) }
	spec.Prepare = func(ctx context.Context, root *os.Root) error {
		return prepareGuest(root, guestSetup{
			Hostname:   m.Config.Hostname,
			User:       rec.User,
			UID:        uid,
			GID:        gid,
			Authorized: authLine,
			HostKey:    hostPEM,
			HostPub:    hostPub,
			Nameserver: rec.Gateway,
			Peers:      peers,
		}, func(format string, args ...any) { e.UI.Warn(name, format, args...) })
	}
	if err := e.Provider.Create(ctx, spec); err != nil {
		return nil, err
	}
	ix, err := OpenIndex(ctx, e.Home)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	if err := ix.Put(rec.indexEntry()); err != nil {
		return nil, err
	}
	return rec, nil
}

// Reserve gives every machine of the project an address before any is
// created, so each machine's /etc/hosts can name all its peers from the
// first boot. A reservation is a record without a container.
func (e *Env) Reserve(ctx context.Context, p *config.Project) error {
	for _, c := range p.Machines {
		m := New(p, c)
		if err := ensureStateDir(p.Dir, m.State); err != nil {
			return err
		}
		rec, err := m.Record()
		if err != nil {
			return err
		}
		if rec != nil && rec.Address != "" && rec.Bridge == c.Bridge {
			continue
		}
		rec = &Record{Container: m.Container(), Project: p.Dir, Machine: c.Name, Bridge: c.Bridge, Box: c.Box, Created: time.Now().UTC()}
		if err := e.assignAddress(ctx, rec, ""); err != nil {
			return err
		}
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// peers lists the project's other machines with their addresses.
func (e *Env) peers(m *Machine) []peer {
	var out []peer
	for _, c := range m.Project.Machines {
		if c.Name == m.Name() {
			continue
		}
		rec, err := New(m.Project, c).Record()
		if err != nil || rec == nil || rec.Address == "" {
			continue
		}
		out = append(out, peer{IP: rec.IP(), Names: uniq(c.Hostname, c.Name)})
	}
	return out
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// assignAddress gives rec a free address on its bridge, keeping prefer when
// it is still free.
func (e *Env) assignAddress(ctx context.Context, rec *Record, prefer string) error {
	subnet, err := host.BridgePrefix(rec.Bridge)
	if err != nil {
		return err
	}
	// One allocation at a time on the whole host, across den homes.
	hostLock, err := lockAddresses(ctx, e.Home)
	if err != nil {
		return err
	}
	defer hostLock.Unlock()
	ix, err := OpenIndex(ctx, e.Home)
	if err != nil {
		return err
	}
	defer ix.Close()
	addr, err := ix.Allocate(rec.Bridge, rec.Container, subnet, prefer)
	if err != nil {
		return err
	}
	gw, _ := netip.AddrFromSlice(subnet.IP.To4())
	rec.Address, rec.Gateway, rec.MAC = addr.String(), gw.String(), MACFor(addr.Addr())
	// Reserve it in the index at once, before the container config exists.
	return ix.Put(rec.indexEntry())
}

func writeKnownHosts(m *Machine, rec *Record, hostPub []byte) error {
	key, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		return err
	}
	line := sshx.KnownHostsLine(SSHAlias(m), rec.IP(), key)
	return sshx.WriteFileAtomic(m.State.KnownHosts(), []byte(line), 0o644)
}

// SSHAlias is the Host name of the machine in ssh-config output.
func SSHAlias(m *Machine) string { return "den-" + m.Name() }

// ownerOf returns the uid and gid owning dir.
func ownerOf(dir string) (int, int) {
	st, err := os.Stat(dir)
	if err != nil {
		return 0, 0
	}
	sys := st.Sys().(*syscall.Stat_t)
	return int(sys.Uid), int(sys.Gid)
}

// spec builds the provider spec from the current den.hcl and the record.
func (e *Env) spec(m *Machine, b *box.Box, rec *Record) (*provider.Spec, error) {
	addr, err := netip.ParsePrefix(rec.Address)
	if err != nil {
		return nil, fmt.Errorf("record %s: bad address %q", m.State.Record(), rec.Address)
	}
	gw, err := netip.ParseAddr(rec.Gateway)
	if err != nil {
		return nil, fmt.Errorf("record %s: bad gateway %q", m.State.Record(), rec.Gateway)
	}
	boxCfg, err := b.LXCConfig()
	if err != nil {
		return nil, err
	}
	mounts, err := e.mounts(m)
	if err != nil {
		return nil, err
	}
	raw := make([][2]string, 0, len(m.Config.LXCConfig))
	for _, kv := range m.Config.LXCConfig {
		raw = append(raw, [2]string{kv.Key, kv.Value})
	}
	return &provider.Spec{
		Name:      rec.Container,
		Rootfs:    b.Rootfs(),
		Hostname:  m.Config.Hostname,
		Memory:    m.Config.Memory,
		CPUs:      m.Config.CPUs,
		Mounts:    mounts,
		Network:   provider.Network{Bridge: rec.Bridge, Address: addr, Gateway: gw, MAC: rec.MAC},
		BoxConfig: boxCfg,
		RawConfig: raw,
	}, nil
}

// mounts lists the synced folders, then the guards: where a synced folder
// shows the project folder, den.hcl is mounted read-only over itself and
// .den/ is hidden under an empty read-only folder, so the guest can neither
// change what the host runs next nor read any machine's private key.
func (e *Env) mounts(m *Machine) ([]provider.Mount, error) {
	var out, guards []provider.Mount
	empty := filepath.Join(e.Home.Path(), "empty")
	if err := os.MkdirAll(empty, 0o555); err != nil {
		return nil, err
	}
	for _, sf := range m.Config.Synced {
		out = append(out, provider.Mount{Source: sf.Host, Target: sf.Guest, ReadOnly: sf.ReadOnly})
		rel, err := filepath.Rel(sf.Host, m.Project.Dir)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		g := filepath.Join(sf.Guest, rel)
		guards = append(guards,
			provider.Mount{Source: m.Project.File, Target: filepath.Join(g, filepath.Base(m.Project.File)), ReadOnly: true, File: true},
			provider.Mount{Source: empty, Target: filepath.Join(g, layout.StateDirName), ReadOnly: true},
		)
	}
	return append(out, guards...), nil
}

// start applies the current den.hcl, starts the container, waits for sshd
// and returns the ssh client.
func (e *Env) start(ctx context.Context, m *Machine, rec *Record) (*ssh.Client, error) {
	name := m.Name()
	b, err := e.Store.Get(rec.Box, rec.BoxVersion)
	if err != nil {
		return nil, fmt.Errorf("machine %q was made from box %s %s, which is no longer installed: %w", name, rec.Box, rec.BoxVersion, err)
	}
	if rec.Bridge != m.Config.Bridge {
		rec.Bridge = m.Config.Bridge
	}
	// Keep the address unless someone else took it while the machine was off.
	old := rec.Address
	if err := e.assignAddress(ctx, rec, old); err != nil {
		return nil, err
	}
	if rec.Address != old {
		e.UI.Warn(name, "address %s was taken while the machine was stopped; using %s", old, rec.Address)
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return nil, err
		}
		if pub, err := os.ReadFile(m.State.HostKey()); err == nil {
			writeKnownHosts(m, rec, pub)
		}
	}
	spec, err := e.spec(m, b, rec)
	if err != nil {
		return nil, err
	}
	// The hostname, the project's machines or their addresses changed since
	// the last start: rewrite the guest's /etc/hostname and /etc/hosts
	// before it boots.
	peers := e.peers(m)
	if hosts := hostsFile(m.Config.Hostname, peers); hosts != rec.Hosts {
		spec.Prepare = func(ctx context.Context, root *os.Root) error {
			return writeNames(root, m.Config.Hostname, peers)
		}
		rec.Hosts = hosts
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return nil, err
		}
	}
	if err := e.startForwards(m, rec, false); err != nil {
		return nil, err
	}
	e.UI.Say(name, "Starting machine...")
	if err := e.Provider.Start(ctx, spec); err != nil {
		e.stopForwards(m)
		return nil, err
	}
	e.checkLimits(ctx, m, rec)
	e.UI.Say(name, "Waiting for machine to boot...")
	e.UI.Detail(name, "SSH address: %s:22", rec.IP())
	e.UI.Detail(name, "SSH username: %s", rec.User)
	client, err := e.waitSSH(ctx, m, rec)
	if err != nil {
		return nil, err
	}
	e.UI.Say(name, "Machine booted and ready!")
	return client, nil
}

// checkLimits reads the memory limit and CPUs in force back from the
// running machine and warns when they differ from den.hcl's.
func (e *Env) checkLimits(ctx context.Context, m *Machine, rec *Record) {
	if m.Config.Memory == 0 && m.Config.CPUs == 0 {
		return
	}
	info, err := e.Provider.Inspect(ctx, rec.Container)
	if err != nil {
		return
	}
	name := m.Name()
	if m.Config.Memory > 0 && info.MemoryLimit != m.Config.Memory {
		e.UI.Warn(name, "memory limit in force is %d bytes, den.hcl asks for %d (see %s)", info.MemoryLimit, m.Config.Memory, info.LogFile)
	}
	cpus, _ := host.ParseCPUList(strings.TrimSpace(info.CPUs))
	if n := len(cpus); m.Config.CPUs > 0 && n != m.Config.CPUs {
		e.UI.Warn(name, "the machine has %d CPUs (cpuset %q), den.hcl asks for %d (see %s)", n, info.CPUs, m.Config.CPUs, info.LogFile)
	}
}

// Target returns the pinned ssh target of the machine.
func (m *Machine) Target(rec *Record) (sshx.Target, error) {
	signer, err := sshx.LoadSigner(m.State.Key())
	if err != nil {
		return sshx.Target{}, err
	}
	hk, err := sshx.LoadHostKey(m.State.HostKey())
	if err != nil {
		return sshx.Target{}, err
	}
	return sshx.Target{Addr: rec.IP() + ":22", User: rec.User, Signer: signer, HostKey: hk, PinFile: m.State.HostKey()}, nil
}

func (e *Env) waitSSH(ctx context.Context, m *Machine, rec *Record) (*ssh.Client, error) {
	t, err := m.Target(rec)
	if err != nil {
		return nil, err
	}
	timeout := e.ReadyTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := sshx.WaitReady(wctx, t, 50*time.Millisecond)
	if err != nil {
		info, _ := e.Provider.Inspect(ctx, rec.Container)
		return nil, fmt.Errorf("machine %q: %w\n(the machine is %s; look inside with 'lxc-attach -P %s -n %s', LXC log: %s)", m.Name(), err, info.State, filepath.Dir(filepath.Dir(info.LogFile)), rec.Container, info.LogFile)
	}
	return c, nil
}

// Connect opens a pinned ssh connection to a running machine.
func (e *Env) Connect(ctx context.Context, m *Machine) (*ssh.Client, *Record, error) {
	rec, st, err := e.current(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	name := m.Name()
	switch st {
	case provider.NotCreated:
		return nil, nil, fmt.Errorf("machine %q is not created: run 'den up %s'", name, name)
	case provider.Frozen:
		return nil, nil, fmt.Errorf("machine %q is suspended (frozen): run 'den resume %s' first", name, name)
	case provider.Running:
	default:
		return nil, nil, fmt.Errorf("machine %q is %s: run 'den up %s'", name, st, name)
	}
	t, err := m.Target(rec)
	if err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := sshx.Dial(dctx, t)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to machine %q: %w", name, err)
	}
	return c, rec, nil
}

// Halt stops the machine: a clean shutdown within timeout, then a kill.
func (e *Env) Halt(ctx context.Context, m *Machine, force bool, timeout time.Duration) error {
	lk, err := m.Lock(ctx, "den halt")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	return e.halt(ctx, m, force, timeout)
}

func (e *Env) halt(ctx context.Context, m *Machine, force bool, timeout time.Duration) error {
	rec, st, err := e.current(ctx, m)
	if err != nil {
		return err
	}
	name := m.Name()
	if rec == nil {
		e.UI.Say(name, "Machine is not created.")
		return nil
	}
	if st == provider.Stopped || st == provider.NotCreated {
		e.UI.Say(name, "Machine is already stopped.")
		return e.stopForwards(m)
	}
	if force {
		e.UI.Say(name, "Forcing shutdown...")
	} else {
		e.UI.Say(name, "Attempting graceful shutdown...")
	}
	if err := e.Provider.Stop(ctx, rec.Container, force, timeout); err != nil {
		return err
	}
	return e.stopForwards(m)
}

// Destroy removes the machine: container, layer, record, index entry. The
// project folder and every synced folder are never touched: the provider
// refuses while anything is mounted in the machine's folder and deletes
// without following links or crossing mounts.
func (e *Env) Destroy(ctx context.Context, m *Machine) error {
	lk, err := m.Lock(ctx, "den destroy")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	name := m.Name()
	rec, err := m.Record()
	if err != nil {
		return err
	}
	container := m.Container()
	if rec != nil {
		container = rec.Container
	}
	st, err := e.Provider.State(ctx, container)
	if err != nil {
		return err
	}
	if rec == nil && st == provider.NotCreated {
		e.UI.Say(name, "Machine is not created.")
		return nil
	}
	if st == provider.Running || st == provider.Frozen {
		e.UI.Say(name, "Stopping machine...")
	}
	e.UI.Say(name, "Destroying machine and its disk...")
	if err := e.stopForwards(m); err != nil {
		return err
	}
	if err := e.Provider.Destroy(ctx, container); err != nil {
		return err
	}
	ix, err := OpenIndex(ctx, e.Home)
	if err != nil {
		return err
	}
	err = ix.Remove(container)
	ix.Close()
	if err != nil {
		return err
	}
	// .den/<machine> holds only den's own files (keys, record, lock).
	if err := removeStateDir(m.State); err != nil {
		return err
	}
	return nil
}

// removeStateDir deletes .den/<machine> after checking it holds only plain
// files den writes, never a folder or link (someone else's data).
func removeStateDir(st layout.MachineState) error {
	entries, err := os.ReadDir(st.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, en := range entries {
		if !en.Type().IsRegular() {
			return fmt.Errorf("%s holds %q, which den did not write; remove that folder by hand", st.Path(), en.Name())
		}
	}
	return fsutil.RemoveTree(st.Path())
}

// Inspect reads the machine's state and limits back from the provider.
func (e *Env) Inspect(ctx context.Context, m *Machine) (provider.Info, error) {
	rec, err := m.Record()
	if err != nil || rec == nil {
		return provider.Info{State: provider.NotCreated}, err
	}
	return e.Provider.Inspect(ctx, rec.Container)
}
