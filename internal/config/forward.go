package config

import (
	"fmt"
	"net/netip"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/den-dev/den/internal/forward"
)

// DefaultForwardIP is the host address a forward listens on unless
// host_ip says otherwise: loopback, so the port is not open to the network.
const DefaultForwardIP = "127.0.0.1"

// Forward is a forwarded port: while the machine runs, HostIP:Host on the
// host reaches port Guest in the machine.
type Forward struct {
	Guest    int
	Host     int
	Protocol string // "tcp" or "udp"
	HostIP   string // an IP literal; DefaultForwardIP by default
	DefRange hcl.Range
	// HostRange and HostIPRange are where host and host_ip were set;
	// HostIPRange is the zero Range when host_ip is left out.
	HostRange, HostIPRange hcl.Range
}

// String is "127.0.0.1:8080 -> 80/tcp".
func (f Forward) String() string {
	return fmt.Sprintf("%s -> %d/%s", netip.AddrPortFrom(netip.MustParseAddr(f.HostIP), uint16(f.Host)), f.Guest, f.Protocol)
}

var forwardSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "guest", Required: true}, {Name: "host", Required: true},
		{Name: "protocol"}, {Name: "host_ip"},
	},
}

// forward decodes and validates one forward block.
func (l *loader) forward(b *hcl.Block) (Forward, bool) {
	f := Forward{Protocol: "tcp", HostIP: DefaultForwardIP, DefRange: b.DefRange}
	content, diags := b.Body.Content(forwardSchema)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return f, false
	}
	ok := true
	port := func(name string, dst *int) {
		a := content.Attributes[name]
		v, good := l.value(a, cty.Number)
		if !good {
			ok = false
			return
		}
		n, acc := v.AsBigFloat().Int64()
		if acc != 0 || n < 1 || n > 65535 {
			l.errorf(a.Expr.Range(), "Invalid port", "%s must be a port number from 1 to 65535.", name)
			ok = false
			return
		}
		*dst = int(n)
	}
	port("guest", &f.Guest)
	port("host", &f.Host)
	if a := content.Attributes["host"]; a != nil {
		f.HostRange = a.Expr.Range()
	}
	if a := content.Attributes["protocol"]; a != nil {
		if v, good := l.value(a, cty.String); good {
			f.Protocol = v.AsString()
			if f.Protocol != "tcp" && f.Protocol != "udp" {
				l.errorf(a.Expr.Range(), "Invalid protocol", `protocol must be "tcp" (the default) or "udp", not %q.`, f.Protocol)
				ok = false
			}
		} else {
			ok = false
		}
	}
	if a := content.Attributes["host_ip"]; a != nil {
		if v, good := l.value(a, cty.String); good {
			ip, err := netip.ParseAddr(v.AsString())
			if err != nil || ip.Zone() != "" {
				l.errorf(a.Expr.Range(), "Invalid host_ip", `host_ip must be an IP address of this host, such as "127.0.0.1" (the default), "0.0.0.0" for every IPv4 address or "::" for every IPv6 one, not %q.`, v.AsString())
				ok = false
			} else {
				f.HostIP, f.HostIPRange = ip.String(), a.Expr.Range()
			}
		} else {
			ok = false
		}
	}
	return f, ok
}

// checkForwards reports two forwards of the project that would listen on
// the same host port (same protocol, overlapping addresses), within one
// machine or across machines.
func (l *loader) checkForwards(p *Project) {
	type seen struct {
		machine string
		f       Forward
	}
	var all []seen
	for _, m := range p.Machines {
		for _, f := range m.Forwards {
			for _, s := range all {
				if s.f.Protocol != f.Protocol || s.f.Host != f.Host || !forward.Overlap(s.f.HostIP, f.HostIP) {
					continue
				}
				where := fmt.Sprintf("machine %q forwards it too (at %s)", s.machine, loc(s.f.DefRange))
				if s.machine == m.Name {
					where = fmt.Sprintf("this machine forwards it twice (also at %s)", loc(s.f.DefRange))
				}
				if s.f.DefRange == f.DefRange {
					where = fmt.Sprintf("this forward is at the top level, so machines %q and %q both inherit it; move it into one machine block", s.machine, m.Name)
				}
				l.errorf(f.DefRange, "Host port forwarded twice",
					"Host port %d/%s is taken: %s. Each host port can reach one machine.", f.Host, f.Protocol, where)
				break
			}
			all = append(all, seen{m.Name, f})
		}
	}
}
