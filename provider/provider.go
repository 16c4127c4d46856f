// Package provider is the interface between den's domain (internal/machine)
// and an engine that runs machines: LXC on this host (provider/lxc), LXD
// on a local or remote server or cluster (provider/lxd), an in-memory fake
// in tests (provider/fake). Everything
// engine-specific — host checks, addresses on its network, logs, the
// commands a person would use to look inside — stays behind it; one
// conformance suite (provider/providertest) checks every implementation.
package provider

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/den-dev/den/internal/errdefs"
)

// State is a machine's lifecycle state.
type State int

// The states a machine can be in.
const (
	NotCreated State = iota
	Stopped
	Running
	Frozen
	Unknown
)

func (s State) String() string {
	switch s {
	case NotCreated:
		return "not created"
	case Stopped:
		return "stopped"
	case Running:
		return "running"
	case Frozen:
		return "frozen"
	}
	return "unknown"
}

// ErrNotSupported is returned by optional abilities a provider lacks.
var ErrNotSupported = errdefs.With(errdefs.Unsupported, errors.New("not supported by this provider"))

// Mount is a host folder (or file) made visible in the guest. A mount
// whose Target lies inside an earlier mount's Target is laid over that one
// (den's guards: den.hcl read-only over itself, .den/ hidden); in an
// unprivileged machine such a mount must be ReadOnly, and guest root can
// neither unmount nor remount it.
type Mount struct {
	Source   string // absolute host path
	Target   string // absolute guest path
	ReadOnly bool
	File     bool // Source is a file, not a folder
}

// Network attaches the machine's eth0.
type Network struct {
	Bridge  string
	Address netip.Prefix // the machine's address and the bridge's prefix length
	Gateway netip.Addr
	MAC     string
}

// Forward is a host port the engine itself forwards to a machine's port
// (see PortForwarder).
type Forward struct {
	Protocol  string // "tcp" or "udp"
	HostIP    string
	HostPort  int
	GuestPort int
}

// Spec describes a machine to create or start. Start re-applies it, so
// changed limits and mounts take effect at the next start.
type Spec struct {
	Name   string // provider-level name, unique on the host
	Rootfs string // the box's unpacked rootfs, used read-only
	// Box and BoxVersion name the box Rootfs belongs to, for engines that
	// turn a box into an image of their own once per version (LXD).
	Box, BoxVersion string
	Hostname        string
	Memory          int64 // bytes; 0 = no limit
	CPUs            int   // 0 = no limit
	Mounts          []Mount
	Network         Network
	// BoxConfig holds "key = value" lines from the box; the provider applies
	// only keys it allows and reports the rest through Warn when creating.
	BoxConfig []string
	// Warn reports something the user should know; may be nil.
	Warn func(format string, args ...any)
	// RawConfig holds provider-specific keys from den.hcl, applied last.
	RawConfig [][2]string
	// Engine holds the settings of den.hcl's block for this provider as
	// internal/config decoded them (*config.LXD for lxd), or nil. Their
	// source ranges let the provider name the den.hcl line at fault.
	Engine any
	// Forwards are the machine's forwarded ports, for a provider that
	// forwards them itself (PortForwarder); others ignore them.
	Forwards []Forward
	// Prepare writes into the machine's own filesystem before it boots:
	// Create runs it once, Start runs it when set. Every path it names is
	// relative to the machine's root and never leaves it. Start runs it
	// before it reads IDBase, GuestUID and GuestGID, so Prepare may set
	// them from what it finds in the machine.
	Prepare func(ctx context.Context, fs GuestFS) error

	// IDBase, when not 0, runs the machine unprivileged (see Isolator):
	// in a user namespace whose ids 0 to IDRangeSize-1 are the host's
	// IDBase and up, a range no other machine uses. 0 runs it privileged
	// (guest root is host root), as machines were before den had
	// Isolator; a provider without Isolator ignores it.
	IDBase uint32
	// GuestUID and GuestGID are the ids of the machine's login user: in an
	// unprivileged machine each synced folder shows its owner's files as
	// that user's, and the user's writes land there as the owner's.
	GuestUID, GuestGID uint32
	// Nesting lets the machine run containers of its own (LXC, Docker,
	// Podman) inside its user namespace.
	Nesting bool
	// Storage is the store Create keeps the machine's filesystem in, one
	// StoreChooser.Stores names; "" is the provider's default. Start
	// ignores it: a machine keeps the store it was made with. A provider
	// without StoreChooser ignores it.
	Storage string
	// Privileged is den.hcl's privileged = true. A provider with Isolator
	// has it as IDBase 0; one without runs the machine privileged by its
	// engine's own means (LXD: security.privileged), and unprivileged in
	// ids of its own otherwise (LXD: security.idmap.isolated).
	Privileged bool
}

