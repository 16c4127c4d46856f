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

// Mount is a host folder (or file) made visible in the guest.
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
	// relative to the machine's root and never leaves it.
	Prepare func(ctx context.Context, fs GuestFS) error
}

// Info is what a provider reads back from a machine.
type Info struct {
	State       State
	MemoryLimit int64 // bytes read from the running machine's cgroup; 0 = none
	CPUs        string
	LogFile     string // where the provider's own log for this machine lives
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
