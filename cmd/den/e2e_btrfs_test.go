package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/den-dev/den/internal/btrfs"
	"github.com/den-dev/den/internal/testenv"
)

// denIn runs den in dir with DEN_HOME home and fails the test when it
// fails.
func denIn(t *testing.T, home, dir string, args ...string) string {
	t.Helper()
	cmd := denCmd(dir, args...)
	cmd.Env = append(os.Environ(), "DEN_HOME="+home)
	r := runCmd(t, cmd, "")
	if r.code != 0 {
		t.Fatalf("den %v: exit status %d\n%s", args, r.code, r.err)
	}
	return r.out
}

// subvolumes lists the subvolumes of the btrfs filesystem at mnt, by path.
func subvolumes(t *testing.T, mnt string) []string {
	t.Helper()
	out, err := exec.Command("btrfs", "subvolume", "list", "-o", mnt).CombinedOutput()
	if err != nil {
		// -o lists those below mnt's own subvolume: all of them here.
		t.Fatalf("btrfs subvolume list: %v\n%s", err, out)
	}
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			paths = append(paths, f[len(f)-1])
		}
	}
	return paths
}

// TestE2EBtrfs: a DEN_HOME on btrfs (a loop-mounted image the test makes)
// gets the btrfs store: the box is a read-only subvolume, the machine a
// writable snapshot of it, running unprivileged through an idmapped mount
// of its subvolume; snapshot save and restore are btrfs snapshots and
// bring the machine's data back; package shows its filesystem; destroy
// leaves no subvolume but the box's.
func TestE2EBtrfs(t *testing.T) {
	needE2E(t)
	mnt := testenv.Btrfs(t, 6<<30)
	home := filepath.Join(mnt, "home")
	if err := os.Mkdir(home, 0o711); err != nil {
		t.Fatal(err)
	}
	denIn(t, home, t.TempDir(), "box", "add", "debian/bookworm", os.Getenv("DEN_TEST_BOX"))
	if out := denIn(t, home, t.TempDir(), "host", "check"); !strings.Contains(out, "storage: btrfs for new machines") {
		t.Errorf("host check on a btrfs DEN_HOME:\n%s", out)
	}
	dir := newProjectHome(t, home, "btrfs-project", "box = \"debian/bookworm\"\n")
	denIn(t, home, dir, "up")
	var st []statusJSON
	if err := json.Unmarshal([]byte(denIn(t, home, dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	container := st[0].Container
	machineDir := filepath.Join(home, "machines", container)
	if !btrfs.IsSubvolume(filepath.Join(machineDir, "rootfs")) {
		t.Fatalf("%s/rootfs is not a subvolume", machineDir)
	}
	boxes, _ := filepath.Glob(filepath.Join(home, "machines", ".boxes", "*"))
	var boxVol string
	for _, b := range boxes {
		if btrfs.IsSubvolume(b) {
			boxVol = b
		}
	}
	if boxVol == "" {
		t.Fatalf("no box subvolume in %v", boxes)
	}
	if err := os.WriteFile(filepath.Join(boxVol, "x"), nil, 0o644); err == nil {
		t.Error("the box's subvolume is writable")
	}
	if layer, _ := os.ReadFile(filepath.Join(machineDir, "layer.json")); !strings.Contains(string(layer), `"store":"btrfs"`) || !strings.Contains(string(layer), `"xattrs":"user"`) {
		t.Errorf("layer.json: %s", layer)
	}
	// Unprivileged: guest root is the machine's range on the host, and the
	// subvolume keeps the box's ids on disk.
	denIn(t, home, dir, "ssh", "-c", "echo one > ~/data && sudo sh -c 'echo root > /etc/den-btrfs && id -u > /etc/den-uid'")
	var fst syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(machineDir, "rootfs", "etc", "den-btrfs"), &fst); err != nil {
		t.Fatal(err)
	}
	if fst.Uid != 0 || fst.Gid != 0 {
		t.Errorf("a file guest root wrote is %d:%d on disk, want 0:0 (the box's ids)", fst.Uid, fst.Gid)
	}
	if out := denIn(t, home, dir, "ssh", "-c", "cat /proc/self/uid_map"); strings.Fields(out)[1] == "0" {
		t.Errorf("the machine runs privileged: uid_map %q", out)
	}

	// Snapshots: constant time, the machine's data back on restore.
	out := denIn(t, home, dir, "snapshot", "save", "s1")
	if !strings.Contains(out, "a copy-on-write snapshot, nothing copied") {
		t.Errorf("snapshot save on btrfs says:\n%s", out)
	}
	if !btrfs.IsSubvolume(filepath.Join(machineDir, "snapshots", "s1", "rootfs")) {
		t.Error("the snapshot is not a subvolume")
	}
	denIn(t, home, dir, "ssh", "-c", "echo two > ~/data && sudo rm /etc/den-btrfs")
	denIn(t, home, dir, "snapshot", "restore", "s1")
	if got := denIn(t, home, dir, "ssh", "-c", "cat ~/data /etc/den-btrfs"); got != "one\nroot\n" {
		t.Errorf("after restore: %q, want the snapshot's data", got)
	}
	if list := denIn(t, home, dir, "snapshot", "list"); !strings.Contains(list, "s1") || !strings.Contains(list, "shared") {
		t.Errorf("snapshot list:\n%s", list)
	}

	// package shows the machine's whole filesystem (a scratch snapshot).
	box := filepath.Join(t.TempDir(), "packaged.box")
	denIn(t, home, dir, "package", "--output", box)
	if fi, err := os.Stat(box); err != nil || fi.Size() < 1<<20 {
		t.Errorf("package: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(machineDir, "export")); err == nil {
		t.Error("package left its export folder")
	}

	denIn(t, home, dir, "destroy", "-f")
	if _, err := os.Lstat(machineDir); err == nil {
		t.Errorf("%s is still there", machineDir)
	}
	for _, v := range subvolumes(t, mnt) {
		if !strings.HasPrefix(v, "home/machines/.boxes/") {
			t.Errorf("subvolume %s left after destroy", v)
		}
	}
}

// TestE2EBtrfsStorageSetting: on a btrfs DEN_HOME, a machine whose
// den.hcl says storage = "overlay" gets the overlay store and one that
// says nothing the DEN_HOME's (btrfs); both come up. A den.hcl that then
// asks for the other store changes neither: status notes it.
func TestE2EBtrfsStorageSetting(t *testing.T) {
	needE2E(t)
	mnt := testenv.Btrfs(t, 6<<30)
	home := filepath.Join(mnt, "home")
	if err := os.Mkdir(home, 0o711); err != nil {
		t.Fatal(err)
	}
	denIn(t, home, t.TempDir(), "box", "add", "debian/bookworm", os.Getenv("DEN_TEST_BOX"))
	const hcl = "box = \"debian/bookworm\"\nmachine \"ovl\" {\n  storage = \"overlay\"\n}\nmachine \"auto\" {}\n"
	dir := newProjectHome(t, home, "storage-project", hcl)
	if out := denIn(t, home, dir, "validate"); !strings.Contains(out, "    store overlay\n") || !strings.Contains(out, "    store auto") {
		t.Errorf("validate:\n%s", out)
	}
	denIn(t, home, dir, "up")
	type storeStatus struct {
		Name, State, Container, Store, Note string
	}
	readStatus := func() map[string]storeStatus {
		var st []storeStatus
		if err := json.Unmarshal([]byte(denIn(t, home, dir, "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		out := map[string]storeStatus{}
		for _, s := range st {
			out[s.Name] = s
		}
		return out
	}
	st := readStatus()
	for name, want := range map[string]string{"ovl": "overlay", "auto": "btrfs"} {
		s := st[name]
		if s.State != "running" || s.Store != want {
			t.Errorf("%s: %+v, want running in the %s store", name, s, want)
		}
		machineDir := filepath.Join(home, "machines", s.Container)
		layer, err := os.ReadFile(filepath.Join(machineDir, "layer.json"))
		if err != nil {
			t.Fatal(err)
		}
		subvol := btrfs.IsSubvolume(filepath.Join(machineDir, "rootfs"))
		_, overlayErr := os.Stat(filepath.Join(machineDir, "delta0"))
		switch want {
		case "overlay":
			if strings.Contains(string(layer), `"store"`) || subvol || overlayErr != nil {
				t.Errorf("%s: layer.json %s, rootfs a subvolume: %v, delta0: %v; want an overlay layer", name, layer, subvol, overlayErr)
			}
		case "btrfs":
			if !strings.Contains(string(layer), `"store":"btrfs"`) || !subvol {
				t.Errorf("%s: layer.json %s, rootfs a subvolume: %v; want a btrfs snapshot", name, layer, subvol)
			}
		}
		if got := denIn(t, home, dir, "ssh", name, "-c", "echo ok"); got != "ok\n" {
			t.Errorf("%s answers %q", name, got)
		}
	}

	// den.hcl now asks for the other store: the machines keep theirs.
	swapped := "box = \"debian/bookworm\"\nmachine \"ovl\" {\n  storage = \"btrfs\"\n}\nmachine \"auto\" {\n  storage = \"overlay\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(swapped), 0o644); err != nil {
		t.Fatal(err)
	}
	st = readStatus()
	if s := st["ovl"]; s.Store != "overlay" || !strings.Contains(s.Note, `stays overlay: storage = "btrfs" applies to a machine when it is made`) {
		t.Errorf("ovl after den.hcl asked for btrfs: %+v", s)
	}
	if s := st["auto"]; s.Store != "btrfs" || !strings.Contains(s.Note, `stays btrfs: storage = "overlay"`) {
		t.Errorf("auto after den.hcl asked for overlay: %+v", s)
	}
	if out := denIn(t, home, dir, "status"); !strings.Contains(out, "lxc, overlay store") || !strings.Contains(out, "lxc, btrfs store") {
		t.Errorf("status:\n%s", out)
	}
	up := exec.Command(e2e.bin, "up", "ovl")
	up.Dir, up.Env = dir, append(os.Environ(), "DEN_HOME="+home)
	out, err := up.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `storage = "btrfs" (den.hcl:3:13) applies to a machine when it is made: this one stays overlay`) {
		t.Errorf("up after den.hcl asked for another store: %v\n%s", err, out)
	}
	if s := readStatus()["ovl"]; s.Store != "overlay" {
		t.Errorf("ovl after up: %+v", s)
	}
}

// TestE2EBtrfsStorageRefused: storage = "btrfs" on a DEN_HOME that is not
// on btrfs fails at up, at its den.hcl line, saying DEN_HOME must be on
// btrfs, and makes nothing; validate says the same.
func TestE2EBtrfsStorageRefused(t *testing.T) {
	needE2E(t)
	if on, err := btrfs.Is(e2e.home); err != nil || on {
		t.Fatalf("the e2e DEN_HOME %s is on btrfs (or cannot tell: %v); this test needs one that is not", e2e.home, err)
	}
	before := lxcNames(t)
	dir := newProject(t, "storage-refused", "box = \"debian/bookworm\"\nmachine \"web\" {\n  storage = \"btrfs\"\n}\nmachine \"db\" {}\n")
	for _, cmd := range []string{"up", "validate"} {
		r := den(t, dir, "", cmd)
		if r.code == 0 || !strings.Contains(r.err, "den.hcl:3:13: error: Store not available") || !strings.Contains(r.err, "DEN_HOME must be on a btrfs filesystem") {
			t.Errorf("den %s with storage = \"btrfs\" off btrfs: %d\n%s", cmd, r.code, r.err)
		}
	}
	if after := lxcNames(t); after != before {
		t.Errorf("containers before the refused up:\n%s\nafter:\n%s", before, after)
	}
	for _, s := range status(t, dir) {
		if s.State != "not created" || s.Container != "" {
			t.Errorf("%s after the refused up: %+v", s.Name, s)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, ".den")); len(entries) > 1 {
		t.Errorf(".den/ after the refused up: %v", entries)
	}
}

// newProjectHome is newProject whose cleanup destroys with DEN_HOME home.
func newProjectHome(t *testing.T, home, name, hcl string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "den.hcl")} {
		if err := os.Chown(p, 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		cmd := exec.Command(e2e.bin, "destroy", "-f")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DEN_HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cleanup destroy: %v\n%s", err, out)
		}
	})
	return dir
}
