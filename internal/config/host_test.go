package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testHost is the host the golden files in testdata/config/host describe:
// 8 GiB, 2 CPUs, lxcbr0, two boxes installed, 8080/tcp and 5353/udp held,
// a DEN_HOME that is not on btrfs.
func testHost() HostFacts {
	return HostFacts{
		Memory:  8 << 30,
		CPUs:    2,
		Addrs:   []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("10.0.3.1"), netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("fe80::1")},
		Bridges: []string{"lxcbr0"},
		PortHeld: func(proto, ip string, port int) (bool, string) {
			return proto == "tcp" && port == 8080 || proto == "udp" && port == 5353, ""
		},
		Boxes:     []string{"debian/bookworm", "acme/base"},
		Buildable: []string{"debian/bookworm", "debian/trixie"},
		Stores:    map[string]string{StorageOverlay: "", StorageBtrfs: "DEN_HOME must be on a btrfs filesystem for it, and /var/lib/den/machines is not"},
	}
}

// TestCheckHost loads each testdata/config/host/*.hcl (valid files) and
// compares CheckHost's diagnostics against testHost with the golden file;
// an empty golden file means the project fits the host.
func TestCheckHost(t *testing.T) {
	eachFixture(t, "host", func(t *testing.T, name string) {
		p, err := Load(name)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		var text []byte
		if err := CheckHost(p, testHost()); err != nil {
			text = diagText(t, name, err)
		}
		golden(t, strings.TrimSuffix(name, ".hcl")+".golden", text)
	})
}

// TestCheckHostSkips checks that unknown facts skip their checks, and that
// a project holding some machines only is checked for those.
func TestCheckHostSkips(t *testing.T) {
	t.Chdir(filepath.Join(fixtures(t), "host"))
	for _, name := range []string{"memory_cpus.hcl", "forwards.hcl", "bridges.hcl", "boxes.hcl", "storage.hcl"} {
		p, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckHost(p, HostFacts{}); err != nil {
			t.Errorf("%s with no facts: %v", name, err)
		}
	}
	p, _ := Load("memory_cpus.hcl")
	sub := *p
	sub.Machines = slices.DeleteFunc(slices.Clone(p.Machines), func(m *Machine) bool { return m.Name != "cache" })
	if err := CheckHost(&sub, testHost()); err != nil {
		t.Errorf("machine cache alone: %v", err)
	}
}

func TestHostFactsNow(t *testing.T) {
	h, err := HostFactsNow()
	if err != nil {
		t.Fatal(err)
	}
	if h.Memory < 64<<20 || h.CPUs < 1 || !slices.Contains(h.Addrs, netip.MustParseAddr("127.0.0.1")) || h.Bridges == nil || h.Boxes != nil {
		t.Errorf("HostFactsNow = %+v", h)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if held, _ := h.PortHeld("tcp", "127.0.0.1", port); !held {
		t.Errorf("a held port is not held")
	}
	if held, _ := h.PortHeld("tcp", "0.0.0.0", port); !held {
		t.Errorf("port %d held by this test is not reported held", port)
	}
	ln.Close()
	if held, _ := h.PortHeld("tcp", "127.0.0.1", port); held {
		t.Errorf("port %d reported held after it was closed", port)
	}
}

func TestClosest(t *testing.T) {
	names := []string{"debian/bookworm", "debian/trixie", "acme/base"}
	for _, tc := range []struct{ in, want string }{
		{"debian/bookworn", "debian/bookworm"},
		{"Debian/Bookworm", "debian/bookworm"},
		{"debian/trixy", "debian/trixie"},
		{"debian/bullseye", ""},
		{"x", ""},
	} {
		if got := closest(tc.in, names); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
