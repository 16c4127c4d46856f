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
	// Orphan is set for a machine .den/ records that den.hcl no longer
	// names (or when den.hcl does not parse): status, halt, destroy, ssh
	// and snapshots work on it; up, reload and provision refuse.
	Orphan bool
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
	// Orphaned is set for a machine den.hcl no longer names.
	Orphaned bool `json:"orphaned,omitempty"`
	// Provisioning is "unfinished" while the machine's first provisioning
	// has not completed (the next up finishes it).
	Provisioning string `json:"provisioning,omitempty"`
	// Privileged is set for a created machine without an id range of its
	// own (guest root is host root); IDs is the host id range of an
	// unprivileged one ("1879048192-1879113727").
	Privileged bool   `json:"privileged,omitempty"`
	IDs        string `json:"ids,omitempty"`
	// Note says what the next up changes in the machine's isolation, and
	// which of den.hcl's settings it keeps from when it was made.
	Note string `json:"note,omitempty"`
	// Store is the store a created machine's filesystem is in, when its
	// provider has several ("overlay", "btrfs").
	Store string `json:"store,omitempty"`
	// Autostart says den.hcl marks the machine to come up when the host
	// boots (den autostart).
	Autostart bool `json:"autostart,omitempty"`
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
	rec, prov, err := e.located(m)
	if err != nil {
		return nil, nil, provider.Unknown, err
	}
	if rec == nil {
		return nil, prov, provider.NotCreated, nil
	}
	st, err := prov.State(ctx, rec.Container)
	return rec, prov, st, err
}

// located reads m's record (nil: never made) and finds its provider,
// without asking the provider anything.
func (e *Env) located(m *Machine) (*Record, provider.Provider, error) {
	rec, err := m.Record()
	if err != nil {
		return nil, nil, err
	}
	prov, err := e.machineProvider(m, rec)
	return rec, prov, err
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
	s := Status{Name: m.Name(), Box: m.Config.Box, State: provider.NotCreated.String(), Orphaned: m.Orphan, Autostart: m.Config.Autostart}
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
	if rec.FirstUpPending && st != provider.NotCreated {
		s.Provisioning = "unfinished"
	}
	if st != provider.NotCreated {
		if rec.IDBase != 0 {
			s.IDs = fmt.Sprintf("%d-%d", rec.IDBase, uint64(rec.IDBase)+provider.IDRangeSize-1)
			if m.Config.Privileged {
				s.Note = "stays unprivileged: privileged = true applies to a machine when it is made"
			}
		} else {
			s.Privileged = true
			if _, ok := prov.(provider.Isolator); ok && !m.Config.Privileged && !m.Orphan {
				if tooHigh(rec) {
					s.Note = fmt.Sprintf("stays privileged: its login user has uid %d, beyond an unprivileged machine's ids", rec.UID)
				} else {
					s.Note = "made before den ran machines unprivileged: the next 'den up' converts it"
				}
			}
		}
	}
	if st != provider.NotCreated {
		s.Store = machineStore(ctx, rec, prov)
		if note := storeNote(m, s.Store); note != "" {
			s.Note = strings.TrimPrefix(s.Note+"; "+note, "; ")
		}
	}
	if l, ok := prov.(provider.Locator); ok && st != provider.NotCreated {
		// Engines with several places say which (LXD: remote and member).
		if where, err := l.Location(ctx, rec.Container); err == nil {
			s.Location = where
		}
	}
	return s, nil
}

// tooHigh reports whether the machine's login user has ids an
// unprivileged machine cannot have (den gave a privileged machine the
// project owner's uid, which may be beyond 65535).
func tooHigh(rec *Record) bool {
	return rec.UID >= provider.IDRangeSize || rec.GID >= provider.IDRangeSize
}

// UpOptions tune Up, Reload and a restore's start.
type UpOptions struct {
	Provision ProvisionMode
	With      []string // --provision-with: run just these provisioners
	Parallel  bool     // bring several machines up at once
}