// IDRangeSize is the number of ids of an unprivileged machine: uids and
// gids 0 to 65535 in the guest.
const IDRangeSize = 65536

// Info is what a provider reads back from a machine.
type Info struct {
	State       State
	MemoryLimit int64 // bytes read from the running machine's cgroup; 0 = none
	CPUs        string
	LogFile     string // where the provider's own log for this machine lives
	// Notes are what a person should know about the running machine, each
	// a sentence with its fix (lxc: free in the guest shows the host's
	// memory because lxcfs does not run). They never stop den.
	Notes []string
}

// Hints tell a person how to look at a machine with the engine's own
// tools, for messages such as "the machine did not answer".
type Hints struct {
	Shell  string // a command that opens a shell in the machine without ssh
	Remove string // commands that stop and remove the machine when den no longer can
	Log    string // where the engine logs about the machine
}

// Provider runs machines. Every method takes a context and is safe to call
// against a machine in any state; the contracts are in each comment.
type Provider interface {
	// Name is the provider's name in den.hcl and den's index ("lxc").
	Name() string
	// CheckHost reports, as one error listing every problem and its fix
	// (errdefs.HostNotReady), what this host lacks to run machines
	// attached to networks. It changes nothing.
	CheckHost(ctx context.Context, networks []string) error
	// Describe is one line about the engine for 'den host check' and 'den
	// version' ("liblxc 5.0.2, cgroups hybrid").
	Describe() string
	// Hints names the engine's own tools for machine name.
	Hints(name string) Hints
	// Create makes the machine from spec without starting it and runs
	// spec.Prepare once. Create on an existing machine returns an error.
	// A failed Create leaves nothing behind.
	Create(ctx context.Context, spec *Spec) error
	// Start applies spec's limits, mounts and network, then starts the
	// machine. Start on a running machine returns nil.
	Start(ctx context.Context, spec *Spec) error
	// Stop shuts the machine down cleanly within timeout, then kills it
	// (at once when force). Stop on a stopped machine returns nil.
	Stop(ctx context.Context, name string, force bool, timeout time.Duration) error
	// Destroy stops and removes the machine and its own filesystem layer. It
	// never follows a mount or a symlink out of the machine's own folder.
	// Destroy of an absent machine returns nil.
	Destroy(ctx context.Context, name string) error
	// State reports the machine's state cheaply (no guest round trip).
	State(ctx context.Context, name string) (State, error)
	// Inspect reads back the state and the limits in force.
	Inspect(ctx context.Context, name string) (Info, error)
	// Freeze suspends every process of a running machine; Unfreeze resumes.
	Freeze(ctx context.Context, name string) error
	Unfreeze(ctx context.Context, name string) error
}

// HostNoter is the optional ability to say what works on this host, but
// less well than it could, each a sentence with its fix (lxc: lxcfs does
// not run, so a guest's free shows the host's memory). Notes never stop
// den; CheckHost reports what does.
type HostNoter interface {
	HostNotes(ctx context.Context) []string
}

// StorageReporter is the optional ability to say how the machines'
// filesystems are kept on this host: which store new machines get and
// why, and what each other store needs, one line each (den host check).
type StorageReporter interface {
	StorageInfo() []string
}

// StoreChooser is the optional ability to keep a new machine's
// filesystem in the store its Spec.Storage names (den.hcl's storage =
// "..."), when the engine has several ways (lxc: an overlay over the box,
// or a btrfs snapshot of it).
type StoreChooser interface {
	// Stores lists the stores Spec.Storage may name, each with "" when
	// this host has it, else why not, a clause ("DEN_HOME must be on a
	// btrfs filesystem for it, and /var/lib/den/machines is not"). It
	// changes nothing. Create refuses a store this host does not have.
	Stores() map[string]string
	// MachineStore is the store machine name was made with, which it
	// keeps; "" for a machine that does not exist.
	MachineStore(ctx context.Context, name string) (string, error)
}

// Addresser is the optional ability to give a machine a fixed address on
// the engine's network before it boots (LXC, LXD: den sets eth0's address,
// no DHCP wait). A provider without it gets addresses from its engine.
type Addresser interface {
	// AllocateAddress picks a free address for the machine spec names
	// (spec.Name) on spec.Network.Bridge (a provider may pick the network
	// itself when it is "", from spec.Engine): not one in taken (the
	// addresses den gave its machines, in every den home of the host),
	// nor one the engine sees in use; prefer is kept when it is still
	// free. Only spec's Name, Network.Bridge and Engine are set. The
	// caller serialises allocations host-wide.
	AllocateAddress(ctx context.Context, spec *Spec, prefer netip.Prefix, taken []netip.Addr) (Network, error)
}

