// Package host checks the host prerequisites den needs (root, LXC, cgroups,
// the bridge, debootstrap) and reports each failure as one line naming the fix.
package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Cgroup is the host's cgroup layout.
type Cgroup int

// The cgroup layouts den recognises.
const (
	CgroupUnknown Cgroup = iota
	CgroupV1             // v1 controllers at /sys/fs/cgroup/<ctrl> (legacy or hybrid)
	CgroupV2             // unified hierarchy at /sys/fs/cgroup
)

func (c Cgroup) String() string {
	switch c {
	case CgroupV1:
		if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
			return "hybrid (v1 controllers + v2)"
		}
		return "v1"
	case CgroupV2:
		return "v2"
	}
	return "unknown"
}

// CgroupLayout decides the layout the way LXC does: /sys/fs/cgroup is a tmpfs
// on v1 and hybrid hosts, a cgroup2 filesystem on unified ones.
func CgroupLayout() Cgroup {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return CgroupUnknown
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		return CgroupV2
	case unix.TMPFS_MAGIC:
		return CgroupV1
	}
	return CgroupUnknown
}

// Need says which prerequisites a command needs.
type Need struct {
	LXC         bool   // root, liblxc, cgroups with a memory controller
	Bridge      string // the bridge machines attach to ("" = none)
	Debootstrap bool   // box build
}

// Check runs the checks for n and returns one error listing every failure,
// one line each, or nil.
func Check(n Need) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if n.LXC || n.Debootstrap {
		if os.Geteuid() != 0 {
			add("den needs root to manage system containers: run it with sudo")
		}
	}
	if n.LXC {
		if _, err := os.Stat("/usr/share/lxc/config/common.conf"); err != nil {
			add("LXC is not installed (no /usr/share/lxc/config/common.conf): apt-get install lxc")
		}
		switch CgroupLayout() {
		case CgroupV1:
			if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
				add("cgroup v1 memory controller is not mounted at /sys/fs/cgroup/memory: enable it (cgroup_enable=memory) or boot with the unified hierarchy")
			}
		case CgroupV2:
			b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
			if !strings.Contains(string(b), "memory") {
				add("cgroup v2 has no memory controller in /sys/fs/cgroup/cgroup.controllers: enable it on the kernel command line")
			}
		default:
			add("no cgroup filesystem recognised at /sys/fs/cgroup: mount cgroups (v1, v2 or hybrid) before using den")
		}
	}
	if n.Bridge != "" {
		if err := checkBridge(n.Bridge); err != nil {
			add("%v", err)
		}
	}
	if n.Debootstrap {
		if _, err := exec.LookPath("debootstrap"); err != nil {
			add("debootstrap is not installed (needed to build boxes): apt-get install debootstrap")
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &Error{Problems: problems}
}

// Error lists unmet prerequisites.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "host is not ready:\n  - " + strings.Join(e.Problems, "\n  - ") + "\n(scripts/host-setup.sh in den's source sets a Debian host up)"
}

// ErrNoBridge reports a missing or unusable bridge.
var ErrNoBridge = errors.New("bridge not ready")

func checkBridge(name string) error {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("bridge %q does not exist: start it with '/usr/libexec/lxc/lxc-net start' (or 'systemctl start lxc-net'), or set bridge = \"...\" in den.hcl: %w", name, ErrNoBridge)
	}
	if ifc.Flags&net.FlagUp == 0 {
		return fmt.Errorf("bridge %q is down: 'ip link set %s up': %w", name, name, ErrNoBridge)
	}
	if _, err := BridgePrefix(name); err != nil {
		return err
	}
	return nil
}

// BridgePrefix returns the bridge's first IPv4 address with its prefix
// (10.0.3.1/24): the gateway and subnet of den's machines on it.
func BridgePrefix(name string) (*net.IPNet, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("bridge %q: %w", name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil, fmt.Errorf("bridge %q addresses: %w", name, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn, nil
		}
	}
	return nil, fmt.Errorf("bridge %q has no IPv4 address: den gives machines addresses in the bridge's subnet (lxc-net sets 10.0.3.1/24): %w", name, ErrNoBridge)
}

// ParseCPUList reads a kernel CPU list such as "0-2,5" (sysfs online
// CPUs, a cpuset) into the CPU numbers it names.
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		for i := a; i <= b; i++ {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}
