package lxc

// Project networks (provider.Networker): a Linux bridge per project,
// den-<11 hex digits of the project's id>, with the host at the first
// address of its /24; an nftables table of its own (inet, named as the
// bridge) that masquerades what leaves the subnet and drops whatever
// another interface (another project's bridge, lxcbr0, the LAN) would
// forward into the bridge, replies excepted; and a dnsmasq bound to the
// host's address on it, as a DNS forwarder only (no DHCP: den sets every
// machine's address), which den starts and supervises by its pid file.
//
// What den made is recorded in NetRoot/<bridge>.json before it makes
// anything, so Networks lists, and RemoveNetwork removes, what a killed
// den left half made; den never touches a bridge, table or process that a
// record of its own does not name. NetRoot is in /run: a host reboot
// takes the bridges, tables and processes, and the records, together; the
// next up makes the network again (on the subnet its machines had, when
// still free).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/provider"
)

var _ provider.Networker = (*Provider)(nil)

// NetRoot holds den's records of the project networks it made, and their
// dnsmasq's pid files and logs (tests use another folder).
var NetRoot = "/run/den/net"

// NetPool is where den picks project networks' subnets: its /24s, from
// the one the project's id points at. A /24 that overlaps a network of
// the host (a route or an address) or of another den machine is skipped.
var NetPool = netip.MustParsePrefix("10.166.0.0/16")

// NetPrefix begins the name of every bridge and nftables table den makes.
const NetPrefix = "den-"

var netIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// bridgeName is network id's bridge (and nftables table): 15 characters,
// the most an interface name may have.
func bridgeName(id string) string { return NetPrefix + id[:11] }

// netState is den's record of a network it made.
type netState struct {
	ID     string       `json:"id"`
	Bridge string       `json:"bridge"`
	Subnet netip.Prefix `json:"subnet"`
}

func netFile(br, ext string) string { return filepath.Join(NetRoot, br+ext) }

func readNetState(br string) (*netState, error) {
	b, err := fsutil.ReadRegular(netFile(br, ".json"), 1<<16)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st netState
	if err := json.Unmarshal(b, &st); err != nil || st.Bridge != br || !netIDRE.MatchString(st.ID) || bridgeName(st.ID) != br || !st.Subnet.IsValid() {
		return nil, fmt.Errorf("den's record of network %s (%s) is damaged: %q", br, netFile(br, ".json"), b)
	}
	return &st, nil
}

// netTools are the programs a project network needs, and their packages.
var netTools = []string{"ip=iproute2", "nft=nftables", "dnsmasq=dnsmasq-base"}

// tool finds a program in PATH or in the sbin folders (sudo's PATH may
// lack them).
func tool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed", name)
}

// netToolsMissing lists what a project network needs and this host lacks,
// each with its fix.
func netToolsMissing() []string {
	var out []string
	for _, t := range netTools {
		name, pkg, _ := strings.Cut(t, "=")
		if _, err := tool(name); err != nil {
			out = append(out, fmt.Sprintf("%s is not installed: apt-get install %s", name, pkg))
		}
	}
	return out
}

