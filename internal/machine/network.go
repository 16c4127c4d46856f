package machine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/provider"
)

// A project's own network (den.hcl's network = "project", or a machine
// with network "private" { ip }) is the provider's (provider.Networker):
// the domain asks for "the project's network" under the host-wide
// allocation lock, records which bridge each machine is on (the record
// and the index), and has the provider remove every network no machine
// of any registered den home is on any more: after the destroy of its
// last machine, and whatever a killed den left, at the next allocation or
// destroy.

// projectNetworkID names the network of the project in dir on the host:
// 16 hex digits of its path's sha256 (den serve's project id).
func projectNetworkID(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:])[:16]
}

// onNetwork reports whether rec has an address on the network den.hcl
// now gives machine c: its project's (with its fixed address, if any) or
// the host bridge it names.
func onNetwork(rec *Record, c *config.Machine) bool {
	if rec == nil || rec.Address == "" {
		return false
	}
	if c.Network == config.NetworkProject {
		return rec.Network == config.NetworkProject && (!c.PrivateIP.IsValid() || rec.IP() == c.PrivateIP.String())
	}
	return rec.Network == "" && sameBridge(rec.Bridge, c.Bridge)
}

// projectNetwork makes (or finds) m's project network, with the subnet
// of m's fixed address when it has one, else the one it had (rec's
// address), else a free one. The caller holds the host-wide allocation
// lock and the index.
func (e *Env) projectNetwork(ctx context.Context, m *Machine, rec *Record, prov provider.Provider, ix *Index) (provider.ProjectNetwork, error) {
	name := m.Name()
	nw, ok := prov.(provider.Networker)
	if !ok {
		where := m.Config.NetworkRange
		if m.Config.PrivateIP.IsValid() {
			where = m.Config.PrivateRange
		}
		return provider.ProjectNetwork{}, errdefs.Machinef(errdefs.Unsupported, name, "machine %q is on its project's own network (%s), which provider %s cannot make", name, config.Location(where), prov.Name())
	}
	var want netip.Prefix
	fixed := m.Config.PrivateIP.IsValid()
	if fixed {
		want = config.PrivateSubnet(m.Config.PrivateIP)
	} else if p, err := netip.ParsePrefix(rec.Address); err == nil && rec.Network == config.NetworkProject {
		want = p.Masked()
	}
	taken, owners := ix.takenSubnets(m.Project.Dir)
	if fixed {
		for i, t := range taken {
			if t.Overlaps(want) {
				o := owners[i]
				return provider.ProjectNetwork{}, errdefs.Machinef(errdefs.Exists, name, "machine %q's address %s (%s) is in %s, the subnet of machine %q of %s (%s): two projects cannot share a network; pick an address in another /24", name, m.Config.PrivateIP, config.Location(m.Config.PrivateRange), want, o.Machine, o.Project, o.Address)
			}
		}
	}
	pn, err := nw.EnsureNetwork(ctx, projectNetworkID(m.Project.Dir), want, fixed, taken)
	if err != nil {
		if fixed {
			return pn, errdefs.Machinef(errdefs.KindOf(err), name, "machine %q's private network (%s): %w", name, config.Location(m.Config.PrivateRange), err)
		}
		return pn, errdefs.Machinef(errdefs.KindOf(err), name, "machine %q: the project's network: %w", name, err)
	}
	return pn, nil
}

// keepNetwork makes sure the project network a running machine is on is
// whole (its dnsmasq runs, its table is there), as an up of a running
// machine restarts its port forwarder: the provider restarts what died.
// The machine stays on its network and subnet, whatever den.hcl says now
// (a reload moves it).
func (e *Env) keepNetwork(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) error {
	nw, ok := prov.(provider.Networker)
	if !ok || rec.Network != config.NetworkProject {
		return nil
	}
	p, err := netip.ParsePrefix(rec.Address)
	if err != nil {
		return nil
	}
	return e.allocating(ctx, "den network allocation", func(ix *Index) error {
		taken, _ := ix.takenSubnets(m.Project.Dir)
		if _, err := nw.EnsureNetwork(ctx, projectNetworkID(m.Project.Dir), p.Masked(), false, taken); err != nil {
			return errdefs.Machinef(errdefs.KindOf(err), m.Name(), "machine %q: the project's network: %w", m.Name(), err)
		}
		return nil
	})
}

// takenSubnets lists the subnets of every machine den gave an address, in
// every registered den home, but those of the project in dir, with the
// index entry each comes from.
func (ix *Index) takenSubnets(dir string) ([]netip.Prefix, []IndexEntry) {
	var subnets []netip.Prefix
	var owners []IndexEntry
	seen := map[netip.Prefix]bool{}
	for _, e := range ix.allEntries() {
		p, err := netip.ParsePrefix(e.Address)
		if err != nil || e.Project == dir || !p.Addr().Is4() || seen[p.Masked()] {
			continue
		}
		seen[p.Masked()] = true
		subnets = append(subnets, p.Masked())
		owners = append(owners, e)
	}
	return subnets, owners
}

// allEntries lists the index entries of this home and of every other
// registered den home.
func (ix *Index) allEntries() []IndexEntry {
	entries, _ := ReadIndex(ix.home)
	for _, h := range otherHomes(ix.home) {
		others, _ := ReadIndex(h)
		entries = append(entries, others...)
	}
	return entries
}

// fixedAddresses lists the fixed addresses den.hcl gives m's peers, which
// an allocation for m must leave to them.
func fixedAddresses(m *Machine) []netip.Addr {
	var out []netip.Addr
	for _, c := range m.Project.Machines {
		if c.Name != m.Name() && c.PrivateIP.IsValid() {
			out = append(out, c.PrivateIP)
		}
	}
	return out
}

// addressHolder names the machine that has address a in the index, for
// an error.
func addressHolder(ix *Index, a netip.Addr, self string) string {
	for _, e := range ix.allEntries() {
		if ip, _, _ := strings.Cut(e.Address, "/"); ip == a.String() && e.Container != self {
			return fmt.Sprintf("machine %q of %s has it", e.Machine, e.Project)
		}
	}
	return "something on the network answers at it"
}

// sweepNetworks removes the project networks no machine of any
// registered den home is on (the index names each machine's bridge): a
// project's after its last machine was destroyed, and what a den killed
// half way left. A network a machine is still attached to stays. The
// caller holds the host-wide allocation lock and the index.
func (e *Env) sweepNetworks(ctx context.Context, prov provider.Provider, ix *Index) error {
	nw, ok := prov.(provider.Networker)
	if !ok {
		return nil
	}
	nets, err := nw.Networks(ctx)
	if err != nil || len(nets) == 0 {
		return err
	}
	used := map[string]bool{}
	for _, en := range ix.allEntries() {
		used[en.Bridge] = true
	}
	for _, pn := range nets {
		if used[pn.Bridge] {
			continue
		}
		if err := nw.RemoveNetwork(ctx, pn.ID); err != nil {
			if errors.Is(err, errdefs.Exists) {
				continue // a machine den does not know about is attached
			}
			return fmt.Errorf("remove network %s (%s), which no machine uses: %w", pn.Bridge, pn.Subnet, err)
		}
	}
	return nil
}

// dropUnusedNetworks sweeps the networks after a machine left one.
func (e *Env) dropUnusedNetworks(ctx context.Context, prov provider.Provider) error {
	if _, ok := prov.(provider.Networker); !ok {
		return nil
	}
	return e.allocating(ctx, "den network allocation", func(ix *Index) error {
		return e.sweepNetworks(ctx, prov, ix)
	})
}
