package machine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
)

// IndexEntry is one machine in the host-wide index (global-status).
type IndexEntry struct {
	Container  string    `json:"container"`
	Project    string    `json:"project"`
	Machine    string    `json:"machine"`
	Address    string    `json:"address"`
	Box        string    `json:"box"`
	BoxVersion string    `json:"box_version,omitempty"`
	Created    time.Time `json:"created"`
}

// Index is the host-wide list of den machines, kept under DEN_HOME.
type Index struct {
	home layout.Home
	lk   *lock.Lock
}

// OpenIndex locks the index for a read-modify-write; Close unlocks.
func OpenIndex(ctx context.Context, home layout.Home) (*Index, error) {
	if err := os.MkdirAll(home.Path(), 0o711); err != nil {
		return nil, err
	}
	lk, err := lock.Acquire(ctx, home.IndexLock(), "den index", 30*time.Second)
	if err != nil {
		return nil, err
	}
	return &Index{home: home, lk: lk}, nil
}

// Close releases the index lock.
func (ix *Index) Close() error { return ix.lk.Unlock() }

// ReadIndex reads the index without locking (for listings).
func ReadIndex(home layout.Home) ([]IndexEntry, error) {
	b, err := os.ReadFile(home.Index())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var entries []IndexEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("index %s is damaged: %w", home.Index(), err)
	}
	return entries, nil
}

// Put adds or replaces the entry for e.Container.
func (ix *Index) Put(e IndexEntry) error {
	entries, err := ReadIndex(ix.home)
	if err != nil {
		return err
	}
	out := entries[:0]
	for _, old := range entries {
		if old.Container != e.Container {
			out = append(out, old)
		}
	}
	out = append(out, e)
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return writeJSON(ix.home.Index(), out, 0o644)
}

// Remove drops the entry for container.
func (ix *Index) Remove(container string) error {
	entries, err := ReadIndex(ix.home)
	if err != nil {
		return err
	}
	out := entries[:0]
	for _, old := range entries {
		if old.Container != container {
			out = append(out, old)
		}
	}
	return writeJSON(ix.home.Index(), out, 0o644)
}

// usedAddresses lists the addresses that a new machine must not take: the
// ones den gave its machines (index and container configs), dnsmasq's
// leases on the bridge, and the host's neighbour table.
// self is the container asking: its own config and entries do not count, nor
// leases and neighbour entries with the MAC den derives for the address.
func (ix *Index) usedAddresses(bridge, self string) map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	add := func(s, mac string) {
		s, _, _ = strings.Cut(strings.TrimSpace(s), "/")
		a, err := netip.ParseAddr(s)
		if err != nil || (mac != "" && a.Is4() && strings.EqualFold(mac, MACFor(a))) {
			return
		}
		used[a] = true
	}
	entries, _ := ReadIndex(ix.home)
	for _, e := range entries {
		if e.Container != self {
			add(e.Address, "")
		}
	}
	// The machines of the host's other den homes.
	for _, h := range otherHomes(ix.home) {
		others, _ := ReadIndex(h)
		for _, e := range others {
			add(e.Address, "")
		}
	}
	configs, _ := filepath.Glob(filepath.Join(ix.home.Machines(), "*", "config"))
	for _, c := range configs {
		if filepath.Base(filepath.Dir(c)) == self {
			continue
		}
		eachLine(c, func(l string) {
			if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "lxc.net.0.ipv4.address" {
				f := strings.Fields(v)
				if len(f) > 0 {
					add(f[0], "")
				}
			}
		})
	}
	eachLine("/var/lib/misc/dnsmasq."+bridge+".leases", func(l string) {
		if f := strings.Fields(l); len(f) >= 3 {
			add(f[2], f[1])
		}
	})
	eachLine("/proc/net/arp", func(l string) {
		f := strings.Fields(l)
		if len(f) >= 6 && f[5] == bridge && f[3] != "00:00:00:00:00:00" {
			add(f[0], f[3])
		}
	})
	return used
}