// run runs a program den uses for networks, with stdin, and returns its
// error with what it said.
func run(ctx context.Context, stdin string, name string, args ...string) error {
	path, err := tool(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// EnsureNetwork makes network id (or finds it made) and checks its parts:
// the bridge with the host's address, the nftables table, the dnsmasq
// (started again when it died). A record without its bridge (a den killed
// half way, or a host reboot since) is made again, on its subnet when it
// is still free.
func (p *Provider) EnsureNetwork(ctx context.Context, id string, want netip.Prefix, fixed bool, taken []netip.Prefix) (provider.ProjectNetwork, error) {
	if !netIDRE.MatchString(id) {
		return provider.ProjectNetwork{}, fmt.Errorf("bad network id %q", id)
	}
	if missing := netToolsMissing(); len(missing) > 0 {
		return provider.ProjectNetwork{}, &host.Error{Problems: append([]string{"a project's own network (network = \"project\") needs ip, nft and dnsmasq"}, missing...)}
	}
	br := bridgeName(id)
	st, err := readNetState(br)
	if err != nil {
		return provider.ProjectNetwork{}, err
	}
	if st == nil && linkExists(br) {
		return provider.ProjectNetwork{}, errdefs.Newf(errdefs.Exists, "an interface %s exists that den did not make (no record in %s): remove it, or it is another program's", br, NetRoot)
	}
	if st != nil {
		if cur, ok := bridgeSubnet(br); ok && cur == st.Subnet {
			if !fixed || want == cur {
				pn := provider.ProjectNetwork{ID: id, Bridge: br, Subnet: cur}
				if err := p.completeNetwork(ctx, pn); err != nil {
					return pn, fmt.Errorf("network %s (%s): %w", br, cur, err)
				}
				return pn, nil
			}
			if attached(br) {
				return provider.ProjectNetwork{}, errdefs.Newf(errdefs.Exists, "the project's network %s is on %s, and machines are attached to it: halt them (den halt) before moving it to %s", br, cur, want)
			}
		}
		if !want.IsValid() {
			want = st.Subnet
		}
		if err := p.RemoveNetwork(ctx, id); err != nil {
			return provider.ProjectNetwork{}, err
		}
	}
	subnet, err := pickSubnet(id, want, fixed, taken, br)
	if err != nil {
		return provider.ProjectNetwork{}, err
	}
	pn := provider.ProjectNetwork{ID: id, Bridge: br, Subnet: subnet}
	if err := p.makeNetwork(ctx, pn); err != nil {
		if rerr := p.RemoveNetwork(context.WithoutCancel(ctx), id); rerr != nil {
			err = fmt.Errorf("%w (and removing what was made: %v)", err, rerr)
		}
		return provider.ProjectNetwork{}, fmt.Errorf("make network %s (%s): %w", br, subnet, err)
	}
	return pn, nil
}

// makeNetwork records network pn, then makes its bridge, its table and
// its dnsmasq.
func (p *Provider) makeNetwork(ctx context.Context, pn provider.ProjectNetwork) error {
	if err := os.MkdirAll(NetRoot, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(netState{ID: pn.ID, Bridge: pn.Bridge, Subnet: pn.Subnet})
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(netFile(pn.Bridge, ".json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	gw := netip.PrefixFrom(pn.Subnet.Addr().Next(), pn.Subnet.Bits())
	steps := [][]string{
		{"link", "add", "name", pn.Bridge, "address", bridgeMAC(pn.ID), "type", "bridge"},
		{"addr", "add", gw.String(), "broadcast", "+", "dev", pn.Bridge},
		{"link", "set", pn.Bridge, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, "", "ip", s...); err != nil {
			return err
		}
	}
	return p.completeNetwork(ctx, pn)
}

// completeNetwork (re)applies the network's nftables table, makes sure
// the host forwards IPv4 (as lxc-net and LXD do for their NAT) and that
// its dnsmasq runs.
func (p *Provider) completeNetwork(ctx context.Context, pn provider.ProjectNetwork) error {
	if err := run(ctx, nftScript(pn), "nft", "-f", "-"); err != nil {
		return err
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && strings.TrimSpace(string(b)) == "0" {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("turn on IPv4 forwarding for the network's NAT: %w", err)
		}
	}
	if _, ok := dnsmasqPid(pn.Bridge); ok {
		return nil
	}
	return startDNS(ctx, pn)
}

// nftScript is the network's own table, replaced whole in one
// transaction. Forwarded traffic into the bridge is dropped unless it
// comes from the bridge itself (bridged traffic, which br_netfilter shows
// here) or answers a connection a machine made; what leaves the subnet is
// masqueraded. A drop in any table is final, so no other table's accept
// lets another network in.
func nftScript(pn provider.ProjectNetwork) string {
	br, s := pn.Bridge, pn.Subnet.String()
	return fmt.Sprintf(`table inet %[1]s {}
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "%[1]s" oifname "%[1]s" accept
		oifname "%[1]s" ct state established,related accept
		oifname "%[1]s" counter drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[2]s ip daddr != %[2]s counter masquerade
	}
}
`, br, s)
}

// bridgeMAC is a fixed, locally administered MAC for the bridge: a bridge
// without one takes its lowest port's, which changes as machines come
// and go and leaves the guests' neighbour entries for the gateway stale.
func bridgeMAC(id string) string {
	sum := sha256.Sum256([]byte("den network " + id))
	return fmt.Sprintf("02:de:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3])
}

// dnsmasqUser is the user dnsmasq drops to: Debian's dnsmasq when it
// exists, else nobody.
func dnsmasqUser() string {
	if _, err := user.Lookup("dnsmasq"); err == nil {
		return "dnsmasq"
	}
	return "nobody"
}

// startDNS starts the network's dnsmasq: DNS only, on the host's address
// on the bridge, forwarding to the host's resolvers (it follows
// /etc/resolv.conf as it changes). It daemonizes and writes its pid file.
func startDNS(ctx context.Context, pn provider.ProjectNetwork) error {
	br := pn.Bridge
	pidfile := netFile(br, ".dnsmasq.pid")
	os.Remove(pidfile)
	args := []string{
		"--conf-file=/dev/null",
		"--pid-file=" + pidfile,
		"--log-facility=" + netFile(br, ".dnsmasq.log"),
		"--user=" + dnsmasqUser(),
		"--bind-interfaces",
		"--interface=" + br,
		"--except-interface=lo",
		"--listen-address=" + pn.Subnet.Addr().Next().String(),
		"--no-hosts",
		"--no-dhcp-interface=" + br,
	}
	if err := run(ctx, "", "dnsmasq", args...); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, ok := dnsmasqPid(br); ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dnsmasq for %s did not write %s (see %s)", br, pidfile, netFile(br, ".dnsmasq.log"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dnsmasqPid reads the network's dnsmasq pid file and reports whether
// that process runs and is the one den started for the bridge (its
// command line names the pid file), so a recycled pid is never signalled.
func dnsmasqPid(br string) (int, bool) {
	pidfile := netFile(br, ".dnsmasq.pid")
	b, err := fsutil.ReadRegular(pidfile, 64)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	return pid, slices.Contains(strings.Split(string(cmdline), "\x00"), "--pid-file="+pidfile)
}

// stopDNS ends the network's dnsmasq and waits for it to go.
func stopDNS(br string) error {
	pid, ok := dnsmasqPid(br)
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop dnsmasq %d of %s: %w", pid, br, err)
	}
	for range 200 {
		if _, ok := dnsmasqPid(br); !ok {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return nil
}

// RemoveNetwork removes what den made for network id — dnsmasq, table,
// bridge, in that order — and its record last, so an interrupted remove
// is finished by the next one. A bridge den has no record of is not den's
// and stays. One with machines attached stays (errdefs.Exists).
func (p *Provider) RemoveNetwork(ctx context.Context, id string) error {
	if !netIDRE.MatchString(id) {
		return fmt.Errorf("bad network id %q", id)
	}
	br := bridgeName(id)
	st, err := readNetState(br)
	if err != nil || st == nil {
		return err
	}
	if attached(br) {
		return errdefs.Newf(errdefs.Exists, "network %s (%s) has machines attached: %s", br, st.Subnet, strings.Join(ports(br), ", "))
	}
	if err := stopDNS(br); err != nil {
		return err
	}
	// Another den may remove the same network at once: what is gone is
	// gone.
	if err := run(ctx, "", "nft", "list", "table", "inet", br); err == nil {
		if err := run(ctx, "", "nft", "delete", "table", "inet", br); err != nil && run(ctx, "", "nft", "list", "table", "inet", br) == nil {
			return err
		}
	}
	if linkExists(br) {
		if err := run(ctx, "", "ip", "link", "del", br, "type", "bridge"); err != nil && linkExists(br) {
			return err
		}
	}
	for _, ext := range []string{".dnsmasq.pid", ".dnsmasq.log", ".json"} {
		if err := os.Remove(netFile(br, ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Networks lists the networks den has records of.
func (p *Provider) Networks(ctx context.Context) ([]provider.ProjectNetwork, error) {
	files, err := filepath.Glob(filepath.Join(NetRoot, NetPrefix+"*.json"))
	if err != nil {
		return nil, err
	}
	var out []provider.ProjectNetwork
	for _, f := range files {
		st, err := readNetState(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			return nil, err
		}
		if st != nil {
			out = append(out, provider.ProjectNetwork{ID: st.ID, Bridge: st.Bridge, Subnet: st.Subnet})
		}
	}
	return out, nil
}

func linkExists(name string) bool {
	_, err := os.Lstat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// ports lists the interfaces attached to bridge br.
func ports(br string) []string {
	entries, _ := os.ReadDir(filepath.Join("/sys/class/net", br, "brif"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func attached(br string) bool { return len(ports(br)) > 0 }

// bridgeSubnet is the subnet of the bridge's IPv4 address.
func bridgeSubnet(br string) (netip.Prefix, bool) {
	ipn, err := BridgePrefix(br)
	if err != nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(ipn.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := ipn.Mask.Size()
	return netip.PrefixFrom(a, bits).Masked(), true
}

// hostNet is a network the host has: a route or an interface's address.
type hostNet struct {
	prefix netip.Prefix
	iface  string
}

// hostNetworks lists the host's IPv4 routes (but the default route) and
// its interfaces' subnets, but those of the interface except.
func hostNetworks(except string) []hostNet {
	var out []hostNet
	eachLine("/proc/net/route", func(l string) {
		f := strings.Fields(l)
		if len(f) < 8 || f[0] == "Iface" || f[0] == except {
			return
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			return
		}
		// /proc/net/route holds them in the host's byte order (little endian here).
		d := [4]byte{byte(dst), byte(dst >> 8), byte(dst >> 16), byte(dst >> 24)}
		m := net.IPv4Mask(byte(mask), byte(mask>>8), byte(mask>>16), byte(mask>>24))
		bits, _ := m.Size()
		out = append(out, hostNet{netip.PrefixFrom(netip.AddrFrom4(d), bits).Masked(), f[0]})
	})
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Name == except || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				ip, _ := netip.AddrFromSlice(ipn.IP.To4())
				bits, _ := ipn.Mask.Size()
				out = append(out, hostNet{netip.PrefixFrom(ip, bits).Masked(), ifc.Name})
			}
		}
	}
	return out
}

// pickSubnet chooses the subnet of new network br: want when free, else
// (unless fixed) the first free /24 of NetPool from the one id points at.
func pickSubnet(id string, want netip.Prefix, fixed bool, taken []netip.Prefix, br string) (netip.Prefix, error) {
	hostNets := hostNetworks(br)
	var others []provider.ProjectNetwork
	if files, _ := filepath.Glob(filepath.Join(NetRoot, NetPrefix+"*.json")); len(files) > 0 {
		for _, f := range files {
			if st, err := readNetState(strings.TrimSuffix(filepath.Base(f), ".json")); err == nil && st != nil && st.Bridge != br {
				others = append(others, provider.ProjectNetwork{ID: st.ID, Bridge: st.Bridge, Subnet: st.Subnet})
			}
		}
	}
	why := func(s netip.Prefix) string {
		for _, h := range hostNets {
			if h.prefix.Overlaps(s) {
				return fmt.Sprintf("it overlaps %s, a network of this host (on %s)", h.prefix, h.iface)
			}
		}
		for _, o := range others {
			if o.Subnet.Overlaps(s) {
				return fmt.Sprintf("it is den's network %s", o.Bridge)
			}
		}
		for _, t := range taken {
			if t.Overlaps(s) {
				return fmt.Sprintf("den's machines have addresses in %s", t)
			}
		}
		return ""
	}
	if want.IsValid() {
		if !want.Addr().Is4() || want.Bits() < 16 || want.Bits() > 29 {
			return netip.Prefix{}, fmt.Errorf("subnet %s: den's networks are IPv4 subnets from /16 to /29", want)
		}
		want = want.Masked()
		reason := why(want)
		if reason == "" {
			return want, nil
		}
		if fixed {
			return netip.Prefix{}, errdefs.Newf(errdefs.Exists, "subnet %s is not free: %s", want, reason)
		}
	}
	base := NetPool.Masked().Addr().As4()
	n := 1 << (24 - NetPool.Bits())
	sum := sha256.Sum256([]byte(id))
	start := (int(sum[0])<<8 | int(sum[1])) % n
	for i := range n {
		k := (start + i) % n
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3]) + uint32(k)<<8
		s := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
		if why(s) == "" {
			return s, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 left in %s for a project network", NetPool)
}
