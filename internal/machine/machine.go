package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/provider"
)

// Machine is one machine of a project.
type Machine struct {
	Project *config.Project
	Config  *config.Machine
	State   layout.MachineState
}

// New returns the machine m of p.
func New(p *config.Project, m *config.Machine) *Machine {
	return &Machine{Project: p, Config: m, State: layout.ProjectState(p.Dir).Machine(m.Name)}
}

// Name is the machine's name in den.hcl.
func (m *Machine) Name() string { return m.Config.Name }

// Container is the machine's container name.
func (m *Machine) Container() string { return ContainerName(m.Project.Dir, m.Config.Name) }

// Record reads the machine's record; nil when it was never created. A
// record that does not hold what den wrote for this machine is refused
// (errdefs.Tampered).
func (m *Machine) Record() (*Record, error) { return readRecord(m.State, m.Project.Dir, m.Name()) }

// lockWait is how long a command waits for another one's machine lock.
var lockWait = 3 * time.Second

// lock takes the machine's lock for a changing operation, which holds it
// for its whole duration.
func (m *Machine) lock(ctx context.Context, what string) (*lock.Lock, error) {
	if err := ensureStateDir(m.Project.Dir, m.State); err != nil {
		return nil, err
	}
	return lock.Acquire(ctx, m.State.Lock(), what, lockWait)
}

// ensureStateDir makes .den/ (0700, ignored by git) and .den/<machine>/,
// refusing either when it is a symlink or not a folder: den writes keys
// there and must not be led elsewhere.
func ensureStateDir(projectDir string, st layout.MachineState) error {
	top := layout.ProjectState(projectDir).Path()
	for _, d := range []string{top, st.Path()} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", d, err)
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return errdefs.Newf(errdefs.Tampered, "%s is not a folder (it is a %s): den keeps machine state and keys there; remove it", d, fi.Mode().Type())
		}
	}
	gi := filepath.Join(top, ".gitignore")
	if _, err := os.Lstat(gi); errors.Is(err, fs.ErrNotExist) {
		fsutil.WriteFileAtomic(gi, []byte("# den's machine state: private keys, pinned host keys. Never commit it.\n*\n"), 0o644)
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
	Provider  string `json:"provider"`
	// Location is where the machine runs when its engine has several
	// places: an LXD remote, and the cluster member ("ci/node2").
	Location string `json:"location,omitempty"`
}

// machineProvider returns the provider of m: the one its record names
// once it is created (or reserved), else the one its den.hcl names, else
// the default.
func (e *Env) machineProvider(m *Machine, rec *Record) (provider.Provider, error) {
	name := m.Config.Provider
	if rec != nil {
		name = rec.Provider
	}
	return e.Provider(name)
}

// current reads the machine's record, its provider and its state; a
// machine that was never created has a nil record and state NotCreated.
func (e *Env) current(ctx context.Context, m *Machine) (*Record, provider.Provider, provider.State, error) {
	rec, err := m.Record()
	if err != nil {
		return nil, nil, provider.Unknown, err
	}
	prov, err := e.machineProvider(m, rec)
	if err != nil {
		return nil, nil, provider.Unknown, err
	}
	if rec == nil {
		return nil, prov, provider.NotCreated, nil
	}
	st, err := prov.State(ctx, rec.Container)
	return rec, prov, st, err
}

// created is current for operations that need a created machine.
func (e *Env) created(ctx context.Context, m *Machine, what string) (*Record, provider.Provider, provider.State, error) {
	rec, prov, st, err := e.current(ctx, m)
	if err == nil && st == provider.NotCreated {
		err = notCreated(m, what)
	}
	return rec, prov, st, err
}

