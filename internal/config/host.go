package config

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/den-dev/den/internal/forward"
	"github.com/den-dev/den/internal/host"
)

// HostFacts is what CheckHost holds a project against: plain data, so a
// test can fix it. HostFactsNow reads the host's part from this host.
type HostFacts struct {
	Memory  int64        // bytes of memory; 0 skips the memory check
	CPUs    int          // online CPUs; 0 skips the cpus check
	Addrs   []netip.Addr // the host's own addresses
	Bridges []string     // network bridges that exist
	// PortHeld reports whether another program holds a host port
	// (proto "tcp" or "udp", ip as host_ip has it) and, when it can tell,
	// who ("den machine "web" of /src/app", "pid 42 (nginx)"). nil skips
	// the check.
	PortHeld func(proto, ip string, port int) (held bool, who string)
	// Boxes are the installed box names and Buildable those den can build;
	// den.hcl's config package does not know the box store, so the caller
	// fills them. With both nil, boxes are not checked.
	Boxes, Buildable []string
	// Stores are the stores provider lxc's new machines may have here
	// (storage = "..."), each with "" when this host has it, else why
	// not, a clause ("DEN_HOME must be on a btrfs filesystem for it, and
	// /var/lib/den/machines is not"). The provider knows; the caller
	// fills it. nil skips the check.
	Stores map[string]string
}

// HostFactsNow reads memory, online CPUs, addresses and bridges from this
// host, and checks ports by binding them for a moment. Boxes and Buildable
// are left for the caller.
func HostFactsNow() (HostFacts, error) {
	var h HostFacts
	var err error
	if h.Memory, err = memTotal(); err != nil {
		return h, err
	}
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return h, fmt.Errorf("read online CPUs: %w", err)
	}
	cpus, err := host.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return h, err
	}
	h.CPUs = len(cpus)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return h, fmt.Errorf("read the host's addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				h.Addrs = append(h.Addrs, ip.Unmap())
			}
		}
	}
	h.Bridges = []string{}
	bridges, _ := filepath.Glob("/sys/class/net/*/bridge")
	for _, b := range bridges {
		h.Bridges = append(h.Bridges, filepath.Base(filepath.Dir(b)))
	}
	h.PortHeld = func(proto, ip string, port int) (bool, string) {
		r := forward.Rule{Protocol: proto, HostIP: ip, HostPort: port, GuestIP: ip, GuestPort: port}
		return errors.Is(forward.CheckFree([]forward.Rule{r}), syscall.EADDRINUSE), ""
	}
	return h, nil
}

// memTotal is MemTotal from /proc/meminfo, in bytes.
func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read the host's memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: MemTotal %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemTotal")
}

// CheckHost holds the project's machines against the host: memory and
// cpus above the host's, a host_ip that is not an address of the host
// (0.0.0.0, ::, and loopback addresses always are), a forwarded host port
// another program holds, a bridge that does not exist, and a box that is
// neither installed nor buildable (unless box_url says where to get it),
// and a storage this host cannot give.
// Problems are returned as a *DiagError located in den.hcl, as Load's are.
// To check some machines only, pass a Project holding just those.
func CheckHost(p *Project, h HostFacts) error {
	var d diags
	for _, m := range p.Machines {
		where := m.DefRange
		// A machine on an LXD server elsewhere has that server's memory
		// and CPUs, and any LXD machine the server's networks (lxd.network
		// names an LXD network, which the server checks).
		onThisHost := m.Provider != ProviderLXD || m.LXD.IsLocal()
		if onThisHost && h.Memory > 0 && m.Memory > h.Memory {
			d.add(m.MemoryRange, "Memory above the host's",
				"memory is %s, more than this host's %s: such a limit limits nothing. Choose a smaller size, or leave memory out for no limit.", formatBytes(m.Memory), formatBytes(h.Memory))
		}
		if onThisHost && h.CPUs > 0 && m.CPUs > h.CPUs {
			d.add(m.CPUsRange, "More CPUs than the host has",
				"cpus is %d, but this host has %d CPUs online. Choose %d or fewer, or leave cpus out to use them all.", m.CPUs, h.CPUs, h.CPUs)
		}
		if h.Bridges != nil && m.Provider != ProviderLXD && m.Network != NetworkProject && !slices.Contains(h.Bridges, m.Bridge) {
			r, how := m.BridgeRange, "set bridge to one that exists"
			if r == (hcl.Range{}) {
				r, how = where, `den's default bridge; start it ('den host check' says how) or set bridge = "..."`
			}
			d.add(r, "No such bridge", "There is no bridge %q on this host (%s); %s.", m.Bridge, list(h.Bridges), how)
		}
		d.checkBox(m, h)
		d.checkStorage(m, h)
		for _, f := range m.Forwards {
			d.checkForward(f, h)
		}
	}
	if len(d.d) == 0 {
		return nil
	}
	sort.SliceStable(d.d, func(i, j int) bool { return subjectByte(d.d[i]) < subjectByte(d.d[j]) })
	return &DiagError{Files: p.Files, Diags: d.d}
}

