// Package host reads facts about this host that several parts of den
// need (the cgroup layout, CPU lists) and reports unmet prerequisites as
// one error, a line per problem, each naming its fix.
package host

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/den-dev/den/internal/errdefs"
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

// Error lists unmet prerequisites.
type Error struct{ Problems []string }

// ErrorKind makes an unready host an errdefs.HostNotReady failure.
func (e *Error) ErrorKind() errdefs.Kind { return errdefs.HostNotReady }

func (e *Error) Error() string {
	return "host is not ready:\n  - " + strings.Join(e.Problems, "\n  - ") + "\n(scripts/host-setup.sh in den's source sets a Debian host up)"
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

// Require returns a host Error naming each command in cmds that is not on
// PATH, with the Debian package that has it (command=package).
func Require(cmds ...string) error {
	var problems []string
	for _, c := range cmds {
		name, pkg, _ := strings.Cut(c, "=")
		if pkg == "" {
			pkg = name
		}
		if _, err := exec.LookPath(name); err != nil {
			problems = append(problems, fmt.Sprintf("%s is not installed: apt-get install %s", name, pkg))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &Error{Problems: problems}
}
