package machine

import (
	"context"
	"fmt"
	"strings"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/forward"
	"github.com/den-dev/den/provider"
)

// CheckHost holds machines ms of p against this host (config.CheckHost):
// memory and cpus within the host's, bridges that exist, a box that is
// installed or can be had, host_ip addresses of this host, host ports
// free, a storage the machine's provider has here. The errors are den.hcl diagnostics at the lines to fix. A port held
// by the forwarder of the machine that forwards it is not in the way; one
// held by another den machine or program says which.
func (e *Env) CheckHost(ctx context.Context, p *config.Project, ms []*Machine) error {
	facts := e.HostFacts
	if facts == nil {
		facts = config.HostFactsNow
	}
	h, err := facts()
	if err != nil {
		return err
	}
	boxes, err := e.Store.List()
	if err != nil {
		return err
	}
	h.Boxes, h.Buildable = []string{}, box.Buildable()
	for _, b := range boxes {
		h.Boxes = append(h.Boxes, b.Name)
	}
	e.hostStores(&h, ms)
	type port struct {
		proto, ip string
		port      int
	}
	own := map[port]bool{}
	sub := *p
	sub.Machines = nil
	for _, m := range ms {
		if m.Orphan {
			continue
		}
		sub.Machines = append(sub.Machines, m.Config)
		if _, ok := forward.Running(m.State.ForwardPid()); ok || e.engineForwards(ctx, m) {
			for _, f := range m.Config.Forwards {
				own[port{f.Protocol, f.HostIP, f.Host}] = true
			}
		}
	}
	held := h.PortHeld
	h.PortHeld = func(proto, ip string, n int) (bool, string) {
		if own[port{proto, ip, n}] {
			return false, ""
		}
		ok, who := held(proto, ip, n)
		if ok {
			who = portHolder(forward.Rule{Protocol: proto, HostIP: ip, HostPort: n})
		}
		return ok, who
	}
	return config.CheckHost(&sub, h)
}

// portHolder says who holds a host port: a den machine (its forwarder,
// found by the pidfile on its command line), a program, or "".
func portHolder(r forward.Rule) string {
	pid, cmd := forward.Holder(r)
	if pid == 0 {
		return ""
	}
	if owner := denForwarder(cmd); owner != "" {
		return fmt.Sprintf("%s (its port forwarder, pid %d)", owner, pid)
	}
	return fmt.Sprintf("pid %d (%s)", pid, strings.Join(cmd, " "))
}

// engineForwards reports whether m is running with its ports forwarded by
// its engine (LXD's proxy devices): the host ports are its own.
func (e *Env) engineForwards(ctx context.Context, m *Machine) bool {
	rec, err := m.Record()
	if err != nil || rec == nil || len(m.Config.Forwards) == 0 {
		return false
	}
	prov, err := e.machineProvider(m, rec)
	if err != nil {
		return false
	}
	pf, ok := prov.(provider.PortForwarder)
	if !ok {
		return false
	}
	if engine, err := pf.ForwardsPorts(ctx, &provider.Spec{Name: rec.Container, Engine: m.Config.Engine()}); err != nil || !engine {
		return false
	}
	st, err := prov.State(ctx, rec.Container)
	return err == nil && (st == provider.Running || st == provider.Frozen)
}
