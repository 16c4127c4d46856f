package lxc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/provider"
)

// stoppedMachine makes a container that LXC knows but that never ran: a
// config naming an overlay of a tiny box, and an upper layer with a file.
func stoppedMachine(t *testing.T) (*Provider, string, string) {
	t.Helper()
	p, base := rootProvider(t)
	lower := filepath.Join(base, "box", "rootfs")
	put(t, filepath.Join(lower, "etc/os-release"), "box")
	put(t, filepath.Join(lower, "etc/box-only"), "box only")
	const name = "den-test-snap-default-000000"
	put(t, filepath.Join(p.upper(name), "etc/machine-id"), "machine one")
	cfg := fmt.Sprintf("lxc.rootfs.path = overlay:%s:%s\nlxc.uts.name = snap\n", lower, p.upper(name))
	put(t, filepath.Join(p.dir(name), "config"), cfg)
	return p, name, lower
}

func put(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// files lists the regular files below dir with their content.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(list []provider.Snapshot) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

func TestSnapshotRoundTrip(t *testing.T) {
	p, name, _ := stoppedMachine(t)
	ctx := context.Background()
	if st, err := p.State(ctx, name); err != nil || st != provider.Stopped {
		t.Fatalf("fake machine state = %v, %v", st, err)
	}
	one, err := p.SaveSnapshot(ctx, name, "one", false)
	if err != nil {
		t.Fatal(err)
	}
	if one.Size <= 0 || one.Name != "one" || one.Created.IsZero() {
		t.Errorf("saved %+v", one)
	}
	want := files(t, p.upper(name))

	// The machine changes; a second snapshot.
	put(t, filepath.Join(p.upper(name), "etc/machine-id"), "changed")
	put(t, filepath.Join(p.upper(name), "home/den/new"), "new")
	if _, err := p.SaveSnapshot(ctx, name, "two", false); err != nil {
		t.Fatal(err)
	}
	changed := files(t, p.upper(name))
	if _, err := p.SaveSnapshot(ctx, name, "one", false); !errors.Is(err, provider.ErrSnapshotExists) {
		t.Errorf("saving over a snapshot: %v, want ErrSnapshotExists", err)
	}
	list, err := p.Snapshots(ctx, name)
	if err != nil || !slices.Equal(names(list), []string{"one", "two"}) {
		t.Fatalf("list = %v, %v", names(list), err)
	}

	// Restore brings the first state back exactly, and keeps the snapshot.
	if err := p.RestoreSnapshot(ctx, name, "one"); err != nil {
		t.Fatal(err)
	}
	if got := files(t, p.upper(name)); !maps(got, want) {
		t.Errorf("after restore: %v, want %v", got, want)
	}
	if _, err := os.Lstat(p.restoreTemp(name)); !os.IsNotExist(err) {
		t.Errorf("restore left %s: %v", p.restoreTemp(name), err)
	}
	if err := p.RestoreSnapshot(ctx, name, "two"); err != nil {
		t.Fatal(err)
	}
	if got := files(t, p.upper(name)); !maps(got, changed) {
		t.Errorf("after restoring two: %v, want %v", got, changed)
	}

	// Replace swaps the snapshot's content.
	if _, err := p.SaveSnapshot(ctx, name, "one", true); err != nil {
		t.Fatal(err)
	}
	if got := files(t, filepath.Join(p.snapshot(name, "one"), "delta0")); !maps(got, changed) {
		t.Errorf("replaced snapshot holds %v", got)
	}

	// Delete, then it is gone.
	if err := p.DeleteSnapshot(ctx, name, "two"); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteSnapshot(ctx, name, "two"); !errors.Is(err, provider.ErrSnapshotNotFound) {
		t.Errorf("second delete: %v, want ErrSnapshotNotFound", err)
	}
	if err := p.RestoreSnapshot(ctx, name, "two"); !errors.Is(err, provider.ErrSnapshotNotFound) {
		t.Errorf("restore of a deleted snapshot: %v, want ErrSnapshotNotFound", err)
	}
	if list, err := p.Snapshots(ctx, name); err != nil || !slices.Equal(names(list), []string{"one"}) {
		t.Errorf("after delete: %v, %v", names(list), err)
	}

	// Destroy takes the snapshots with the machine.
	if err := p.Destroy(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p.dir(name)); !os.IsNotExist(err) {
		t.Errorf("machine folder after destroy: %v", err)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSnapshotSweepsLeftovers(t *testing.T) {
	p, name, _ := stoppedMachine(t)
	ctx := context.Background()
	// What a killed den leaves: a save's work folder (pid 2^22+1 never
	// exists on Linux) and a restore's copy.
	dead := filepath.Join(p.snapshots(name), ".tmp-4194305-1-0")
	put(t, filepath.Join(dead, "delta0", "half"), "half")
	put(t, filepath.Join(p.restoreTemp(name), "half"), "half")
	if list, err := p.Snapshots(ctx, name); err != nil || len(list) != 0 {
		t.Errorf("a half snapshot is listed: %v, %v", names(list), err)
	}
	if _, err := p.SaveSnapshot(ctx, name, "s", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); !os.IsNotExist(err) {
		t.Errorf("dead work folder still there: %v", err)
	}
	if err := p.RestoreSnapshot(ctx, name, "s"); err != nil {
		t.Fatal(err)
	}
	if got := files(t, p.upper(name)); got["half"] != "" {
		t.Errorf("restore took the leftover copy: %v", got)
	}
	entries, err := os.ReadDir(p.snapshots(name))
	if err != nil || len(entries) != 1 || entries[0].Name() != "s" {
		t.Errorf("snapshots folder holds %v (%v)", entries, err)
	}
}

func TestSnapshotRefusals(t *testing.T) {
	p, name, _ := stoppedMachine(t)
	ctx := context.Background()
	for _, bad := range []string{"../x", "", ".tmp-1-2-3", "a/b"} {
		if _, err := p.SaveSnapshot(ctx, name, bad, false); err == nil || !strings.Contains(err.Error(), "invalid snapshot name") {
			t.Errorf("save %q: %v", bad, err)
		}
		if err := p.RestoreSnapshot(ctx, name, bad); err == nil {
			t.Errorf("restore %q succeeded", bad)
		}
		if err := p.DeleteSnapshot(ctx, name, bad); err == nil {
			t.Errorf("delete %q succeeded", bad)
		}
	}
	if _, err := p.SaveSnapshot(ctx, "den-test-absent", "s", false); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("save on a missing machine: %v", err)
	}
	if list, err := p.Snapshots(ctx, "den-test-absent"); err != nil || len(list) != 0 {
		t.Errorf("list on a missing machine: %v %v", list, err)
	}
}

func TestExportRootfs(t *testing.T) {
	p, name, lower := stoppedMachine(t)
	ctx := context.Background()
	upperBefore, lowerBefore := files(t, p.upper(name)), files(t, lower)
	var seen map[string]string
	err := p.ExportRootfs(ctx, name, func(rootfs string) error {
		seen = files(t, rootfs)
		if err := os.Remove(filepath.Join(rootfs, "etc/machine-id")); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(rootfs, "etc/box-only")); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(rootfs, "etc/added"), []byte("x"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"etc/os-release": "box", "etc/box-only": "box only", "etc/machine-id": "machine one"}
	if !maps(seen, want) {
		t.Errorf("export showed %v, want box and machine merged %v", seen, want)
	}
	if m, err := fsutil.MountsUnder(p.dir(name)); err != nil || len(m) != 0 {
		t.Errorf("still mounted after export: %v (%v)", m, err)
	}
	if _, err := os.Lstat(filepath.Join(p.dir(name), "export")); !os.IsNotExist(err) {
		t.Errorf("export folder left behind: %v", err)
	}
	if got := files(t, p.upper(name)); !maps(got, upperBefore) {
		t.Errorf("export changed the machine's layer: %v", got)
	}
	if got := files(t, lower); !maps(got, lowerBefore) {
		t.Errorf("export changed the box: %v", got)
	}
	// A failing fn still unmounts.
	err = p.ExportRootfs(ctx, name, func(string) error { return errors.New("boom") })
	if err == nil || err.Error() != "boom" {
		t.Errorf("fn's error: %v", err)
	}
	if m, err := fsutil.MountsUnder(p.dir(name)); err != nil || len(m) != 0 {
		t.Errorf("still mounted after a failed export: %v (%v)", m, err)
	}
	if err := p.Destroy(ctx, name); err != nil {
		t.Errorf("destroy after export: %v", err)
	}
}

// TestKilledCreate: a den killed in Create leaves the machine's folder
// without a config and its prepare overlay mounted. The next Create
// clears it and succeeds; Destroy unmounts such an overlay too.
func TestKilledCreate(t *testing.T) {
	p, name, lower := stoppedMachine(t)
	ctx := context.Background()
	leftover := func(name string) {
		t.Helper()
		merged := filepath.Join(p.dir(name), "prep", "merged")
		if err := os.MkdirAll(merged, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "none", merged).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v %s", err, out)
		}
	}
	// Destroy of a machine with a leftover overlay.
	leftover(name)
	if err := p.Destroy(ctx, name); err != nil {
		t.Fatalf("Destroy with a leftover overlay: %v", err)
	}
	if _, err := os.Lstat(p.dir(name)); !os.IsNotExist(err) {
		t.Errorf("machine folder still there: %v", err)
	}
	// Create over what a killed Create left.
	const other = "den-test-killed-default-000000"
	put(t, filepath.Join(p.upper(other), "half"), "half")
	leftover(other)
	if st, _ := p.State(ctx, other); st != provider.NotCreated {
		t.Errorf("a half-made machine is %v, want not created", st)
	}
	spec := &provider.Spec{Name: other, Rootfs: lower, Hostname: "killed", Prepare: func(ctx context.Context, fs provider.GuestFS) error { return nil }}
	if err := p.Create(ctx, spec); err != nil {
		t.Fatalf("Create after a killed Create: %v", err)
	}
	if got := files(t, p.upper(other)); got["half"] != "" {
		t.Errorf("the new machine kept the killed one's layer: %v", got)
	}
	if mounts, _ := fsutil.MountsUnder(p.dir(other)); len(mounts) != 0 {
		t.Errorf("mounts left: %v", mounts)
	}
	if err := p.Destroy(ctx, other); err != nil {
		t.Fatal(err)
	}
}
