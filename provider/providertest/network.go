package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/provider"
)

// networkID is a network id for this run (16 hex digits, as den's).
func networkID(t *testing.T, nw provider.Networker) string {
	b := make([]byte, 8)
	rand.Read(b)
	id := hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := nw.RemoveNetwork(context.Background(), id); err != nil {
			t.Errorf("cleanup: RemoveNetwork(%s): %v", id, err)
		}
	})
	return id
}

func listed(t *testing.T, nw provider.Networker, id string) bool {
	t.Helper()
	nets, err := nw.Networks(context.Background())
	must(t, "Networks", err)
	return slices.ContainsFunc(nets, func(n provider.ProjectNetwork) bool { return n.ID == id })
}

func testNetworks(t *testing.T, h Harness) {
	p, c := h.Provider, ctx(t)
	nw := p.(provider.Networker)
	id := networkID(t, nw)
	pn, err := nw.EnsureNetwork(c, id, netip.Prefix{}, false, nil)
	must(t, "EnsureNetwork", err)
	if pn.ID != id || pn.Bridge == "" || !pn.Subnet.IsValid() || !pn.Subnet.Addr().Is4() {
		t.Fatalf("EnsureNetwork = %+v", pn)
	}
	again, err := nw.EnsureNetwork(c, id, netip.Prefix{}, false, nil)
	must(t, "EnsureNetwork of a network that exists", err)
	if again != pn {
		t.Errorf("EnsureNetwork again = %+v, want %+v", again, pn)
	}
	if !listed(t, nw, id) {
		t.Errorf("Networks does not list %s", id)
	}

	// Another network never overlaps it, nor a subnet in taken; a fixed
	// subnet that is not free is refused, and leaves nothing.
	id2 := networkID(t, nw)
	if _, err := nw.EnsureNetwork(c, id2, pn.Subnet, true, nil); !errors.Is(err, errdefs.Exists) {
		t.Errorf("EnsureNetwork on another network's subnet: %v, want an errdefs.Exists error", err)
	}
	if listed(t, nw, id2) {
		t.Errorf("a refused EnsureNetwork left network %s", id2)
	}
	taken := netip.PrefixFrom(pn.Subnet.Addr(), pn.Subnet.Bits()-1).Masked()
	pn2, err := nw.EnsureNetwork(c, id2, netip.Prefix{}, false, []netip.Prefix{taken})
	must(t, "EnsureNetwork of a second network", err)
	if pn2.Subnet.Overlaps(pn.Subnet) || pn2.Subnet.Overlaps(taken) || pn2.Bridge == pn.Bridge {
		t.Errorf("second network %+v overlaps %+v or %s", pn2, pn, taken)
	}
	must(t, "RemoveNetwork", nw.RemoveNetwork(c, id2))

	// A network a running machine is attached to stays.
	if a, ok := p.(provider.Addresser); ok {
		name := machine(t, h)
		spec := h.Spec(t, name)
		n, err := a.AllocateAddress(c, &provider.Spec{Name: name, Network: provider.Network{Bridge: pn.Bridge}}, netip.Prefix{}, nil)
		must(t, "AllocateAddress on the network", err)
		if !pn.Subnet.Contains(n.Address.Addr()) || n.Gateway != pn.Subnet.Addr().Next() {
			t.Errorf("AllocateAddress on %+v = %+v", pn, n)
		}
		spec.Network = n
		must(t, "Create on the network", p.Create(c, spec))
		must(t, "Start on the network", p.Start(c, spec))
		if err := nw.RemoveNetwork(c, id); !errors.Is(err, errdefs.Exists) {
			t.Errorf("RemoveNetwork with a machine attached: %v, want an errdefs.Exists error", err)
		}
		if !listed(t, nw, id) {
			t.Errorf("RemoveNetwork with a machine attached removed it")
		}
		must(t, "Destroy", p.Destroy(c, name))
	}
	must(t, "RemoveNetwork", nw.RemoveNetwork(c, id))
	if listed(t, nw, id) {
		t.Errorf("Networks lists %s after RemoveNetwork", id)
	}
	must(t, "RemoveNetwork of an absent network", nw.RemoveNetwork(c, id))
}
