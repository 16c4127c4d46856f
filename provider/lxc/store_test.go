package lxc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/btrfs"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/provider"
)

// TestStoresOffBtrfs: on a DEN_HOME that is not on btrfs a machine may
// ask for the overlay store only; Create refuses the btrfs store, saying
// why, before it makes anything.
func TestStoresOffBtrfs(t *testing.T) {
	base := t.TempDir()
	if on, err := btrfs.Is(base); err != nil || on {
		testenv.Skip(t, fmt.Sprintf("%s is on btrfs (or cannot tell: %v)", base, err))
	}
	p, err := New(filepath.Join(base, "machines"))
	if err != nil {
		t.Fatal(err)
	}
	stores := p.Stores()
	if why, ok := stores[StoreOverlay]; !ok || why != "" {
		t.Errorf("overlay store: %q, %v; want it available", why, ok)
	}
	if why := stores[StoreBtrfs]; !strings.Contains(why, "DEN_HOME must be on a btrfs filesystem") || !strings.Contains(why, p.Path) {
		t.Errorf("btrfs store: %q; want why it is not available", why)
	}
	rootfs := filepath.Join(base, "box", "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		store string
		kind  errdefs.Kind
		msg   string
	}{
		{StoreBtrfs, errdefs.HostNotReady, "DEN_HOME must be on a btrfs filesystem"},
		{"zfs", errdefs.Invalid, `no store "zfs"`},
	} {
		spec := &provider.Spec{Name: "den-test-store-000000", Rootfs: rootfs, Hostname: "store", Storage: tc.store}
		err := p.Create(context.Background(), spec)
		if err == nil || errdefs.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Create with store %s: %v (kind %s); want a %s error saying %q", tc.store, err, errdefs.KindOf(err), tc.kind, tc.msg)
		}
		if entries, _ := os.ReadDir(p.Path); len(entries) > 0 {
			t.Errorf("a refused Create left %s in %s", entries[0].Name(), p.Path)
		}
	}
	if got, err := p.MachineStore(context.Background(), "den-test-store-000000"); got != "" || err != nil {
		t.Errorf("MachineStore of an absent machine = %q, %v", got, err)
	}
}