func (d *diags) checkBox(m *Machine, h HostFacts) {
	if (h.Boxes == nil && h.Buildable == nil) || m.BoxURL != "" || slices.Contains(h.Boxes, m.Box) || slices.Contains(h.Buildable, m.Box) {
		return
	}
	detail := fmt.Sprintf("Box %q is not installed and den cannot build it", m.Box)
	if near := closest(m.Box, append(slices.Clone(h.Boxes), h.Buildable...)); near != "" {
		detail += fmt.Sprintf("; did you mean %q?", near)
	} else {
		detail += "."
	}
	detail += fmt.Sprintf(" Add it with 'den box add %s FILE|URL', or set box_url to where it can be fetched; 'den box list' shows the installed boxes.", m.Box)
	d.add(m.BoxRange, "Unknown box", "%s", detail)
}

func (d *diags) checkStorage(m *Machine, h HostFacts) {
	if h.Stores == nil || m.Storage == "" || m.Provider == ProviderLXD {
		return
	}
	why, ok := h.Stores[m.Storage]
	if ok && why == "" {
		return
	}
	if !ok {
		why = "den has no such store on this host"
	}
	var have []string
	for name, no := range h.Stores {
		if no == "" {
			have = append(have, fmt.Sprintf("%q", name))
		}
	}
	sort.Strings(have)
	d.add(m.StorageRange, "Store not available",
		"storage is %q, which this host cannot give: %s. Choose a store it has (%s), or leave storage out (or \"auto\") for the one DEN_HOME gets.", m.Storage, why, list(have))
}

func (d *diags) checkForward(f Forward, h HostFacts) {
	ip, err := netip.ParseAddr(f.HostIP)
	if err != nil {
		return // Load refused it
	}
	ip = ip.Unmap()
	ipRange := f.HostIPRange
	if ipRange == (hcl.Range{}) {
		ipRange = f.DefRange
	}
	if !ip.IsUnspecified() && !ip.IsLoopback() && h.Addrs != nil && !slices.Contains(h.Addrs, ip) {
		var own []string
		for _, a := range h.Addrs {
			if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
				own = append(own, a.String())
			}
		}
		d.add(ipRange, "Not an address of this host",
			`host_ip %q is not an address of this host (%s); use "127.0.0.1" (the default), "0.0.0.0" for every IPv4 address, "::" for every IPv6 one, or one of the host's.`, f.HostIP, list(own))
		return
	}
	if h.PortHeld == nil {
		return
	}
	if held, who := h.PortHeld(f.Protocol, f.HostIP, f.Host); held {
		r := f.HostRange
		if r == (hcl.Range{}) {
			r = f.DefRange
		}
		if who == "" {
			who = "another program"
		}
		d.add(r, "Host port in use",
			"Host port %d/%s on %s is in use by %s; stop it, or choose another host port.", f.Host, f.Protocol, f.HostIP, who)
	}
}

// diags collects CheckHost's diagnostics, once each (settings of the top
// level are checked again for every machine).
type diags struct{ d hcl.Diagnostics }

func (d *diags) add(subject hcl.Range, summary, detail string, args ...any) {
	diag := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: subject.Ptr()}
	for _, e := range d.d {
		if *e.Subject == subject && e.Summary == diag.Summary && e.Detail == diag.Detail {
			return
		}
	}
	d.d = append(d.d, diag)
}

// list is names for a message: "a, b" or "none".
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// formatBytes writes n in the largest binary unit below it, e.g. "1.5 GiB".
func formatBytes(n int64) string {
	if n%(1<<20) == 0 || n < 1<<20 {
		return formatSize(n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// closest is the name in names nearest to s by edit distance (case
// folded), if it is close enough to be a slip: at most a third of s's
// length, and at most 3 edits.
func closest(s string, names []string) string {
	best, bestD := "", min(3, max(1, len(s)/3))+1
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
