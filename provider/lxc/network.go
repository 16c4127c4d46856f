package lxc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/den-dev/den/provider"
)

var _ provider.Addresser = (*Provider)(nil)

// AllocateAddress picks a free address on the bridge's subnet, from the top
// down (dnsmasq hands out leases from the bottom): not one in taken, nor
// one of a container config in this LXC path, a dnsmasq lease, the host's
// neighbour table or a live MAC on the bridge (another den home's machine,
// or one den lost track of) — except what belongs to name itself. prefer
// is kept when still free. The MAC is derived from the address, so an
// address never comes back with another MAC (a stale neighbour entry cost
// ~45 s of failed ssh).
func (p *Provider) AllocateAddress(ctx context.Context, spec *provider.Spec, prefer netip.Prefix, taken []netip.Addr) (provider.Network, error) {
	bridge, name := spec.Network.Bridge, spec.Name
	subnet, err := BridgePrefix(bridge)
	if err != nil {
		return provider.Network{}, err
	}
	used := p.usedAddresses(bridge, name)
	for _, a := range taken {
		used[a] = true
	}
	addr, err := allocate(bridge, subnet, prefer, used, bridgeMACs(bridge))
	if err != nil {
		return provider.Network{}, err
	}
	gw, _ := netip.AddrFromSlice(subnet.IP.To4())
	return provider.Network{Bridge: bridge, Address: addr, Gateway: gw, MAC: MACFor(addr.Addr())}, nil
}

// usedAddresses lists what the engine shows in use on bridge: the
// addresses of container configs in this LXC path, dnsmasq's leases and
// the neighbour table. self's own config does not count, nor a lease or
// neighbour entry with the MAC den derives for its address.
func (p *Provider) usedAddresses(bridge, self string) map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	add := func(s, mac string) {
		s, _, _ = strings.Cut(strings.TrimSpace(s), "/")
		a, err := netip.ParseAddr(s)
		if err != nil || (mac != "" && a.Is4() && strings.EqualFold(mac, MACFor(a))) {
			return
		}
		used[a] = true
	}
	configs, _ := filepath.Glob(filepath.Join(p.Path, "*", "config"))
	for _, c := range configs {
		if filepath.Base(filepath.Dir(c)) == self {
			continue
		}
		eachLine(c, func(l string) {
			if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "lxc.net.0.ipv4.address" {
				if f := strings.Fields(v); len(f) > 0 {
					add(f[0], "")
				}
			}
		})
	}
	eachLine("/var/lib/misc/dnsmasq."+bridge+".leases", func(l string) {
		if f := strings.Fields(l); len(f) >= 3 {
			add(f[2], f[1])
		}
	})
	eachLine("/proc/net/arp", func(l string) {
		f := strings.Fields(l)
		if len(f) >= 6 && f[5] == bridge && f[3] != "00:00:00:00:00:00" {
			add(f[0], f[3])
		}
	})
	return used
}

// allocate walks the subnet down from its last host address and returns
// the first address neither used nor live (a MAC on the bridge derived
// from it); prefer first when it is free.
func allocate(bridge string, subnet *net.IPNet, prefer netip.Prefix, used map[netip.Addr]bool, liveMACs []string) (netip.Prefix, error) {
	live := map[string]bool{}
	for _, mac := range liveMACs {
		live[mac] = true
	}
	taken := func(a netip.Addr) bool { return used[a] || live[MACFor(a)] }
	gw, ok := netip.AddrFromSlice(subnet.IP.To4())
	if !ok {
		return netip.Prefix{}, fmt.Errorf("bridge %q has no IPv4 address", bridge)
	}
	bits, _ := subnet.Mask.Size()
	pfx := netip.PrefixFrom(gw, bits).Masked()
	if prefer.IsValid() && pfx.Contains(prefer.Addr()) && !taken(prefer.Addr()) && prefer.Addr() != gw {
		return netip.PrefixFrom(prefer.Addr(), bits), nil
	}
	used[gw] = true
	last := pfx.Addr().As4()
	hostBits := 32 - bits
	if hostBits < 2 {
		return netip.Prefix{}, fmt.Errorf("bridge %q subnet %v is too small", bridge, pfx)
	}
	n := uint32(1)<<hostBits - 2 // usable hosts
	base := uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])
	for i := n; i >= 1; i-- {
		v := base + i
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if !taken(a) {
			return netip.PrefixFrom(a, bits), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free address left on bridge %q (%v)", bridge, pfx)
}

// bridgeMACs lists the MACs the bridge has learned on its ports (not its
// own), from /sys/class/net/BRIDGE/brforward: 16-byte entries of MAC,
// port number, is_local, ageing timer.
func bridgeMACs(bridge string) []string {
	data, err := os.ReadFile(filepath.Join("/sys/class/net", bridge, "brforward"))
	if err != nil {
		return nil
	}
	var out []string
	for i := 0; i+16 <= len(data); i += 16 {
		e := data[i : i+16]
		if e[7] != 0 { // is_local
			continue
		}
		out = append(out, net.HardwareAddr(e[:6]).String())
	}
	return out
}

func eachLine(path string, fn func(string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fn(sc.Text())
	}
}

// MACFor derives a stable MAC from the address (LXC's 00:16:3e prefix), so
// an address never comes back with another MAC and a stale neighbour entry.
func MACFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", b[1], b[2], b[3])
}
