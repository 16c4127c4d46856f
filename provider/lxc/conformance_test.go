package lxc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provider/providertest"
)

// TestConformance runs the provider contract's suite on real containers
// made from the test box (DEN_TEST_BOX), privileged and unprivileged, with
// the overlay store (a DEN_HOME in /var/tmp). It needs root; without root
// or a box it skips, except under CI=true, where that is a failure.
func TestConformance(t *testing.T) {
	boxFile := testenv.Box(t)
	home, err := os.MkdirTemp("/var/tmp", "den-lxc-conformance-")
	if err == nil {
		err = os.Chmod(home, 0o711) // unprivileged machines' roots pass through
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsutil.RemoveTree(home); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	conformance(t, boxFile, home, StoreOverlay)
}

// TestConformanceBtrfs runs the suite with the btrfs store: a DEN_HOME on
// a btrfs filesystem the test makes (a loop-mounted image).
func TestConformanceBtrfs(t *testing.T) {
	boxFile := testenv.Box(t)
	home := filepath.Join(testenv.Btrfs(t, 4<<30), "home")
	if err := os.Mkdir(home, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeTree(home); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	conformance(t, boxFile, home, StoreBtrfs)
}

func conformance(t *testing.T, boxFile, home, storage string) {
	f, err := os.Open(boxFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := box.NewStore(home).Add(context.Background(), "test/box", f, box.AddOptions{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(filepath.Join(home, "machines"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Storage != storage {
		t.Fatalf("a DEN_HOME in %s gets store %s, want %s", home, p.Storage, storage)
	}
	// The suite's networks are recorded apart from den's: a den running
	// meanwhile (another package's tests) removes the networks of its
	// records that no machine of its index is on.
	oldNetRoot := NetRoot
	NetRoot = filepath.Join(home, "net")
	t.Cleanup(func() { NetRoot = oldNetRoot })
	var n atomic.Int32
	prefix := fmt.Sprintf("den-conf-%d", time.Now().UnixNano()%100000)
	for _, unprivileged := range []bool{false, true} {
		t.Run(map[bool]string{false: "privileged", true: "unprivileged"}[unprivileged], func(t *testing.T) {
			providertest.Run(t, providertest.Harness{
				Provider:  p,
				RealGuest: true,
				Name:      func(t *testing.T) string { return fmt.Sprintf("%s-%d", prefix, n.Add(1)) },
				Spec: func(t *testing.T, name string) *provider.Spec {
					// No network: the suite checks the contract, not the bridge.
					spec := &provider.Spec{Name: name, Rootfs: b.Rootfs(), Hostname: "conformance", Memory: 256 << 20, CPUs: 1}
					if unprivileged {
						base, err := p.AllocateIDs(context.Background(), name, 0, nil)
						if err != nil {
							t.Fatal(err)
						}
						spec.IDBase, spec.GuestUID, spec.GuestGID = base, 1000, 1000
					}
					return spec
				},
			})
		})
	}
}
