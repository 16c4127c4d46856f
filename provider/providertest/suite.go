// Package providertest is the conformance suite of den's provider
// contract (provider.Provider and its optional abilities): one set of
// tests that every provider passes — the in-memory fake in every go test,
// LXC and LXD end to end on a real host.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/den-dev/den/provider"
)

// Harness is what the suite needs from a provider's test.
type Harness struct {
	Provider provider.Provider
	// Spec returns the spec of a new machine called name: a box rootfs it
	// can boot, limits, no synced folders. The suite sets Prepare.
	Spec func(t *testing.T, name string) *provider.Spec
	// Name returns a machine name unique to this run (the suite destroys
	// every machine it makes, also on failure).
	Name func(t *testing.T) string
	// RealGuest says the machines run the box's own programs (a real
	// engine; the fake only records commands): the suite then runs
	// commands in them through Execer and reads their limits inside.
	RealGuest bool
}

const marker = "etc/den-conformance"

// writeMarker is a Prepare that writes v into the marker file.
func writeMarker(v string) func(context.Context, provider.GuestFS) error {
	return func(ctx context.Context, g provider.GuestFS) error {
		return g.WriteFile(marker, []byte(v), 0o644, 0, 0)
	}
}

// readMarker is a Prepare that reports the marker file's content in *got.
func readMarker(got *string) func(context.Context, provider.GuestFS) error {
	return func(ctx context.Context, g provider.GuestFS) error {
		b, err := g.ReadFile(marker)
		if errors.Is(err, fs.ErrNotExist) {
			*got = "(none)"
			return nil
		}
		*got = string(b)
		return err
	}
}

