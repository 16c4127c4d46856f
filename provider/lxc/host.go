package lxc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	golxc "github.com/lxc/go-lxc"

	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/provider"
)

// Name is this provider's name in den.hcl and den's index.
const Name = "lxc"

// Name returns "lxc".
func (p *Provider) Name() string { return Name }

// LibraryVersion is the version of the liblxc den is linked with.
func LibraryVersion() string { return golxc.Version() }

// Describe names liblxc's version and the cgroup layout.
func (p *Provider) Describe() string {
	return fmt.Sprintf("liblxc %s, cgroups %s", golxc.Version(), host.CgroupLayout())
}

// CheckHost checks what LXC machines need: root, LXC's common config, a
// cgroup memory controller, and each bridge up with an IPv4 address.
func (p *Provider) CheckHost(ctx context.Context, bridges []string) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if os.Geteuid() != 0 {
		add("den needs root to manage system containers: run it with sudo")
	}
	if _, err := os.Stat("/usr/share/lxc/config/common.conf"); err != nil {
		add("LXC is not installed (no /usr/share/lxc/config/common.conf): apt-get install lxc")
	}
	switch host.CgroupLayout() {
	case host.CgroupV1:
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
			add("cgroup v1 memory controller is not mounted at /sys/fs/cgroup/memory: enable it (cgroup_enable=memory) or boot with the unified hierarchy")
		}
	case host.CgroupV2:
		b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if !strings.Contains(string(b), "memory") {
			add("cgroup v2 has no memory controller in /sys/fs/cgroup/cgroup.controllers: enable it on the kernel command line")
		}
	default:
		add("no cgroup filesystem recognised at /sys/fs/cgroup: mount cgroups (v1, v2 or hybrid) before using den")
	}
	seen := map[string]bool{}
	for _, b := range bridges {
		if b == "" || seen[b] {
			continue
		}
		seen[b] = true
		if err := checkBridge(b); err != nil {
			add("%v", err)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &host.Error{Problems: problems}
}

// HostNotes says what lxcfs gives machines started now: nothing when it is
// not installed, not running or not hooked into LXC, so free and top in a
// guest show the host's memory.
func (p *Provider) HostNotes(ctx context.Context) []string {
	var notes []string
	st, _ := hostLXCFS.state()
	if msg := st.message(); msg != "" {
		notes = append(notes, msg)
	}
	if missing := netToolsMissing(); len(missing) > 0 {
		notes = append(notes, "a project's own network (network = \"project\") needs ip, nft and dnsmasq: "+strings.Join(missing, "; "))
	}
	return notes
}

var _ provider.HostNoter = (*Provider)(nil)

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

// Hints names LXC's own tools for the container name.
func (p *Provider) Hints(name string) provider.Hints {
	return provider.Hints{
		Shell:  fmt.Sprintf("lxc-attach -P %s -n %s", p.Path, name),
		Remove: fmt.Sprintf("lxc-stop -P %s -n %s -k; umount -R %s 2>/dev/null; rmdir %s 2>/dev/null; lxc-destroy -P %s -n %s", p.Path, name, p.mountDir(name), p.mountDir(name), p.Path, name),
		Log:    p.logFile(name),
	}
}
