package lxc

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestAllocateSkipsUsedAndKeepsPreferred(t *testing.T) {
	p := &Provider{Path: t.TempDir()}
	_, subnet, _ := net.ParseCIDR("10.99.0.1/24")
	subnet.IP = net.ParseIP("10.99.0.1").To4()
	writeConfig := func(name, addr string) {
		dir := filepath.Join(p.Path, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config"), []byte("lxc.net.0.ipv4.address = "+addr+" 10.99.0.255\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("third", "10.99.0.253/24")
	taken := map[netip.Addr]bool{netip.MustParseAddr("10.99.0.254"): true}
	alloc := func(prefer string, live ...string) netip.Prefix {
		used := p.usedAddresses("nobr0", "me")
		for a := range taken {
			used[a] = true
		}
		var pfx netip.Prefix
		if prefer != "" {
			pfx = netip.MustParsePrefix(prefer)
		}
		got, err := allocate("nobr0", subnet, pfx, used, live)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := alloc(""); got.String() != "10.99.0.252/24" {
		t.Errorf("allocated %v, want 10.99.0.252/24", got)
	}
	// A MAC live on the bridge holds its address too.
	if got := alloc("", MACFor(netip.MustParseAddr("10.99.0.252"))); got.String() != "10.99.0.251/24" {
		t.Errorf("allocated %v past a live MAC, want 10.99.0.251/24", got)
	}
	// Its own old address is kept; someone else's is not.
	writeConfig("me", "10.99.0.200/24")
	if got := alloc("10.99.0.200/24"); got.String() != "10.99.0.200/24" {
		t.Errorf("preferred address not kept: %v", got)
	}
	if got := alloc("10.99.0.254/24"); got.String() == "10.99.0.254/24" {
		t.Errorf("took another machine's address")
	}
	if got := alloc("10.99.0.1/24"); got.String() == "10.99.0.1/24" {
		t.Errorf("took the gateway")
	}
}

func TestMACFor(t *testing.T) {
	if got := MACFor(netip.MustParseAddr("10.0.3.200")); got != "00:16:3e:00:03:c8" {
		t.Errorf("MACFor = %s", got)
	}
}