// upLocked creates the machine when missing, starts it when stopped and
// waits until its sshd answers (a running one too), then provisions it as
// opts say. A machine whose first provisioning never finished (an up
// interrupted, a provisioner that failed) gets the provisioners that did
// not complete, in order. The caller holds the machine's lock.
func (e *Env) upLocked(ctx context.Context, m *Machine, opts UpOptions) error {
	if m.Orphan {
		return orphaned(m)
	}
	rec, prov, state, err := e.current(ctx, m)
	if err != nil {
		return err
	}
	var bridges []string
	if m.Config.Network != config.NetworkProject {
		bridges = append(bridges, m.Config.Bridge)
	}
	if err := prov.CheckHost(ctx, bridges); err != nil {
		return err
	}
	if state != provider.NotCreated {
		if err := e.noteAutostart(ctx, m, rec); err != nil {
			return err
		}
		e.noteStore(ctx, m, rec, prov)
	}
	name := m.Name()
	var client *ssh.Client
	switch state {
	case provider.Running:
		e.UI.Say(name, "Machine is already running.")
		if err := e.startForwards(ctx, m, rec, prov, true); err != nil {
			return err
		}
		if err := e.keepNetwork(ctx, m, rec, prov); err != nil {
			return err
		}
		if err := e.applyLive(ctx, m, rec, prov); err != nil {
			return err
		}
		e.checkLimits(ctx, m, rec, prov)
		if client, err = e.waitSSH(ctx, m, rec, prov); err != nil {
			// It was on its way down (a halt whose den was killed):
			// start it again.
			if errdefs.KindOf(err) != errdefs.NotRunning {
				return err
			}
			e.UI.Say(name, "The machine stopped meanwhile (a shutdown was under way); starting it again...")
			if client, err = e.start(ctx, m, rec, prov); err != nil {
				return err
			}
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
	if state == provider.NotCreated {
		e.updatePeers(ctx, m)
	}
	return e.provisionUp(ctx, m, rec, client, opts, state == provider.NotCreated)
}

// provisionUp runs what an up provisions, by Vagrant's rules: every
// provisioner on a machine's first up (and until that first provisioning
// has finished), the run = "always" ones on later ups, all with
// --provision, the named ones with --provision-with, none with
// --no-provision.
func (e *Env) provisionUp(ctx context.Context, m *Machine, rec *Record, client *ssh.Client, opts UpOptions, created bool) error {
	name := m.Name()
	first := rec.FirstUpPending
	provs := m.Config.Provisions
	done := func() error {
		if !first {
			return nil
		}
		rec.FirstUpPending = false
		return writeJSON(m.State.Record(), rec, 0o600)
	}
	if len(provs) == 0 && len(opts.With) == 0 {
		return done()
	}
	popts := ProvisionOptions{Only: opts.With}
	switch {
	case len(opts.With) > 0:
		popts.Force = true
		return e.provision(ctx, m, client, popts)
	case opts.Provision == ProvisionNever:
		if first {
			e.UI.Say(name, "Machine not provisioned (--no-provision): the next 'den up' provisions it, or run 'den provision'.")
		}
		return nil
	case opts.Provision == ProvisionForce:
		popts.Force = true
	case first:
		if !created {
			e.UI.Say(name, "The machine's first provisioning did not finish; running the provisioners that did not complete...")
		}
	default:
		popts.AlwaysOnly = true
		if hasOnce(provs) {
			e.UI.Say(name, "Machine already provisioned. Run 'den provision' or use '--provision' to force provisioning.")
		}
	}
	if err := e.provision(ctx, m, client, popts); err != nil {
		return err
	}
	return done()
}

func hasOnce(provs []config.Provision) bool {
	for _, p := range provs {
		if p.Run == config.RunOnce {
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
	if reserved == nil {
		// No record, yet the container this machine would get exists:
		// den made it for this folder before the folder's .den/ was
		// removed (or the folder replaced). den never adopts it (its keys
		// went with .den/) nor deletes it unasked.
		if st, err := prov.State(ctx, m.Container()); err == nil && st != provider.NotCreated {
			id := GlobalID(m.Container())
			return nil, errdefs.Machinef(errdefs.Exists, name, "machine %q: a machine den made for this folder earlier still exists (container %s, %s, global-status id %s), but .den/ here no longer records it (the folder was removed or replaced): 'den destroy -f %s' removes it, then 'den up' makes it anew", name, m.Container(), st, id, id)
		}
	}
	e.UI.Say(name, "Creating machine from box %s (%s)...", b.Name, b.Version)
	rec := &Record{
		Container:        m.Container(),
		Provider:         providerField(e, prov),
		Project:          m.Project.Dir,
		Machine:          name,
		Bridge:           m.Config.Bridge,
		Box:              b.Name,
		BoxVersion:       b.Version,
		User:             b.Meta.LoginUser(),
		Created:          time.Now().UTC(),
		FirstUpPending:   true,
		SSHD:             sshdDropInSum(),
		AutostartSetting: autostartOf(m),
	}
	prefer := ""
	if reserved != nil {
		prefer = reserved.Address // kept when it is on the network den.hcl names
	}
	if err := e.assignAddress(ctx, m, rec, prov, prefer); err != nil {
		return nil, err
	}
	if m.Config.Privileged {
		e.UI.Warn(name, "privileged = true (%s): root in this machine is root on the host", config.Location(m.Config.PrivilegedRange))
	} else if err := e.assignIDs(ctx, rec, prov); err != nil {
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
	// A privileged machine's login user takes the project owner's ids, so
	// its files in /den are the owner's; an unprivileged machine keeps the
	// box's ids and maps the owner to them on the host (see provider.Spec).
	uid, gid := 0, 0
	if rec.IDBase == 0 {
		uid, gid = ownerOf(m.Project.Dir)
	}
	spec, err := e.spec(m, b, rec)
	if err != nil {
		return nil, err
	}
	spec.Warn = func(format string, args ...any) { e.UI.Warn(name, format, args...) }
	var login Login
	spec.Prepare = func(ctx context.Context, gfs provider.GuestFS) (err error) {
		login, err = prepareGuest(gfs, guestSetup{
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
		return err
	}
	if err := prov.Create(ctx, spec); err != nil {
		return nil, err
	}
	rec.UID, rec.GID, rec.Home, rec.Shell = login.UID, login.GID, login.Home, login.Shell
	if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
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
	if onNetwork(rec, c) {
		return nil
	}
	prov, err := e.machineProvider(m, rec)
	if err != nil {
		return err
	}
	if _, ok := prov.(provider.Addresser); !ok {
		return nil
	}
	if rec != nil {
		// A machine that exists moves to den.hcl's network at its own
		// start, keeping its record.
		if st, err := prov.State(ctx, rec.Container); err != nil || st != provider.NotCreated {
			return err
		}
	}
	rec = &Record{Container: m.Container(), Provider: providerField(e, prov), Project: m.Project.Dir, Machine: c.Name, Bridge: c.Bridge, Box: c.Box, Created: time.Now().UTC()}
	if err := e.assignAddress(ctx, m, rec, prov, ""); err != nil {
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

// assignAddress puts rec on the network den.hcl gives m — the host
// bridge it names, or the project's own network (made when missing) —
// with a free address from a provider that allocates them: m's fixed
// address (an error when someone has it), else prefer when it is still
// free, else another. It records the address in the index at once and
// removes the project networks no machine is on any more. Allocation is
// one at a time on the whole host, across den homes.
func (e *Env) assignAddress(ctx context.Context, m *Machine, rec *Record, prov provider.Provider, prefer string) error {
	alloc, ok := prov.(provider.Addresser)
	if !ok {
		rec.Bridge, rec.Network = m.Config.Bridge, ""
		return nil
	}
	return e.allocating(ctx, "den address allocation", func(ix *Index) error {
		bridge, network := m.Config.Bridge, ""
		fixed := m.Config.PrivateIP
		if m.Config.Network == config.NetworkProject {
			pn, err := e.projectNetwork(ctx, m, rec, prov, ix)
			if err != nil {
				return err
			}
			bridge, network = pn.Bridge, config.NetworkProject
		}
		pfx, _ := netip.ParsePrefix(prefer)
		taken := ix.takenAddresses(rec.Container)
		if fixed.IsValid() {
			pfx = netip.PrefixFrom(fixed, 24)
		} else {
			taken = append(taken, fixedAddresses(m)...)
		}
		spec := &provider.Spec{Name: rec.Container, Network: provider.Network{Bridge: bridge}, Engine: m.Config.Engine()}
		n, err := alloc.AllocateAddress(ctx, spec, pfx, taken)
		if err != nil {
			return err
		}
		if fixed.IsValid() && n.Address.Addr() != fixed {
			return errdefs.Machinef(errdefs.Exists, m.Name(), "machine %q's address %s (%s) is taken: %s", m.Name(), fixed, config.Location(m.Config.PrivateRange), addressHolder(ix, fixed, rec.Container))
		}
		rec.Bridge, rec.Network = bridge, network
		rec.Address, rec.Gateway, rec.MAC = n.Address.String(), n.Gateway.String(), n.MAC
		if rec.Bridge == "" {
			rec.Bridge = n.Bridge // the provider chose (LXD: the profiles' network)
		}
		if err := ix.Put(rec.indexEntry()); err != nil {
			return err
		}
		// Tidying: a network that could not be removed now is, later.
		if err := e.sweepNetworks(ctx, prov, ix); err != nil {
			e.UI.Warn(m.Name(), "%v", err)
		}
		return nil
	})
}

// assignIDs gives rec an id range of its own from a provider that runs
// machines unprivileged, keeping the one it has while no one else took it,
// and records it in the index at once. Allocation is one at a time on the
// whole host, across den homes, under the address allocation's lock.
func (e *Env) assignIDs(ctx context.Context, rec *Record, prov provider.Provider) error {
	iso, ok := prov.(provider.Isolator)
	if !ok {
		return nil
	}
	return e.allocating(ctx, "den id range allocation", func(ix *Index) error {
		base, err := iso.AllocateIDs(ctx, rec.Container, rec.IDBase, ix.takenIDs(rec.Container))
		if err != nil {
			return err
		}
		rec.IDBase = base
		return ix.Put(rec.indexEntry())
	})
}

// writeKnownHosts writes the machine's known_hosts for OpenSSH: its host
// key under its ssh-config alias, the alias of den before 2026-12
// (den-MACHINE, which ssh configs written then still name) and its address.
func writeKnownHosts(m *Machine, rec *Record, hostPub []byte) error {
	key, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		return err
	}
	line := sshx.KnownHostsLine(SSHAlias(m), rec.IP(), key, "den-"+m.Name())
	return fsutil.WriteFileAtomic(m.State.KnownHosts(), []byte(line), 0o644)
}

// SSHAlias is the Host name of the machine in ssh-config output:
// PROJECT-MACHINE, so the machines of two projects (both "default") do not
// shadow each other in ~/.ssh/config.
func SSHAlias(m *Machine) string { return projectSlug(m.Project.Dir) + "-" + m.Name() }

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
		IDBase:     rec.IDBase,
		GuestUID:   uint32(rec.UID),
		GuestGID:   uint32(rec.GID),
		Nesting:    m.Config.Nesting,
		Privileged: m.Config.Privileged,
		Storage:    m.Config.Storage,
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
	// Keep the address unless someone else took it while the machine was
	// off, or den.hcl moved the machine to another network.
	old, oldNet, oldGateway := rec.Address, rec.Network+rec.Bridge, rec.Gateway
	if err := e.assignAddress(ctx, m, rec, prov, old); err != nil {
		return nil, err
	}
	moved := rec.Address != old || rec.Network+rec.Bridge != oldNet
	if moved {
		if rec.Network+rec.Bridge != oldNet || m.Config.PrivateIP.IsValid() {
			e.UI.Say(name, "The machine moves to %s, at %s.", networkName(rec), rec.Address)
		} else {
			e.UI.Warn(name, "address %s was taken while the machine was stopped; using %s", old, rec.Address)
		}
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return nil, err
		}
		if pub, err := fsutil.ReadRegular(m.State.HostKey(), maxRecord); err == nil {
			writeKnownHosts(m, rec, pub)
		}
	}
	convert, err := e.isolate(ctx, m, rec, prov)
	if err != nil {
		return nil, err
	}
	spec, err := e.spec(m, b, rec)
	if err != nil {
		return nil, err
	}
	var prepares []func(ctx context.Context, gfs provider.GuestFS) error
	// An unprivileged machine maps its synced folders to the login user,
	// whose ids a machine made before den recorded them must tell.
	if spec.IDBase != 0 && (rec.UID == 0 || convert) {
		prepares = append(prepares, func(ctx context.Context, gfs provider.GuestFS) error {
			uid, gid, err := loginIDs(gfs, rec.User)
			if err != nil {
				return err
			}
			rec.UID, rec.GID = uid, gid
			if tooHigh(rec) {
				if !convert {
					return errdefs.Machinef(errdefs.Invalid, name, "machine %q: its login user %s has ids %d:%d, beyond the %d of an unprivileged machine", name, rec.User, uid, gid, provider.IDRangeSize)
				}
				e.UI.Warn(name, "the machine stays privileged: den gave its login user the project owner's uid %d when it was made, beyond an unprivileged machine's ids; destroy and up to make it unprivileged", uid)
				spec.IDBase = 0
				return nil
			}
			spec.GuestUID, spec.GuestGID = uint32(uid), uint32(gid)
			return nil
		})
	}
	// A machine on another network has another gateway, which is its DNS
	// server too.
	if rec.Gateway != oldGateway && rec.Gateway != "" {
		prepares = append(prepares, func(ctx context.Context, gfs provider.GuestFS) error {
			return writeResolv(gfs, rec.Gateway)
		})
	}
	// The hostname, the project's machines or their addresses changed since
	// the last start: rewrite the guest's /etc/hostname and /etc/hosts
	// before it boots; and den's sshd drop-in when it changed since.
	peers := e.peers(m)
	hosts := hostsFile(m.Config.Hostname, peers)
	newNames, newSSHD := hosts != rec.Hosts, rec.SSHD != sshdDropInSum()
	if newNames || newSSHD {
		prepares = append(prepares, func(ctx context.Context, gfs provider.GuestFS) error {
			if newSSHD {
				if err := writeSSHDDropIn(gfs); err != nil {
					return err
				}
			}
			return writeNames(gfs, m.Config.Hostname, peers)
		})
		rec.Hosts, rec.SSHD = hosts, sshdDropInSum()
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return nil, err
		}
	}
	if len(prepares) > 0 {
		spec.Prepare = func(ctx context.Context, gfs provider.GuestFS) error {
			for _, f := range prepares {
				if err := f(ctx, gfs); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if spec.IDBase != 0 {
		e.warnRootOwned(m)
	}
	if err := e.startForwards(ctx, m, rec, prov, false); err != nil {
		return nil, err
	}
	if convert {
		e.UI.Say(name, "Converting the machine, made privileged, to run unprivileged (host ids %d-%d)...", rec.IDBase, uint64(rec.IDBase)+provider.IDRangeSize-1)
	}
	e.UI.Say(name, "Starting machine...")
	if err := prov.Start(ctx, spec); err != nil {
		e.stopForwards(m)
		return nil, err
	}
	storeLock.Unlock()
	if spec.IDBase != rec.IDBase {
		// Kept privileged (its login user's ids): give the range back.
		rec.IDBase = spec.IDBase
		if err := e.putIndex(ctx, rec); err != nil {
			return nil, err
		}
	}
	applied := appliedOf(spec)
	applied.Network = rec.Network
	rec.Applied = &applied
	if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
		return nil, err
	}
	e.checkLimits(ctx, m, rec, prov)
	e.UI.Say(name, "Waiting for machine to boot...")
	e.UI.Detail(name, "SSH address: %s:22", rec.IP())
	e.UI.Detail(name, "SSH username: %s", rec.User)
	client, err := e.waitSSH(ctx, m, rec, prov)
	if err != nil {
		return nil, err
	}
	e.UI.Say(name, "Machine booted and ready!")
	if moved {
		e.updatePeers(ctx, m)
	}
	return client, nil
}

// isolate decides, before a start, which id range the machine runs with:
// an unprivileged machine keeps its range while no one else took it; a
// privileged one whose den.hcl does not say privileged = true (one made
// before den ran machines unprivileged) gets a range, and convert is set
// (the provider converts its layer as it starts). The record is written
// at once, so an interrupted conversion is finished by the next start.
func (e *Env) isolate(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) (convert bool, err error) {
	name := m.Name()
	_, canIsolate := prov.(provider.Isolator)
	old := rec.IDBase
	switch {
	case old != 0:
		if m.Config.Privileged {
			e.UI.Warn(name, "privileged = true (%s) applies to a machine when it is made: this one stays unprivileged ('den destroy' and 'den up' make it privileged)", config.Location(m.Config.PrivilegedRange))
		}
	case canIsolate && !m.Config.Privileged && !tooHigh(rec):
		convert = true
	default:
		return false, nil
	}
	if err := e.assignIDs(ctx, rec, prov); err != nil {
		return false, err
	}
	if old != 0 && rec.IDBase != old {
		e.UI.Warn(name, "id range %d was taken while the machine was stopped; it runs with %d", old, rec.IDBase)
	}
	if rec.IDBase != old {
		if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
			return false, err
		}
	}
	return convert, nil
}

// putIndex writes rec's index entry.
func (e *Env) putIndex(ctx context.Context, rec *Record) error {
	ix, err := OpenIndex(ctx, e.Home)
	if err != nil {
		return err
	}
	defer ix.Close()
	return ix.Put(rec.indexEntry())
}

// warnRootOwned warns about synced folders root owns: an unprivileged
// machine shows their files as nobody's, and its login user cannot write
// them.
func (e *Env) warnRootOwned(m *Machine) {
	for _, sf := range m.Config.Synced {
		if uid, gid := ownerOf(sf.Host); uid == 0 || gid == 0 {
			e.UI.Warn(m.Name(), "%s is owned by root: the machine runs unprivileged, so its files there are nobody's and %s is read-only for its login user; chown it to your user (or set privileged = true)", sf.Host, sf.Guest)
		}
	}
}

// checkLimits reads the memory limit and CPUs in force back from the
// running machine and warns when they differ from den.hcl's, and passes
// on the provider's notes about it (lxc: whether free in the guest shows
// the machine's limits).
func (e *Env) checkLimits(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) {
	info, err := prov.Inspect(ctx, rec.Container)
	if err != nil {
		return
	}
	name := m.Name()
	for _, n := range info.Notes {
		e.UI.Warn(name, "%s", n)
	}
	if m.Config.Memory == 0 && m.Config.CPUs == 0 {
		return
	}
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
	t, err := pinnedTarget(m, rec)
	if err != nil {
		return t, err
	}
	if d, ok := prov.(provider.Dialer); ok {
		t.Dial = func(ctx context.Context) (net.Conn, error) { return d.DialGuest(ctx, rec.Container, 22) }
	}
	return t, nil
}

// pinnedTarget is the machine's sshd at its address, with den's key for it
// and its pinned host key from .den/.
func pinnedTarget(m *Machine, rec *Record) (sshx.Target, error) {
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
	// A machine that stops meanwhile (its guest powered off, or a halt
	// whose den was killed is finishing) will not answer: say so at once.
	stopped := make(chan struct{})
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				if st, err := prov.State(wctx, rec.Container); err == nil && st == provider.Stopped {
					close(stopped)
					cancel()
					return
				}
			}
		}
	}()
	c, err := sshx.WaitReady(wctx, t, 10*time.Millisecond)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-stopped:
			return nil, errdefs.Machinef(errdefs.NotRunning, m.Name(), "machine %q stopped while den waited for its sshd (see %s)", m.Name(), prov.Hints(rec.Container).Log)
		default:
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
		// An up killed before it wrote the record may have left the
		// address it took in the index: give it back.
		ix, err := OpenIndex(ctx, e.Home)
		if err != nil {
			return err
		}
		err = ix.Remove(container)
		ix.Close()
		if err != nil {
			return err
		}
		return e.dropUnusedNetworks(ctx, prov)
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
	// The project's network goes with its last machine.
	if err := e.dropUnusedNetworks(ctx, prov); err != nil {
		e.UI.Warn(name, "%v", err)
	}
	// .den/<machine> holds only den's own files (keys, record, lock).
	if err := removeStateDir(m.State); err != nil {
		return err
	}
	e.updatePeers(ctx, m)
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
			return errdefs.Newf(errdefs.Tampered, "%s holds %q, which den did not write; remove that folder by hand", st.Path(), en.Name())
		}
	}
	return fsutil.RemoveTree(st.Path())
}

// Inspect reads the machine's state and limits back from the provider.
func (e *Env) Inspect(ctx context.Context, m *Machine) (provider.Info, error) {
	rec, prov, err := e.located(m)
	if err != nil {
		return provider.Info{State: provider.Unknown}, err
	}
	if rec == nil {
		return provider.Info{State: provider.NotCreated}, nil
	}
	return prov.Inspect(ctx, rec.Container) // its State is the provider's
}
