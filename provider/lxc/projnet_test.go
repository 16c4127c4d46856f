package lxc

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/provider"
)

func TestBridgeName(t *testing.T) {
	br := bridgeName("0123456789abcdef")
	if br != "den-0123456789a" || len(br) > 15 {
		t.Errorf("bridgeName = %q (%d characters; an interface name has at most 15)", br, len(br))
	}
	if m := bridgeMAC("0123456789abcdef"); !strings.HasPrefix(m, "02:de:") || m == bridgeMAC("0123456789abcdee") {
		t.Errorf("bridgeMAC = %q: a fixed, locally administered MAC of its own per network", m)
	}
}

func TestNFTScript(t *testing.T) {
	s := nftScript(provider.ProjectNetwork{Bridge: "den-0123456789a", Subnet: netip.MustParsePrefix("10.166.3.0/24")})
	for _, want := range []string{
		"table inet den-0123456789a {}\ndelete table inet den-0123456789a\n", // replaced whole
		`iifname "den-0123456789a" oifname "den-0123456789a" accept`,
		`oifname "den-0123456789a" ct state established,related accept`,
		`oifname "den-0123456789a" counter drop`,
		"ip saddr 10.166.3.0/24 ip daddr != 10.166.3.0/24 counter masquerade",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("nft script lacks %q:\n%s", want, s)
		}
	}
}

func TestPickSubnet(t *testing.T) {
	NetRoot = t.TempDir()
	id := "0123456789abcdef"
	s, err := pickSubnet(id, netip.Prefix{}, false, nil, bridgeName(id))
	if err != nil || !NetPool.Contains(s.Addr()) || s.Bits() != 24 {
		t.Fatalf("pickSubnet = %v, %v: a /24 of %s", s, err, NetPool)
	}
	if again, _ := pickSubnet(id, netip.Prefix{}, false, nil, bridgeName(id)); again != s {
		t.Errorf("pickSubnet is not stable for one project: %v, then %v", s, again)
	}
	// A subnet den's machines have is skipped; a fixed one is refused.
	other, err := pickSubnet(id, netip.Prefix{}, false, []netip.Prefix{s}, bridgeName(id))
	if err != nil || other.Overlaps(s) {
		t.Errorf("with %v taken: %v, %v", s, other, err)
	}
	if _, err := pickSubnet(id, s, true, []netip.Prefix{s}, bridgeName(id)); !errors.Is(err, errdefs.Exists) {
		t.Errorf("a fixed subnet that is taken: %v", err)
	}
	if _, err := pickSubnet(id, netip.Prefix{}, false, []netip.Prefix{NetPool}, bridgeName(id)); err == nil {
		t.Error("a whole pool taken: no error")
	}
	// A network of the host is never picked.
	for _, h := range hostNetworks("") {
		if h.prefix.Bits() < 16 || h.prefix.Bits() > 29 {
			continue
		}
		if _, err := pickSubnet(id, h.prefix, true, nil, bridgeName(id)); !errors.Is(err, errdefs.Exists) || !strings.Contains(err.Error(), h.iface) {
			t.Errorf("the host's %v on %s: %v", h.prefix, h.iface, err)
		}
		break
	}
}
