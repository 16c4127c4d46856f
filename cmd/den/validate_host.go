package main

import (
	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/forward"
	"github.com/den-dev/den/internal/machine"
)

// checkHost holds the machines ms of p against this host with
// config.CheckHost: memory, cpus, bridges, boxes, forwarded ports. A host
// port held by the port forwarder of the machine that forwards it (a
// running machine) is not held by "another program".
func checkHost(p *config.Project, ms []*machine.Machine) error {
	h, err := config.HostFactsNow()
	if err != nil {
		return err
	}
	boxes, err := store().List()
	if err != nil {
		return err
	}
	h.Boxes, h.Buildable = []string{}, box.Buildable()
	for _, b := range boxes {
		h.Boxes = append(h.Boxes, b.Name)
	}
	type port struct {
		proto, ip string
		port      int
	}
	own := map[port]bool{}
	sub := *p
	sub.Machines = nil
	for _, m := range ms {
		sub.Machines = append(sub.Machines, m.Config)
		if _, ok := forward.Running(m.State.ForwardPid()); ok {
			for _, f := range m.Config.Forwards {
				own[port{f.Protocol, f.HostIP, f.Host}] = true
			}
		}
	}
	held := h.PortHeld
	h.PortHeld = func(proto, ip string, p int) bool { return !own[port{proto, ip, p}] && held(proto, ip, p) }
	return config.CheckHost(&sub, h)
}