// Run runs the whole suite against h.
func Run(t *testing.T, h Harness) {
	t.Run("AbsentMachine", func(t *testing.T) { testAbsent(t, h) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, h) })
	t.Run("FailedCreateLeavesNothing", func(t *testing.T) { testFailedCreate(t, h) })
	t.Run("GuestFSStaysInside", func(t *testing.T) { testGuestFS(t, h) })
	if _, ok := h.Provider.(provider.Snapshotter); ok {
		t.Run("Snapshots", func(t *testing.T) { testSnapshots(t, h) })
	}
	if _, ok := h.Provider.(provider.Execer); ok && h.RealGuest {
		t.Run("Exec", func(t *testing.T) { testExec(t, h) })
	}
	if _, ok := h.Provider.(provider.Limiter); ok {
		t.Run("Limits", func(t *testing.T) { testLimits(t, h) })
	}
	if _, ok := h.Provider.(provider.Networker); ok {
		t.Run("Networks", func(t *testing.T) { testNetworks(t, h) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantState(t *testing.T, p provider.Provider, name string, want provider.State) {
	t.Helper()
	got, err := p.State(context.Background(), name)
	if err != nil {
		t.Fatalf("State(%s): %v", name, err)
	}
	if got != want {
		t.Fatalf("State(%s) = %s, want %s", name, got, want)
	}
}

// machine makes a name and destroys that machine when the test ends.
func machine(t *testing.T, h Harness) string {
	name := h.Name(t)
	t.Cleanup(func() {
		if err := h.Provider.Destroy(context.Background(), name); err != nil {
			t.Errorf("cleanup: Destroy(%s): %v", name, err)
		}
	})
	return name
}

func testAbsent(t *testing.T, h Harness) {
	p, c := h.Provider, ctx(t)
	name := h.Name(t)
	wantState(t, p, name, provider.NotCreated)
	must(t, "Stop of an absent machine", p.Stop(c, name, true, 0))
	must(t, "Destroy of an absent machine", p.Destroy(c, name))
	info, err := p.Inspect(c, name)
	must(t, "Inspect of an absent machine", err)
	if info.State != provider.NotCreated {
		t.Errorf("Inspect(absent).State = %s", info.State)
	}
	if p.Name() == "" || p.Describe() == "" {
		t.Errorf("Name %q, Describe %q: both must say something", p.Name(), p.Describe())
	}
	if h := p.Hints(name); h.Shell == "" || h.Remove == "" {
		t.Errorf("Hints(%s) = %+v: Shell and Remove must name commands", name, h)
	}
}

func testLifecycle(t *testing.T, h Harness) {
	p, c := h.Provider, ctx(t)
	name := machine(t, h)
	spec := h.Spec(t, name)
	spec.Prepare = writeMarker("created")
	must(t, "Create", p.Create(c, spec))
	wantState(t, p, name, provider.Stopped)
	if err := p.Create(c, spec); err == nil {
		t.Fatal("a second Create of the same machine succeeded")
	}
	wantState(t, p, name, provider.Stopped)

	// Start runs Prepare when set: it sees what Create's Prepare wrote.
	var got string
	spec.Prepare = readMarker(&got)
	must(t, "Start", p.Start(c, spec))
	if got != "created" {
		t.Errorf("Start's Prepare read %q, want what Create's wrote", got)
	}
	wantState(t, p, name, provider.Running)
	spec.Prepare = nil
	must(t, "Start of a running machine", p.Start(c, spec))
	info, err := p.Inspect(c, name)
	must(t, "Inspect", err)
	if info.State != provider.Running {
		t.Errorf("Inspect.State = %s, want running", info.State)
	}
	if spec.Memory > 0 && info.MemoryLimit != spec.Memory {
		t.Errorf("memory limit in force %d, want %d", info.MemoryLimit, spec.Memory)
	}

	must(t, "Freeze", p.Freeze(c, name))
	wantState(t, p, name, provider.Frozen)
	must(t, "Unfreeze", p.Unfreeze(c, name))
	wantState(t, p, name, provider.Running)

	must(t, "Stop", p.Stop(c, name, true, 0))
	wantState(t, p, name, provider.Stopped)
	must(t, "Stop of a stopped machine", p.Stop(c, name, true, 0))

	// A frozen machine stops too (it is thawed first).
	must(t, "Start again", p.Start(c, spec))
	must(t, "Freeze again", p.Freeze(c, name))
	must(t, "Stop of a frozen machine", p.Stop(c, name, true, 0))
	wantState(t, p, name, provider.Stopped)

	// Destroy of a running machine stops it first.
	must(t, "Start before destroy", p.Start(c, spec))
	must(t, "Destroy", p.Destroy(c, name))
	wantState(t, p, name, provider.NotCreated)
	must(t, "Destroy again", p.Destroy(c, name))
}

func testFailedCreate(t *testing.T, h Harness) {
	p, c := h.Provider, ctx(t)
	name := machine(t, h)
	spec := h.Spec(t, name)
	boom := errors.New("prepare failed on purpose")
	spec.Prepare = func(context.Context, provider.GuestFS) error { return boom }
	if err := p.Create(c, spec); !errors.Is(err, boom) {
		t.Fatalf("Create with a failing Prepare = %v, want that failure", err)
	}
	wantState(t, p, name, provider.NotCreated)
	// Nothing is left in the way of the next Create.
	spec.Prepare = writeMarker("second")
	must(t, "Create after a failed one", p.Create(c, spec))
	wantState(t, p, name, provider.Stopped)
}

func testGuestFS(t *testing.T, h Harness) {
	p, c := h.Provider, ctx(t)
	name := machine(t, h)
	spec := h.Spec(t, name)
	spec.Prepare = func(ctx context.Context, g provider.GuestFS) error {
		if _, err := g.ReadFile("../../../../../../etc/passwd"); err == nil {
			return fmt.Errorf("GuestFS read a path that leaves the machine")
		}
		if err := g.WriteFile("../escaped", []byte("x"), 0o644, 0, 0); err == nil {
			return fmt.Errorf("GuestFS wrote a path that leaves the machine")
		}
		if err := g.MkdirAll("var/den-conformance/a/b", 0o755); err != nil {
			return err
		}
		if err := g.WriteFile("var/den-conformance/a/b/f", []byte("y"), 0o600, 0, 0); err != nil {
			return err
		}
		fi, err := g.Lstat("var/den-conformance/a/b/f")
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 {
			return fmt.Errorf("WriteFile gave mode %v, want 0600", fi.Mode().Perm())
		}
		if _, _, ok := provider.Owner(fi); !ok {
			return fmt.Errorf("Owner cannot read the owner of a GuestFS file")
		}
		entries, err := g.ReadDir("var/den-conformance/a/b")
		if err != nil || len(entries) != 1 {
			return fmt.Errorf("ReadDir = %v, %v", entries, err)
		}
		return g.Remove("var/den-conformance/a/b/f")
	}
	must(t, "Create with a GuestFS exercise", p.Create(c, spec))
}

func testSnapshots(t *testing.T, h Harness) {
	p, c := h.Provider, ctx(t)
	s := p.(provider.Snapshotter)
	name := machine(t, h)
	spec := h.Spec(t, name)
	spec.Prepare = writeMarker("v1")
	must(t, "Create", p.Create(c, spec))

	if _, err := s.SaveSnapshot(c, name, "../bad", false); err == nil {
		t.Error("SaveSnapshot took a name with path elements")
	}
	snap, err := s.SaveSnapshot(c, name, "one", false)
	must(t, "SaveSnapshot", err)
	if snap.Name != "one" || snap.Created.IsZero() {
		t.Errorf("SaveSnapshot = %+v", snap)
	}
	if _, err := s.SaveSnapshot(c, name, "one", false); !errors.Is(err, provider.ErrSnapshotExists) {
		t.Errorf("SaveSnapshot over an existing one = %v, want ErrSnapshotExists", err)
	}
	_, err = s.SaveSnapshot(c, name, "one", true)
	must(t, "SaveSnapshot with replace", err)

	// Change the machine (as a boot would), then go back.
	spec.Prepare = writeMarker("v2")
	must(t, "Start", p.Start(c, spec))
	// A running machine is saved as it is, and keeps running.
	_, err = s.SaveSnapshot(c, name, "running", false)
	must(t, "SaveSnapshot of a running machine", err)
	wantState(t, p, name, provider.Running)
	if err := s.RestoreSnapshot(c, name, "one"); err == nil {
		t.Error("RestoreSnapshot of a running machine succeeded")
	}
	must(t, "Stop", p.Stop(c, name, true, 0))
	must(t, "RestoreSnapshot", s.RestoreSnapshot(c, name, "one"))
	var got string
	spec.Prepare = readMarker(&got)
	must(t, "Start after restore", p.Start(c, spec))
	if got != "v1" {
		t.Errorf("after restore the machine holds %q, want v1", got)
	}
	must(t, "Stop", p.Stop(c, name, true, 0))

	list, err := s.Snapshots(c, name)
	must(t, "Snapshots", err)
	if len(list) != 2 || list[0].Name != "one" || list[1].Name != "running" {
		t.Errorf("Snapshots = %+v, want one, running (oldest first)", list)
	}
	must(t, "DeleteSnapshot", s.DeleteSnapshot(c, name, "one"))
	if err := s.DeleteSnapshot(c, name, "one"); !errors.Is(err, provider.ErrSnapshotNotFound) {
		t.Errorf("DeleteSnapshot of a deleted one = %v, want ErrSnapshotNotFound", err)
	}
	if err := s.RestoreSnapshot(c, name, "one"); err == nil {
		t.Error("RestoreSnapshot of a deleted snapshot succeeded")
	}
	must(t, "Destroy", p.Destroy(c, name))
	if list, err := s.Snapshots(c, name); err != nil || len(list) != 0 {
		t.Errorf("Snapshots after Destroy = %v, %v; want none", list, err)
	}
}