// status reads one machine's state without starting or contacting it.
func (e *Env) status(ctx context.Context, m *Machine) (Status, error) {
	s := Status{Name: m.Name(), Box: m.Config.Box, State: provider.NotCreated.String()}
	rec, prov, st, err := e.current(ctx, m)
	if err != nil {
		return s, err
	}
	s.Provider = prov.Name()
	if rec == nil {
		return s, nil
	}
	s.State, s.Container, s.Address = st.String(), rec.Container, rec.IP()
	if rec.Box != "" {
		s.Box = rec.Box
	}
	if l, ok := prov.(provider.Locator); ok && st != provider.NotCreated {
		// Engines with several places say which (LXD: remote and member).
		if where, err := l.Location(ctx, rec.Container); err == nil {
			s.Location = where
		}
	}
	return s, nil
}

// UpOptions tune Up, Reload and a restore's start.
type UpOptions struct {
	Provision ProvisionMode
	With      []string // --provision-with: run just these provisioners
	Parallel  bool     // bring several machines up at once
}

// upLocked creates the machine when missing, starts it when stopped and
// waits for sshd, then provisions it as opts say. The caller holds the
// machine's lock.
func (e *Env) upLocked(ctx context.Context, m *Machine, opts UpOptions) error {
	rec, prov, state, err := e.current(ctx, m)
	if err != nil {
		return err
	}
	if err := prov.CheckHost(ctx, []string{m.Config.Bridge}); err != nil {
		return err
	}
	name := m.Name()
	var client *ssh.Client
	switch state {
	case provider.Running:
		e.UI.Say(name, "Machine is already running.")
		if err := e.startForwards(ctx, m, rec, prov, true); err != nil {
			return err
		}
		if opts.Provision == ProvisionAuto && len(opts.With) == 0 && !hasAlways(m.Config.Provisions) {
			return nil
		}
		if client, err = e.dial(ctx, m, rec, prov); err != nil {
			return err
		}
	case provider.Frozen:
		return errdefs.Machinef(errdefs.Frozen, name, "machine %q is suspended: run 'den resume %s'", name, name)
	case provider.NotCreated:
		if rec, err = e.create(ctx, m, prov); err != nil {
			return err
		}
		fallthrough
	default:
		if client, err = e.start(ctx, m, rec, prov); err != nil {
			return err
		}
	}
	defer client.Close()
	if state != provider.Running {
		// rsync folders are copied at up and reload, as in Vagrant.
		if err := e.rsyncFolders(ctx, m, client); err != nil {
			return err
		}
	}
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

// ensureBox returns the installed box m names, building or fetching it
// when missing (one at a time per box name in this process; other dens
// wait on the store). The caller holds the store's shared lock.
func (e *Env) ensureBox(ctx context.Context, m *Machine) (*box.Box, error) {
	c := m.Config
	mu := e.boxMutex(c.Box)
	mu.Lock()
	defer mu.Unlock()
	return e.Store.Ensure(ctx, e.UI, boxWant(c))
}

// create makes the machine: box, address, keys, its own layer, and its
// index entry. It holds the box store's shared lock until the index names
// the machine, so no 'box remove' takes the box meanwhile. A reservation
// (see Reserve) gives the address it prefers.
func (e *Env) create(ctx context.Context, m *Machine, prov provider.Provider) (*Record, error) {
	storeLock, err := e.Store.Lock(ctx, false, "den up")
	if err != nil {
		return nil, err
	}
	defer storeLock.Unlock()
	name := m.Name()
	b, err := e.ensureBox(ctx, m)
	if err != nil {
		return nil, err
	}
	reserved, err := m.Record()
	if err != nil {
		return nil, err
	}
	e.UI.Say(name, "Creating machine from box %s (%s)...", b.Name, b.Version)
	rec := &Record{
		Container:  m.Container(),
		Provider:   providerField(e, prov),
		Project:    m.Project.Dir,
		Machine:    name,
		Bridge:     m.Config.Bridge,
		Box:        b.Name,
		BoxVersion: b.Version,
		User:       b.Meta.LoginUser(),
		Created:    time.Now().UTC(),
	}
	prefer := ""
	if reserved != nil && sameBridge(reserved.Bridge, rec.Bridge) {
		prefer = reserved.Address
	}
	if err := e.assignAddress(ctx, rec, prov, prefer, m.Config.Engine()); err != nil {
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
	if err := fsutil.WriteFileAtomic(m.State.Key(), privPEM, 0o600); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(m.State.HostKey(), hostPub, 0o644); err != nil {
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
	spec.Prepare = func(ctx context.Context, gfs provider.GuestFS) error {
		return prepareGuest(gfs, guestSetup{
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
	if err := prov.Create(ctx, spec); err != nil {
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

// providerField is the provider's name as a record keeps it: "" for the
// default one, so records stay as they were before providers had names.
func providerField(e *Env, p provider.Provider) string {
	if p.Name() == e.fallback {
		return ""
	}
	return p.Name()
}

// reserve gives machine m an address before it is created (see Reserve).
// A machine another den holds the lock of is left alone: that den is
// making it.
func (e *Env) reserve(ctx context.Context, m *Machine) error {
	if err := ensureStateDir(m.Project.Dir, m.State); err != nil {
		return err
	}
	lk, err := lock.Acquire(ctx, m.State.Lock(), "den up (reserving an address)", 100*time.Millisecond)
	if errors.Is(err, lock.ErrHeld) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lk.Unlock()
	rec, err := m.Record()
	if err != nil {
		return err
	}
	c := m.Config
	if rec != nil && rec.Address != "" && sameBridge(rec.Bridge, c.Bridge) {
		return nil
	}
	prov, err := e.machineProvider(m, rec)
	if err != nil {
		return err
	}
	if _, ok := prov.(provider.Addresser); !ok {
		return nil
	}
	rec = &Record{Container: m.Container(), Provider: providerField(e, prov), Project: m.Project.Dir, Machine: c.Name, Bridge: c.Bridge, Box: c.Box, Created: time.Now().UTC()}
	if err := e.assignAddress(ctx, rec, prov, "", m.Config.Engine()); err != nil {
		return err
	}
	return writeJSON(m.State.Record(), rec, 0o600)
}

// sameBridge reports whether a record's bridge is the one den.hcl asks
// for: want "" leaves the choice to the provider (LXD: the profiles'
// network), which the record then holds.
func sameBridge(have, want string) bool { return want == "" || have == want }

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

// assignAddress gives rec a free address on its bridge from a provider
// that allocates them, keeping prefer when it is still free, and records
// it in the index at once. Allocation is one at a time on the whole host,
// across den homes.
func (e *Env) assignAddress(ctx context.Context, rec *Record, prov provider.Provider, prefer string, engine any) error {
	alloc, ok := prov.(provider.Addresser)
	if !ok {
		return nil
	}
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
	pfx, _ := netip.ParsePrefix(prefer)
	spec := &provider.Spec{Name: rec.Container, Network: provider.Network{Bridge: rec.Bridge}, Engine: engine}
	n, err := alloc.AllocateAddress(ctx, spec, pfx, ix.takenAddresses(rec.Container))
	if err != nil {
		return err
	}
	rec.Address, rec.Gateway, rec.MAC = n.Address.String(), n.Gateway.String(), n.MAC
	if rec.Bridge == "" {
		rec.Bridge = n.Bridge // the provider chose (LXD: the profiles' network)
	}
	return ix.Put(rec.indexEntry())
}

func writeKnownHosts(m *Machine, rec *Record, hostPub []byte) error {
	key, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		return err
	}
	line := sshx.KnownHostsLine(SSHAlias(m), rec.IP(), key)
	return fsutil.WriteFileAtomic(m.State.KnownHosts(), []byte(line), 0o644)
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
	var network provider.Network
	if rec.Address != "" {
		addr, err := netip.ParsePrefix(rec.Address)
		if err != nil {
			return nil, fmt.Errorf("record %s: bad address %q", m.State.Record(), rec.Address)
		}
		gw, err := netip.ParseAddr(rec.Gateway)
		if err != nil {
			return nil, fmt.Errorf("record %s: bad gateway %q", m.State.Record(), rec.Gateway)
		}
		network = provider.Network{Bridge: rec.Bridge, Address: addr, Gateway: gw, MAC: rec.MAC}
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
	var forwards []provider.Forward
	for _, f := range m.Config.Forwards {
		forwards = append(forwards, provider.Forward{Protocol: f.Protocol, HostIP: f.HostIP, HostPort: f.Host, GuestPort: f.Guest})
	}
	return &provider.Spec{
		Name:       rec.Container,
		Rootfs:     b.Rootfs(),
		Box:        b.Name,
		BoxVersion: b.Version,
		Engine:     m.Config.Engine(),
		Forwards:   forwards,
		Hostname:   m.Config.Hostname,
		Memory:     m.Config.Memory,
		CPUs:       m.Config.CPUs,
		Mounts:     mounts,
		Network:    network,
		BoxConfig:  boxCfg,
		RawConfig:  raw,
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
		if sf.Type == config.FolderRsync {
			continue // a copy, made over ssh once the machine runs
		}
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

// start applies the current den.hcl, starts the machine, waits for sshd
// and returns the ssh client. It holds the box store's shared lock while
// the machine starts on its box.
func (e *Env) start(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) (*ssh.Client, error) {
	name := m.Name()
	storeLock, err := e.Store.Lock(ctx, false, "den up")
	if err != nil {
		return nil, err
	}
	defer storeLock.Unlock()
	b, err := e.Store.Get(rec.Box, rec.BoxVersion)
	if err != nil {
		return nil, errdefs.Machinef(errdefs.BoxMissing, name, "machine %q was made from box %s %s, which is no longer installed: %w", name, rec.Box, rec.BoxVersion, err)
	}
	if !sameBridge(rec.Bridge, m.Config.Bridge) {
		rec.Bridge = m.Config.Bridge
	}
	// Keep the address unless someone else took it while the machine was off.
	old := rec.Address
	if err := e.assignAddress(ctx, rec, prov, old, m.Config.Engine()); err != nil {
		return nil, err
	}
	if rec.Address != old {
		e.UI.Warn(name, "address %s was taken while the machine was stopped; using %s", old, rec.Address)
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return nil, err
		}
		if pub, err := fsutil.ReadRegular(m.State.HostKey(), maxRecord); err == nil {
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
		spec.Prepare = func(ctx context.Context, gfs provider.GuestFS) error {
			return writeNames(gfs, m.Config.Hostname, peers)
		}
		rec.Hosts = hosts
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return nil, err
		}
	}
	if err := e.startForwards(ctx, m, rec, prov, false); err != nil {
		return nil, err
	}
	e.UI.Say(name, "Starting machine...")
	if err := prov.Start(ctx, spec); err != nil {
		e.stopForwards(m)
		return nil, err
	}
	storeLock.Unlock()
	e.checkLimits(ctx, m, rec, prov)
	e.UI.Say(name, "Waiting for machine to boot...")
	e.UI.Detail(name, "SSH address: %s:22", rec.IP())
	e.UI.Detail(name, "SSH username: %s", rec.User)
	client, err := e.waitSSH(ctx, m, rec, prov)
	if err != nil {
		return nil, err
	}
	e.UI.Say(name, "Machine booted and ready!")
	return client, nil
}

// checkLimits reads the memory limit and CPUs in force back from the
// running machine and warns when they differ from den.hcl's.
func (e *Env) checkLimits(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) {
	if m.Config.Memory == 0 && m.Config.CPUs == 0 {
		return
	}
	info, err := prov.Inspect(ctx, rec.Container)
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

// target returns the pinned ssh target of the machine, reached through
// the provider when it has its own way there.
func (e *Env) target(m *Machine, rec *Record, prov provider.Provider) (sshx.Target, error) {
	signer, err := sshx.LoadSigner(m.State.Key())
	if err != nil {
		return sshx.Target{}, err
	}
	hk, err := sshx.LoadHostKey(m.State.HostKey())
	if err != nil {
		return sshx.Target{}, err
	}
	t := sshx.Target{Addr: rec.IP() + ":22", User: rec.User, Signer: signer, HostKey: hk, PinFile: m.State.HostKey()}
	if d, ok := prov.(provider.Dialer); ok {
		t.Dial = func(ctx context.Context) (net.Conn, error) { return d.DialGuest(ctx, rec.Container, 22) }
	}
	return t, nil
}

func (e *Env) waitSSH(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) (*ssh.Client, error) {
	t, err := e.target(m, rec, prov)
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
		if ctx.Err() != nil {
			return nil, err
		}
		info, _ := prov.Inspect(ctx, rec.Container)
		h := prov.Hints(rec.Container)
		return nil, errdefs.Machinef(errdefs.Internal, m.Name(), "machine %q: %w\n(the machine is %s; look inside with '%s', log: %s)", m.Name(), err, info.State, h.Shell, h.Log)
	}
	return c, nil
}

// Connect opens a pinned ssh connection to a running machine.
func (e *Env) Connect(ctx context.Context, m *Machine) (*ssh.Client, error) {
	rec, prov, st, err := e.current(ctx, m)
	if err != nil {
		return nil, err
	}
	name := m.Name()
	switch st {
	case provider.NotCreated:
		return nil, errdefs.Machinef(errdefs.NotCreated, name, "machine %q is not created: run 'den up %s'", name, name)
	case provider.Frozen:
		return nil, frozen(m)
	case provider.Running:
	default:
		return nil, errdefs.Machinef(errdefs.NotRunning, name, "machine %q is %s: run 'den up %s'", name, st, name)
	}
	return e.dial(ctx, m, rec, prov)
}

// dial makes one pinned ssh connection to a running machine.
func (e *Env) dial(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) (*ssh.Client, error) {
	t, err := e.target(m, rec, prov)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := sshx.Dial(dctx, t)
	if err != nil {
		return nil, fmt.Errorf("connect to machine %q: %w", m.Name(), err)
	}
	return c, nil
}

// stop is the one way den stops a machine: the provider stops it (a clean
// shutdown within timeout, then a kill; at once when force) and its port
// forwarder ends with it.
func (e *Env) stop(ctx context.Context, m *Machine, rec *Record, prov provider.Provider, force bool, timeout time.Duration) error {
	if err := prov.Stop(ctx, rec.Container, force, timeout); err != nil {
		return err
	}
	return e.stopForwards(m)
}

func (e *Env) halt(ctx context.Context, m *Machine, force bool, timeout time.Duration) error {
	rec, prov, st, err := e.current(ctx, m)
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
	return e.stop(ctx, m, rec, prov, force, timeout)
}

// destroy removes the machine: container, layer, record, index entry. The
// project folder and every synced folder are never touched: the provider
// refuses while anything is mounted in the machine's folder and deletes
// without following links or crossing mounts.
func (e *Env) destroy(ctx context.Context, m *Machine) error {
	name := m.Name()
	rec, err := m.Record()
	if err != nil {
		return err
	}
	prov, err := e.machineProvider(m, rec)
	if err != nil {
		return err
	}
	container := m.Container()
	if rec != nil {
		container = rec.Container
	}
	st, err := prov.State(ctx, container)
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
	if err := prov.Destroy(ctx, container); err != nil {
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
	return removeStateDir(m.State)
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
			return errdefs.Newf(errdefs.Tampered, "%s holds %q, which den did not write; remove that folder by hand", st.Path(), en.Name())
		}
	}
	return fsutil.RemoveTree(st.Path())
}

// Inspect reads the machine's state and limits back from the provider.
func (e *Env) Inspect(ctx context.Context, m *Machine) (provider.Info, error) {
	rec, prov, st, err := e.current(ctx, m)
	if err != nil || rec == nil {
		return provider.Info{State: st}, err
	}
	return prov.Inspect(ctx, rec.Container)
}
