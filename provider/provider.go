// Package provider is the interface between den's machine logic and the
// system that runs machines (LXC on this host; LXD/Incus later).
package provider

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"time"
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
var ErrNotSupported = errors.New("not supported by this provider")

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

// Spec describes a machine to create or start. Start re-applies it, so
// changed limits and mounts take effect at the next start.
type Spec struct {
	Name     string // provider-level name, unique on the host
	Rootfs   string // the box's unpacked rootfs, used read-only
	Hostname string
	Memory   int64 // bytes; 0 = no limit
	CPUs     int   // 0 = no limit
	Mounts   []Mount
	Network  Network
	// BoxConfig holds "key = value" lines from the box; the provider applies
	// only keys it allows and reports the rest through Warn when creating.
	BoxConfig []string
	// Warn reports something the user should know; may be nil.
	Warn func(format string, args ...any)
	// RawConfig holds provider-specific keys from den.hcl, applied last.
	RawConfig [][2]string
	// Prepare writes into the machine's own filesystem before it boots:
	// Create runs it once, Start runs it when set. root is the machine's
	// root folder; it refuses paths that leave it.
	Prepare func(ctx context.Context, root *os.Root) error
}

// Info is what a provider reads back from a machine.
type Info struct {
	State       State
	MemoryLimit int64 // bytes read from the running machine's cgroup; 0 = none
	CPUs        string
	LogFile     string // where the provider's own log for this machine lives
}

// Provider runs machines. Every method takes a context and is safe to call
// against a machine in any state; the contracts are in each comment.
type Provider interface {
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