// bridgeMACs lists the MACs the bridge has learned on its ports (not its
// own), from /sys/class/net/BRIDGE/brforward: 16-byte entries of MAC,
// port number, is_local, ageing timer.
func bridgeMACs(bridge string) []string {
	data, err := os.ReadFile(filepath.Join("/sys/class/net", bridge, "brforward"))
	if err != nil {
		return nil
	}
	var out []string
	for i := 0; i+16 <= len(data); i += 16 {
		e := data[i : i+16]
		if e[7] != 0 { // is_local
			continue
		}
		out = append(out, net.HardwareAddr(e[:6]).String())
	}
	return out
}

func eachLine(path string, fn func(string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fn(sc.Text())
	}
}

// Host-wide files: every den home that holds addresses registers in
// homesFile, and allocations on the host take addressLock, so two homes
// (a developer's and a test run's) never hand out one address twice.
var (
	homesFile   = "/run/den/homes"
	addressLock = "/run/lock/den-addresses.lock"
)

// lockAddresses takes the host-wide allocation lock and registers home.
func lockAddresses(ctx context.Context, home layout.Home) (*lock.Lock, error) {
	for _, d := range []string{filepath.Dir(addressLock), filepath.Dir(homesFile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	lk, err := lock.Acquire(ctx, addressLock, "den address allocation", 30*time.Second)
	if err != nil {
		return nil, err
	}
	homes := readHomes()
	if !slices.Contains(homes, home.Path()) {
		homes = append(homes, home.Path())
		if err := os.WriteFile(homesFile, []byte(strings.Join(homes, "\n")+"\n"), 0o644); err != nil {
			lk.Unlock()
			return nil, fmt.Errorf("register den home in %s: %w", homesFile, err)
		}
	}
	return lk, nil
}

// readHomes lists the registered den homes that still exist.
func readHomes() []string {
	var homes []string
	eachLine(homesFile, func(l string) {
		if l = strings.TrimSpace(l); filepath.IsAbs(l) && !slices.Contains(homes, l) {
			if _, err := os.Stat(l); err == nil {
				homes = append(homes, l)
			}
		}
	})
	return homes
}

// otherHomes lists the registered den homes other than home.
func otherHomes(home layout.Home) []layout.Home {
	var out []layout.Home
	for _, h := range readHomes() {
		if h != home.Path() {
			out = append(out, layout.Home(h))
		}
	}
	return out
}

// Allocate picks a free address on the bridge's subnet, from the top down
// (dnsmasq's leases are checked, and a running machine answers dnsmasq's
// ping, so dnsmasq will not hand it out). prefer is kept when still free.
func (ix *Index) Allocate(bridge, self string, subnet *net.IPNet, prefer string) (netip.Prefix, error) {
	used := ix.usedAddresses(bridge, self)
	// A live interface on the bridge with the MAC den derives for an address
	// is a machine of another den home (or one den lost track of) that uses
	// it: the bridge's forwarding table shows it while it runs.
	live := map[string]bool{}
	for _, mac := range bridgeMACs(bridge) {
		live[mac] = true
	}
	taken := func(a netip.Addr) bool { return used[a] || live[MACFor(a)] }
	gw, ok := netip.AddrFromSlice(subnet.IP.To4())
	if !ok {
		return netip.Prefix{}, fmt.Errorf("bridge %q has no IPv4 address", bridge)
	}
	bits, _ := subnet.Mask.Size()
	pfx := netip.PrefixFrom(gw, bits).Masked()
	if p, err := netip.ParsePrefix(prefer); err == nil && pfx.Contains(p.Addr()) && !taken(p.Addr()) && p.Addr() != gw {
		return p, nil
	}
	used[gw] = true
	// Walk down from the last host address of the subnet.
	last := pfx.Addr().As4()
	hostBits := 32 - bits
	if hostBits < 2 {
		return netip.Prefix{}, fmt.Errorf("bridge %q subnet %v is too small", bridge, pfx)
	}
	n := uint32(1)<<hostBits - 2 // usable hosts
	base := uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])
	for i := n; i >= 1; i-- {
		v := base + i
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if !taken(a) {
			return netip.PrefixFrom(a, bits), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free address left on bridge %q (%v)", bridge, pfx)
}

// MACFor derives a stable MAC from the address (LXC's 00:16:3e prefix), so
// an address never comes back with another MAC and a stale neighbour entry.
func MACFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", b[1], b[2], b[3])
}
