package config

import (
	"net/netip"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Where a machine's eth0 joins (den.hcl's network = "..."):
const (
	// NetworkBridge is the host bridge that bridge names (lxcbr0 by
	// default), which every machine of the host may share: the default.
	NetworkBridge = "bridge"
	// NetworkProject is a network of the project's own: a bridge den
	// makes for the project's machines alone, with NAT to the outside,
	// reachable from the host and from no other project's machines.
	NetworkProject = "project"
)

// privateSchema is a network "private" block: Vagrant's private_network
// with a fixed address.
var privateSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "ip", Required: true}},
}

// network decodes network = "..." and the network "private" blocks of a
// layer.
func (l *loader) network(ly *layer, attrs hcl.Attributes, blocks hcl.Blocks) {
	if a := attrs["network"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			switch n := v.AsString(); n {
			case NetworkBridge, NetworkProject:
				ly.network, ly.networkRange = &n, a.Expr.Range()
			default:
				l.errorf(a.Expr.Range(), "Invalid network",
					`network must be "project" (a network of the project's own: its machines, the host, and NAT to the outside) or "bridge" (the host bridge that bridge names, %s by default), not %q.`, DefaultBridge, n)
			}
		}
	}
	for i, b := range blocks {
		if b.Labels[0] != "private" {
			l.errorf(b.LabelRanges[0], "Unknown network type",
				`den has private networks only (network "private" { ip = "10.1.2.10" }); machines reach the outside through the host's NAT, and forward blocks open their ports to the network.`)
			continue
		}
		if i > 0 {
			l.errorf(b.DefRange, "Two private networks", `A machine has one address: another network "private" block is at %s.`, loc(blocks[0].DefRange))
			continue
		}
		c, diags := b.Body.Content(privateSchema)
		l.diags = append(l.diags, diags...)
		a := c.Attributes["ip"]
		if a == nil {
			continue
		}
		v, ok := l.value(a, cty.String)
		if !ok {
			continue
		}
		ip, err := netip.ParseAddr(v.AsString())
		r := a.Expr.Range()
		switch {
		case err != nil || !ip.Is4():
			l.errorf(r, "Invalid address", `ip must be an IPv4 address such as "10.1.2.10", not %q.`, v.AsString())
		case !ip.IsPrivate():
			l.errorf(r, "Not a private address",
				"%s is not in a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16): the host would route it to the project's machines instead of the Internet.", ip)
		case hostPart(ip) == 0 || hostPart(ip) == 1 || hostPart(ip) == 255:
			l.errorf(r, "Reserved address",
				"%s is the network's own address, the host's (den gives the host the first address of the /24, as VirtualBox does) or the broadcast address: pick one from .2 to .254.", ip)
		default:
			ly.privateIP, ly.privateRange = ip, r
		}
	}
}

// hostPart is the last byte of an IPv4 address: its host part in its /24.
func hostPart(ip netip.Addr) byte { return ip.As4()[3] }

// PrivateSubnet is the project network's subnet for a fixed address: its
// /24.
func PrivateSubnet(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, 24).Masked() }

// checkNetworks holds the project's networks together, once the machines
// are merged: a machine with a private address is on the project's
// network (an explicit network = "bridge" contradicts it), bridge does not
// apply there, the project's fixed addresses share one /24 (a project has
// one network) and no two machines have one address.
func (l *loader) checkNetworks(p *Project) {
	var first *Machine
	seen := map[netip.Addr]*Machine{}
	for _, m := range p.Machines {
		if m.Provider == ProviderLXD && (m.PrivateIP.IsValid() || m.Network == NetworkProject) {
			r := m.NetworkRange
			if m.PrivateIP.IsValid() {
				r = m.PrivateRange
			}
			l.errorf(r, "Project network on LXD",
				`Machine %q has provider "lxd", whose networks are the server's: den makes project networks for provider "lxc" only. Name an LXD network instead: lxd { network = "..." } (an LXD network of the project's own, made with 'lxc network create', keeps its machines apart).`, m.Name)
			continue
		}
		if m.PrivateIP.IsValid() {
			if m.Network == NetworkBridge && m.NetworkRange != (hcl.Range{}) {
				l.errorf(m.NetworkRange, "Private address on a host bridge",
					`Machine %q has a private address (%s), which den gives on the project's own network: drop network = "bridge" (or set network = "project").`, m.Name, loc(m.PrivateRange))
				continue
			}
			m.Network = NetworkProject
			if o, dup := seen[m.PrivateIP]; dup && o.PrivateRange == m.PrivateRange {
				l.errorf(m.PrivateRange, "One address for several machines",
					`A network "private" block at the top level gives every machine its address %s: put it in one machine's block.`, m.PrivateIP)
				continue
			} else if dup {
				l.errorf(m.PrivateRange, "Address taken",
					"Machine %q has the address %s, which machine %q has too (%s); give each machine its own.", m.Name, m.PrivateIP, o.Name, loc(o.PrivateRange))
				continue
			}
			seen[m.PrivateIP] = m
			if first == nil {
				first = m
			} else if PrivateSubnet(first.PrivateIP) != PrivateSubnet(m.PrivateIP) {
				l.errorf(m.PrivateRange, "Two subnets",
					"A project has one network: %s is not in %s, the subnet of machine %q's address (%s). Give the project's machines addresses in one /24.", m.PrivateIP, PrivateSubnet(first.PrivateIP), first.Name, loc(first.PrivateRange))
			}
		}
		if m.Network == NetworkProject && m.BridgeRange != (hcl.Range{}) {
			l.errorf(m.BridgeRange, "Bridge on a project network",
				`Machine %q is on the project's own network, where den makes the bridge: bridge does not apply (leave it out, or set network = "bridge").`, m.Name)
		}
	}
}
