package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
)

// IndexEntry is one machine in the host-wide index (global-status).
type IndexEntry struct {
	Container        string    `json:"container"`
	Provider         string    `json:"provider,omitempty"` // "" is the default provider (lxc)
	Project          string    `json:"project"`
	Machine          string    `json:"machine"`
	Address          string    `json:"address"`
	Bridge           string    `json:"bridge,omitempty"` // what the machine attaches to (a project network's bridge)
	Box              string    `json:"box"`
	BoxVersion       string    `json:"box_version,omitempty"`
	Created          time.Time `json:"created"`
	AutostartSetting           // as of the machine's last up or den autostart
	// IDBase is the first host id of the machine's id range (0: none,
	// the machine is privileged).
	IDBase uint32 `json:"id_base,omitempty"`
}

// Index is the list of den machines of one DEN_HOME, kept under it.
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

// maxIndex bounds the index den reads (thousands of machines fit).
const maxIndex = 64 << 20

// ReadIndex reads the index without locking (for listings). Entries whose
// container name den could not have made are left out: their names would
// become paths and provider calls.
func ReadIndex(home layout.Home) ([]IndexEntry, error) {
	b, err := fsutil.ReadRegular(home.Index(), maxIndex)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var entries []IndexEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, errdefs.Newf(errdefs.Tampered, "index %s is damaged: %w", home.Index(), err)
	}
	out := entries[:0]
	for _, e := range entries {
		if validContainer(e.Container) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Put adds or replaces the entry for e.Container.
func (ix *Index) Put(e IndexEntry) error {
	entries, err := ReadIndex(ix.home)
	if err != nil {
		return err
	}
	out := slices.DeleteFunc(entries, func(old IndexEntry) bool { return old.Container == e.Container })
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
	out := slices.DeleteFunc(entries, func(old IndexEntry) bool { return old.Container == container })
	return writeJSON(ix.home.Index(), out, 0o644)
}

// takenAddresses lists the addresses den gave machines in this home
// (but self) and in every other registered den home of the host.
func (ix *Index) takenAddresses(self string) []netip.Addr {
	var out []netip.Addr
	add := func(e IndexEntry) {
		s, _, _ := strings.Cut(e.Address, "/")
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	entries, _ := ReadIndex(ix.home)
	for _, e := range entries {
		if e.Container != self {
			add(e)
		}
	}
	for _, h := range otherHomes(ix.home) {
		others, _ := ReadIndex(h)
		for _, e := range others {
			add(e)
		}
	}
	return out
}

// takenIDs lists the id ranges den gave machines in this home (but self)
// and in every other registered den home of the host.
func (ix *Index) takenIDs(self string) []uint32 {
	var out []uint32
	entries, _ := ReadIndex(ix.home)
	for _, e := range entries {
		if e.Container != self && e.IDBase != 0 {
			out = append(out, e.IDBase)
		}
	}
	for _, h := range otherHomes(ix.home) {
		others, _ := ReadIndex(h)
		for _, e := range others {
			if e.IDBase != 0 {
				out = append(out, e.IDBase)
			}
		}
	}
	return out
}

// Host-wide files: every den home that holds addresses or id ranges
// registers in homesFile, and allocations on the host (of both) take
// addressLock, so two homes (a developer's and a test run's) never hand
// out one address or one id range twice.
var (
	homesFile   = "/run/den/homes"
	addressLock = "/run/lock/den-addresses.lock"
)

// allocating runs f with the host-wide allocation lock held (address,
// id range and network allocations take it; what says which, for whoever
// waits on it), home registered, and the index open.
func (e *Env) allocating(ctx context.Context, what string, f func(ix *Index) error) error {
	hostLock, err := lockHost(ctx, e.Home, addressLock, what)
	if err != nil {
		return err
	}
	defer hostLock.Unlock()
	ix, err := OpenIndex(ctx, e.Home)
	if err != nil {
		return err
	}
	defer ix.Close()
	return f(ix)
}

// lockHost takes the host-wide lock at path and registers home.
func lockHost(ctx context.Context, home layout.Home, path, what string) (*lock.Lock, error) {
	for _, d := range []string{filepath.Dir(path), filepath.Dir(homesFile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	lk, err := lock.Acquire(ctx, path, what, 30*time.Second)
	if err != nil {
		return nil, err
	}
	homes := readHomes()
	if !slices.Contains(homes, home.Path()) {
		homes = append(homes, home.Path())
		if err := fsutil.WriteFileAtomic(homesFile, []byte(strings.Join(homes, "\n")+"\n"), 0o644); err != nil {
			lk.Unlock()
			return nil, fmt.Errorf("register den home in %s: %w", homesFile, err)
		}
	}
	return lk, nil
}

// readHomes lists the registered den homes that still exist.
func readHomes() []string {
	var homes []string
	b, _ := fsutil.ReadRegular(homesFile, 1<<20)
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); filepath.IsAbs(l) && !slices.Contains(homes, l) {
			if _, err := os.Stat(l); err == nil {
				homes = append(homes, l)
			}
		}
	}
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