// ProjectNetwork is a network of one project's own (den.hcl's network =
// "project"): the project's machines and the host on one subnet.
type ProjectNetwork struct {
	// ID names the network on the host: den gives each project one (16
	// hex digits of its folder's hash).
	ID string
	// Subnet is the network's IPv4 subnet; the host has its first address,
	// the machines' gateway and DNS server.
	Subnet netip.Prefix
	// Bridge is what the project's machines attach to (Network.Bridge,
	// and AllocateAddress's network).
	Bridge string
}

// Networker is the optional ability to give a project a network of its
// own: a bridge only the project's machines join, with NAT to the outside
// through the host and a DNS resolver at the host's address on it,
// reachable from the host and from no other network's machines (other
// projects', the engine's default bridge). The caller serialises calls
// host-wide, as it does address allocations.
type Networker interface {
	// EnsureNetwork makes network id, or finds it made, and returns it. A
	// new network gets want when want is valid and free, else (unless
	// fixed) a free subnet; free means overlapping none of taken (the
	// subnets of den's machines in every den home, but the project's own)
	// nor a network the host has. With fixed, a want that is not free is
	// an errdefs.Exists error. A network that exists keeps its subnet,
	// unless fixed asks for another while no machine is attached to it.
	// A failed EnsureNetwork of a new network leaves nothing of it.
	EnsureNetwork(ctx context.Context, id string, want netip.Prefix, fixed bool, taken []netip.Prefix) (ProjectNetwork, error)
	// RemoveNetwork removes network id and everything the engine made for
	// it. An absent network is not an error; one with machines attached
	// is (errdefs.Exists), and stays.
	RemoveNetwork(ctx context.Context, id string) error
	// Networks lists the project networks the engine has, also those a
	// den killed half way through EnsureNetwork left.
	Networks(ctx context.Context) ([]ProjectNetwork, error)
}

// Isolator is the optional ability to run machines unprivileged, each in
// a user namespace with an id range of its own (as LXD's
// security.idmap.isolated), so that a guest's root that escapes is an
// unprivileged host user owning nothing of another machine's. A provider
// without it runs machines as its engine does, and den records no range.
type Isolator interface {
	// AllocateIDs returns the first host id of a free range of
	// IDRangeSize ids for machine name: prefer when it is still free,
	// never one overlapping a range that starts in taken (the ranges den
	// gave its other machines, in every den home of the host) nor one the
	// engine sees in use. The caller serialises allocations host-wide.
	AllocateIDs(ctx context.Context, name string, prefer uint32, taken []uint32) (uint32, error)
}

// Limiter is the optional ability to change a running machine's memory
// and CPU limits in place (the next Start applies the spec's anyway).
type Limiter interface {
	// SetLimits sets the memory limit (bytes; 0 = none) and the number of
	// CPUs (0 = all) of the running machine name.
	SetLimits(ctx context.Context, name string, memory int64, cpus int) error
}

// Execer is the optional ability to run a command in a running machine
// without its sshd (LXC attach, LXD's exec API): den exec.
type Execer interface {
	// Exec runs cmd in the running machine name and returns its exit
	// status (128+N when signal N ended it). The error is for a command
	// that could not be run, or ctx's end (which kills it).
	Exec(ctx context.Context, name string, cmd ExecCommand) (int, error)
}

// ExecCommand is a command for Execer.
type ExecCommand struct {
	Argv     []string // the program and its arguments
	Env      []string // its whole environment, NAME=value
	Dir      string   // its working folder in the machine
	UID, GID int      // who it runs as, in the machine
	Stdin    *os.File
	Stdout   *os.File
	Stderr   *os.File
	// TTY gives the command a terminal of its own (stdin is one): raw
	// mode, window size, a controlling terminal.
	TTY bool
}

// Dialer is the optional ability to reach a port of a running machine
// other than through its address (a remote engine's exec stream, a test
// fake). Without it den dials the machine's address. With it den never
// does: OpenSSH reaches the machine through 'ProxyCommand den', and den's
// port forwarder through the machine's ssh connection.
type Dialer interface {
	DialGuest(ctx context.Context, name string, port int) (net.Conn, error)
}

// Locator is the optional ability of a provider whose machines live in
// several places to say where one runs, cheaply (den status shows it).
type Locator interface {
	// Location is where machine name runs: "ci", "ci/node2" (an LXD remote
	// and cluster member); "" for this host or a machine that is not there.
	Location(ctx context.Context, name string) (string, error)
}

// PortForwarder is the optional ability to forward a machine's host ports
// inside the engine (LXD's proxy devices on a server on this host): Start
// applies spec.Forwards, and the forwards end with the machine.
type PortForwarder interface {
	// ForwardsPorts reports whether the engine forwards the ports of the
	// machine spec describes (only its Name and Engine are read); when it
	// does not, den runs its own forwarder.
	ForwardsPorts(ctx context.Context, spec *Spec) (bool, error)
}

// WaitFor polls cond every interval until it returns true or ctx ends.
func WaitFor(ctx context.Context, interval time.Duration, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	return nil
}
