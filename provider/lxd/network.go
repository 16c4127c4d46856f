package lxd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/provider"
)

// AllocateAddress picks the machine's address on the network eth0 joins
// (spec.Network.Bridge; when "", the network of eth0 in the machine's
// profiles): from the top of the subnet down (LXD's dnsmasq leases from
// the bottom), skipping the bridge's own addresses (on every cluster
// member), every address an instance of the server has or is given
// (in every project), the network's DHCP leases and taken. The MAC is
// derived from the address, as for LXC.
func (p *Provider) AllocateAddress(ctx context.Context, spec *provider.Spec, prefer netip.Prefix, taken []netip.Addr) (provider.Network, error) {
	x := settings(spec.Engine)
	m, err := p.forSpec(ctx, spec.Name, x)
	if err != nil {
		return provider.Network{}, err
	}
	if pl, err := p.placed(spec.Name); err != nil {
		return provider.Network{}, err
	} else if pl == nil {
		// The first contact for a new machine: what den.hcl names must be
		// there before den writes anything about the machine.
		if err := p.checkPlacement(ctx, m, x); err != nil {
			return provider.Network{}, err
		}
	}
	name := spec.Network.Bridge
	if name == "" {
		if name, err = p.profileNetwork(m, x); err != nil {
			return provider.Network{}, err
		}
	}
	info, err := p.network(m, name, memberOf(x))
	if notFound(err) {
		return provider.Network{}, x.Errorf("network", "Unknown LXD network", "remote %q has no network or bridge %q ('lxc network list' on it shows them).", m.pl.Remote, name)
	}
	if err != nil {
		return provider.Network{}, err
	}
	used := map[netip.Addr]bool{}
	for _, a := range taken {
		used[a] = true
	}
	for _, a := range info.own {
		used[a] = true
	}
	if err := p.instanceAddresses(m, spec.Name, used); err != nil {
		return provider.Network{}, err
	}
	if info.managed {
		leases, err := m.is.GetNetworkLeases(name)
		if err != nil {
			return provider.Network{}, fmt.Errorf("remote %q: leases of network %q: %w", m.pl.Remote, name, err)
		}
		for _, l := range leases {
			if a, err := netip.ParseAddr(l.Address); err == nil && l.Hostname != spec.Name {
				used[a] = true
			}
		}
	}
	addr, err := pick(info.subnet, prefer, used)
	if err != nil {
		return provider.Network{}, fmt.Errorf("remote %q, network %q: %w", m.pl.Remote, name, err)
	}
	return provider.Network{Bridge: name, Address: addr, Gateway: info.gateway, MAC: macFor(addr.Addr())}, nil
}

// profileNetwork is the network of eth0 in x's profiles (the last
// profile that has one wins, as in LXD).
func (p *Provider) profileNetwork(m *machine, x *config.LXD) (string, error) {
	found := ""
	for _, name := range profiles(x) {
		pr, _, err := m.is.GetProfile(name)
		if notFound(err) {
			return "", x.Errorf("profiles", "Unknown LXD profile", "remote %q has no profile %q%s ('lxc profile list' on it shows them).", m.pl.Remote, name, inProject(x))
		}
		if err != nil {
			return "", err
		}
		for dev, d := range pr.Devices {
			if d["type"] != "nic" || (d["name"] != "eth0" && !(d["name"] == "" && dev == "eth0")) {
				continue
			}
			if d["network"] != "" {
				found = d["network"]
			} else if d["parent"] != "" {
				found = d["parent"]
			}
		}
	}
	if found == "" {
		return "", x.Errorf("network", "No network for eth0", "the profiles %s on remote %q give eth0 no network: set network = \"NAME\" in the lxd block.", strings.Join(profiles(x), ", "), m.pl.Remote)
	}
	return found, nil
}

// instanceAddresses adds to used every IPv4 address the server's
// instances have or are given (their state, a static lease, den's own
// raw.lxc line), but self's.
func (p *Provider) instanceAddresses(m *machine, self string, used map[netip.Addr]bool) error {
	var list []api.InstanceFull
	var err error
	if m.srv.c.HasExtension("instance_all_projects") {
		list, err = m.srv.c.GetInstancesFullAllProjects(api.InstanceTypeAny)
	} else {
		list, err = m.is.GetInstancesFull(api.InstanceTypeAny)
	}
	if err != nil {
		return fmt.Errorf("remote %q: list instances: %w", m.pl.Remote, err)
	}
	add := func(s string) {
		s, _, _ = strings.Cut(strings.TrimSpace(s), "/")
		if a, err := netip.ParseAddr(s); err == nil {
			used[a] = true
		}
	}
	for _, in := range list {
		if in.Name == self && in.Project == projectName(m.pl.Project) {
			continue
		}
		if in.State != nil {
			for _, n := range in.State.Network {
				for _, a := range n.Addresses {
					if a.Family == "inet" {
						add(a.Address)
					}
				}
			}
		}
		for _, d := range in.ExpandedDevices {
			if d["type"] == "nic" && d["ipv4.address"] != "" {
				add(d["ipv4.address"])
			}
		}
		for l := range strings.Lines(in.ExpandedConfig["raw.lxc"]) {
			if k, v, ok := strings.Cut(l, "="); ok && strings.HasSuffix(strings.TrimSpace(k), ".ipv4.address") {
				if f := strings.Fields(v); len(f) > 0 {
					add(f[0])
				}
			}
		}
	}
	return nil
}

// projectName is the LXD project a placement's "" means.
func projectName(p string) string {
	if p == "" {
		return api.ProjectDefaultName
	}
	return p
}

// pick returns prefer when it is free and in subnet, else the highest
// free host address of subnet.
func pick(subnet netip.Prefix, prefer netip.Prefix, used map[netip.Addr]bool) (netip.Prefix, error) {
	bits := subnet.Bits()
	if !subnet.Addr().Is4() || bits > 30 {
		return netip.Prefix{}, fmt.Errorf("subnet %v has no room for machines", subnet)
	}
	bcast, _ := netip.ParseAddr(broadcast(subnet))
	free := func(a netip.Addr) bool {
		return subnet.Contains(a) && a != subnet.Addr() && a != bcast && !used[a]
	}
	if prefer.IsValid() && free(prefer.Addr()) {
		return netip.PrefixFrom(prefer.Addr(), bits), nil
	}
	for a := bcast.Prev(); subnet.Contains(a) && a != subnet.Addr(); a = a.Prev() {
		if free(a) {
			return netip.PrefixFrom(a, bits), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free address left in %v", subnet)
}

// macFor derives a stable MAC from the address (LXC's 00:16:3e prefix), so
// an address never comes back with another MAC and a stale neighbour entry.
func macFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", b[1], b[2], b[3])
}

// ForwardsPorts reports whether LXD forwards the machine's ports itself:
// with proxy devices on a server on this host, whose listening sockets
// are this host's. A remote server's would listen over there; den then
// forwards on this host through the machine's ssh connection.
func (p *Provider) ForwardsPorts(ctx context.Context, spec *provider.Spec) (bool, error) {
	if pl, err := p.placed(spec.Name); err != nil {
		return false, err
	} else if pl != nil {
		return pl.Remote == config.LocalRemote, nil
	}
	return settings(spec.Engine).IsLocal(), nil
}
