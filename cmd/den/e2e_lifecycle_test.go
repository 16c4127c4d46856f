package main

// End-to-end tests of suspend/resume, snapshots, global-status and package,
// on real containers with the den binary (see e2e_test.go for the setup).

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// denGuarded runs den like den() but kills it after a minute, so a command
// that should return at once (ssh into a frozen machine) fails the test
// instead of hanging it. It is a guard against hangs, not a timing check.
func denGuarded(t *testing.T, dir string, args ...string) (result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2e.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("den %v hung: killed after %s", args, took.Round(time.Second))
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run den %v: %v", args, err)
	}
	t.Logf("den %s -> %d in %s\n%s%s", strings.Join(args, " "), code, took.Round(time.Millisecond), out.String(), errb.String())
	return result{out.String(), errb.String(), code}, took
}

// mustDenTimed runs den, fails the test on a non-zero exit, and returns the
// output and the wall time (logged, never asserted).
func mustDenTimed(t *testing.T, dir string, args ...string) (string, time.Duration) {
	t.Helper()
	r, took := denGuarded(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("den %v failed with %d:\n%s%s", args, r.code, r.out, r.err)
	}
	return r.out, took
}

func wantState(t *testing.T, dir, want string) {
	t.Helper()
	st := status(t, dir)
	if len(st) != 1 || st[0].State != want {
		t.Fatalf("status: %+v, want %s", st, want)
	}
}

func TestE2ESuspendResume(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-suspend", "box = \"debian/bookworm\"\n")
	mustDen(t, dir, "up")
	container := status(t, dir)[0].Container

	out, took := mustDenTimed(t, dir, "suspend")
	if !strings.Contains(out, "==> default: Suspending machine...") {
		t.Errorf("suspend output:\n%s", out)
	}
	t.Logf("figure: den suspend took %s (process start included)", took)
	wantState(t, dir, "frozen")
	if got := mustDen(t, dir, "suspend"); !strings.Contains(got, "Machine is already suspended.") {
		t.Errorf("second suspend:\n%s", got)
	}

	// ssh is refused at once, saying why and what to run.
	r, took := denGuarded(t, dir, "ssh", "-c", "true")
	if r.code == 0 || !strings.Contains(r.err, "suspended") || !strings.Contains(r.err, "den resume") {
		t.Errorf("ssh into a frozen machine: code %d, stderr %q", r.code, r.err)
	}
	t.Logf("figure: ssh into a frozen machine refused in %s", took)
	if r, _ := denGuarded(t, dir, "up"); r.code == 0 || !strings.Contains(r.err, "den resume") {
		t.Errorf("up of a frozen machine: code %d, stderr %q", r.code, r.err)
	}

	out, took = mustDenTimed(t, dir, "resume")
	if !strings.Contains(out, "Resuming suspended machine...") || !strings.Contains(out, "Machine resumed and ready!") {
		t.Errorf("resume output:\n%s", out)
	}
	t.Logf("figure: den resume (thaw + ssh handshake) took %s", took)
	wantState(t, dir, "running")
	if got := mustDen(t, dir, "ssh", "-c", "echo awake"); got != "awake\n" {
		t.Errorf("ssh after resume: %q", got)
	}
	if got := mustDen(t, dir, "resume"); !strings.Contains(got, "Machine is not suspended.") {
		t.Errorf("resume of a running machine:\n%s", got)
	}

	// halt and destroy thaw a frozen machine first.
	mustDen(t, dir, "suspend")
	mustDenTimed(t, dir, "halt")
	wantState(t, dir, "stopped")
	if got := mustDen(t, dir, "suspend"); !strings.Contains(got, "nothing to suspend") {
		t.Errorf("suspend of a stopped machine:\n%s", got)
	}
	mustDen(t, dir, "up")
	mustDen(t, dir, "suspend")
	mustDenTimed(t, dir, "destroy", "-f")
	if names := lxcNames(t); strings.Contains(names, container) {
		t.Errorf("frozen machine not destroyed: %s", names)
	}
	wantState(t, dir, "not created")
}

type snapshotJSON struct {
	Machine, Name string
	Created       time.Time
	Size          int64
}

func snapshots(t *testing.T, dir string) []snapshotJSON {
	t.Helper()
	var s []snapshotJSON
	if err := json.Unmarshal([]byte(mustDen(t, dir, "snapshot", "list", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func snapshotNames(t *testing.T, dir string) []string {
	var names []string
	for _, s := range snapshots(t, dir) {
		names = append(names, s.Name)
	}
	return names
}

func TestE2ESnapshot(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-snapshot", "box = \"debian/bookworm\"\n")
	mustDen(t, dir, "up")
	container := status(t, dir)[0].Container
	if got := mustDen(t, dir, "snapshot", "list"); !strings.Contains(got, "No snapshots have been taken yet!") {
		t.Errorf("list without snapshots:\n%s", got)
	}

	// The state to keep: a user file, a root file, a folder, a box file.
	debianVersion := mustDen(t, dir, "ssh", "-c", "cat /etc/debian_version")
	mustDen(t, dir, "ssh", "-c", "echo v1 > ~/state.txt && sudo sh -c 'echo system > /etc/den-snap && mkdir -p /opt/tree/sub && echo leaf > /opt/tree/sub/leaf'")
	out, took := mustDenTimed(t, dir, "snapshot", "save", "base")
	if !strings.Contains(out, "==> default: Snapshotting the machine as 'base'...") || !strings.Contains(out, "Snapshot saved!") {
		t.Errorf("save output:\n%s", out)
	}
	t.Logf("figure: snapshot save of a running machine took %s", took)
	list := snapshots(t, dir)
	if len(list) != 1 || list[0].Name != "base" || list[0].Size <= 0 || list[0].Machine != "default" {
		t.Fatalf("list after save: %+v", list)
	}
	t.Logf("figure: snapshot size %d bytes", list[0].Size)
	if _, err := os.Stat(filepath.Join(e2e.lxcpath, container, "snapshots", "base", "delta0")); err != nil {
		t.Errorf("snapshot not in the machine's folder: %v", err)
	}
	if r := den(t, dir, "", "snapshot", "save", "base"); r.code == 0 || !strings.Contains(r.err, "--force") {
		t.Errorf("save over a snapshot: code %d, %q", r.code, r.err)
	}
	if r := den(t, dir, "", "snapshot", "save", "../evil"); r.code != 2 || !strings.Contains(r.err, "invalid snapshot name") {
		t.Errorf("save with a bad name: code %d, %q", r.code, r.err)
	}
	if got := mustDen(t, dir, "ssh", "-c", "echo still running"); got != "still running\n" {
		t.Errorf("machine after save: %q", got)
	}

	// Change everything, delete a box file (a whiteout in the layer).
	mustDen(t, dir, "ssh", "-c", "echo v2 > ~/state.txt && echo new > ~/new.txt && sudo sh -c 'rm /etc/den-snap /etc/debian_version && rm -r /opt/tree'")
	out, took = mustDenTimed(t, dir, "snapshot", "restore", "base")
	for _, want := range []string{"Forcing shutdown of machine...", "Restoring the snapshot 'base'...", "Machine booted and ready!"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("figure: snapshot restore of a running machine (stop, copy back, boot, ssh) took %s", took)
	// Read back exactly; ssh working at all shows the keys are still valid.
	got := mustDen(t, dir, "ssh", "-c", "cat ~/state.txt /etc/den-snap /opt/tree/sub/leaf /etc/debian_version; test ! -e ~/new.txt && echo no-new")
	if want := "v1\nsystem\nleaf\n" + debianVersion + "no-new\n"; got != want {
		t.Errorf("after restore read %q, want %q", got, want)
	}
	if names := snapshotNames(t, dir); !slices.Equal(names, []string{"base"}) {
		t.Errorf("restore should keep the snapshot: %v", names)
	}

	// push and pop, as in Vagrant.
	mustDen(t, dir, "ssh", "-c", "echo v3 > ~/state.txt")
	if out := mustDen(t, dir, "snapshot", "push"); !strings.Contains(out, "Snapshotting the machine as 'push_") {
		t.Errorf("push output:\n%s", out)
	}
	mustDen(t, dir, "ssh", "-c", "echo v4 > ~/state.txt")
	out = mustDen(t, dir, "snapshot", "pop")
	if !strings.Contains(out, "Snapshot deleted!") {
		t.Errorf("pop output:\n%s", out)
	}
	if got := mustDen(t, dir, "ssh", "-c", "cat ~/state.txt"); got != "v3\n" {
		t.Errorf("after pop: %q", got)
	}
	if names := snapshotNames(t, dir); !slices.Equal(names, []string{"base"}) {
		t.Errorf("pop should delete the pushed snapshot: %v", names)
	}
	if r := den(t, dir, "", "snapshot", "pop"); r.code == 0 || !strings.Contains(r.err, "no pushed snapshot") {
		t.Errorf("pop without a pushed snapshot: code %d, %q", r.code, r.err)
	}

	// A stopped machine: save, restore without starting it.
	mustDen(t, dir, "halt")
	mustDen(t, dir, "snapshot", "save", "off")
	out = mustDen(t, dir, "snapshot", "restore", "--no-start", "off")
	if strings.Contains(out, "Forcing shutdown") || !strings.Contains(out, "Machine left stopped") {
		t.Errorf("restore --no-start of a stopped machine:\n%s", out)
	}
	wantState(t, dir, "stopped")

	// delete.
	for _, name := range []string{"off", "base"} {
		if out := mustDen(t, dir, "snapshot", "delete", name); !strings.Contains(out, "Snapshot deleted!") {
			t.Errorf("delete output:\n%s", out)
		}
	}
	if r := den(t, dir, "", "snapshot", "delete", "base"); r.code == 0 || !strings.Contains(r.err, `no snapshot "base"`) {
		t.Errorf("delete of a deleted snapshot: code %d, %q", r.code, r.err)
	}
	if names := snapshotNames(t, dir); len(names) != 0 {
		t.Errorf("after delete: %v", names)
	}
	if r := den(t, dir, "", "snapshot", "restore", "base"); r.code == 0 || !strings.Contains(r.err, "snapshot list") {
		t.Errorf("restore of a missing snapshot: code %d, %q", r.code, r.err)
	}

	// Snapshots go with the machine.
	mustDen(t, dir, "snapshot", "save", "last")
	mustDen(t, dir, "destroy", "-f")
	if _, err := os.Lstat(filepath.Join(e2e.lxcpath, container)); !os.IsNotExist(err) {
		t.Errorf("machine folder (with snapshots) after destroy: %v", err)
	}
}

type globalJSON struct {
	ID, Name, Provider, State, Directory, Address, Container string
}

func globalStatus(t *testing.T, args ...string) []globalJSON {
	t.Helper()
	var g []globalJSON
	out := mustDen(t, t.TempDir(), append([]string{"global-status", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("global-status --json: %v\n%s", err, out)
	}
	return g
}

func findGlobal(all []globalJSON, dir string) *globalJSON {
	for i := range all {
		if all[i].Directory == dir {
			return &all[i]
		}
	}
	return nil
}

func TestE2EGlobalStatus(t *testing.T) {
	needE2E(t)
	a := newProject(t, "test-global-a", "box = \"debian/bookworm\"\n")
	b := newProject(t, "test-global-b", "box = \"debian/bookworm\"\n")
	mustDen(t, a, "up")
	mustDen(t, b, "up")
	mustDen(t, b, "halt")

	all := globalStatus(t)
	ga, gb := findGlobal(all, a), findGlobal(all, b)
	if ga == nil || gb == nil {
		t.Fatalf("global-status lacks a project: %+v", all)
	}
	if ga.State != "running" || gb.State != "stopped" {
		t.Errorf("states: a %q, b %q", ga.State, gb.State)
	}
	for _, g := range []*globalJSON{ga, gb} {
		if g.Name != "default" || g.Provider != "lxc" || len(g.ID) != 7 || g.Address == "" || !strings.HasPrefix(g.Container, "den-test-global-") {
			t.Errorf("entry %+v", *g)
		}
	}
	if st := status(t, a); st[0].Address != ga.Address {
		t.Errorf("address %q, status says %q", ga.Address, st[0].Address)
	}
	text, took := mustDenTimed(t, t.TempDir(), "global-status")
	t.Logf("figure: global-status took %s", took)
	header := strings.Fields(strings.SplitN(text, "\n", 2)[0])
	if !slices.Equal(header, []string{"id", "name", "provider", "state", "autostart", "directory", "address"}) {
		t.Errorf("header %q", header)
	}
	for _, want := range []string{a, b, ga.ID + " default lxc running no " + a, "stopped", "--prune"} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), want) {
			t.Errorf("global-status lacks %q:\n%s", want, text)
		}
	}

	// The project folder of b goes away (moved): --prune drops its entry
	// and says its container still exists; a is kept.
	moved := b + "-moved"
	if err := os.Rename(b, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(moved, b) }) // runs before b's destroy
	r, _ := denGuarded(t, t.TempDir(), "global-status", "--prune")
	if r.code != 0 || !strings.Contains(r.out, "Pruned "+gb.Container) || !strings.Contains(r.out, "project folder is gone") {
		t.Errorf("prune output: code %d\n%s%s", r.code, r.out, r.err)
	}
	if !strings.Contains(r.err, "still exists") || !strings.Contains(r.err, "lxc-destroy") {
		t.Errorf("prune should say the container still exists:\n%s", r.err)
	}
	all = globalStatus(t)
	if findGlobal(all, b) != nil || findGlobal(all, a) == nil {
		t.Errorf("after prune: %+v", all)
	}
	// Pruning again drops nothing more; --json stays JSON.
	all = globalStatus(t, "--prune")
	if findGlobal(all, a) == nil {
		t.Errorf("a pruned: %+v", all)
	}
}

type boxJSON struct {
	Name, Version, Path, User string
	Size                      int64
}

func TestE2EPackage(t *testing.T) {
	needE2E(t)
	src := newProject(t, "test-package-src", "box = \"debian/bookworm\"\n")
	mustDen(t, src, "up")
	srcContainer := status(t, src)[0].Container
	mustDen(t, src, "ssh", "-c", "echo mine > ~/home-marker && sudo sh -c 'echo packaged > /etc/den-package-marker'")

	output := filepath.Join(t.TempDir(), "test-packaged.box")
	out, took := mustDenTimed(t, src, "package", "--output", output)
	for _, want := range []string{"Attempting graceful shutdown", "Compressing package to: " + output, "Box file written"} {
		if !strings.Contains(out, want) {
			t.Errorf("package output lacks %q:\n%s", want, out)
		}
	}
	fi, err := os.Stat(output)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: package took %s, box file %d bytes", took, fi.Size())
	wantState(t, src, "stopped")
	if m, _ := filepath.Glob(filepath.Join(e2e.lxcpath, srcContainer, "export")); len(m) != 0 {
		t.Errorf("export folder left in the machine folder: %v", m)
	}
	if r := den(t, src, "", "package", "--output", output); r.code == 0 || !strings.Contains(r.err, "exists") {
		t.Errorf("package over an existing file: code %d, %q", r.code, r.err)
	}

	// box add takes it; the store's copy has no keys and no identity.
	mustDen(t, t.TempDir(), "box", "add", "test/packaged", output)
	t.Cleanup(func() { den(t, t.TempDir(), "", "box", "remove", "test/packaged") }) // after dst's destroy
	var boxes []boxJSON
	if err := json.Unmarshal([]byte(mustDen(t, t.TempDir(), "box", "list", "--json")), &boxes); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(boxes, func(b boxJSON) bool { return b.Name == "test/packaged" })
	if i < 0 {
		t.Fatalf("box list: %+v", boxes)
	}
	rootfs := filepath.Join(boxes[i].Path, "rootfs")
	if boxes[i].User != "den" {
		t.Errorf("packaged box user %q", boxes[i].User)
	}
	if keys, _ := filepath.Glob(filepath.Join(rootfs, "etc/ssh/ssh_host_*")); len(keys) != 0 {
		t.Errorf("packaged box carries host keys: %v", keys)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "home/den/.ssh/authorized_keys")); !os.IsNotExist(err) {
		t.Errorf("packaged box carries the machine's authorized_keys: %v", err)
	}
	if id, err := os.ReadFile(filepath.Join(rootfs, "etc/machine-id")); err != nil || len(id) != 0 {
		t.Errorf("packaged box machine-id %q %v", id, err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "etc/den-package-marker")); err != nil || string(b) != "packaged\n" {
		t.Errorf("packaged box lacks the machine's change: %q %v", b, err)
	}

	// A machine made from it boots, takes its own new key, has the files.
	dst := newProject(t, "test-package-dst", "box = \"test/packaged\"\n")
	mustDen(t, dst, "up")
	if got := mustDen(t, dst, "ssh", "-c", "cat /etc/den-package-marker ~/home-marker"); got != "packaged\nmine\n" {
		t.Errorf("machine from the packaged box read %q", got)
	}
	pin := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, ".den", "default", "host_ed25519.pub"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if pin(src) == pin(dst) {
		t.Error("the new machine has the packaged machine's host key")
	}
	srcID, _ := os.ReadFile(filepath.Join(e2e.lxcpath, srcContainer, "delta0", "etc", "machine-id"))
	if dstID := mustDen(t, dst, "ssh", "-c", "cat /etc/machine-id"); len(srcID) == 0 || dstID == string(srcID) {
		t.Errorf("machine-id: packaged machine %q, new machine %q", srcID, dstID)
	}

	// The packaged machine itself is whole and starts again.
	mustDen(t, src, "up")
	if got := mustDen(t, src, "ssh", "-c", "cat ~/home-marker"); got != "mine\n" {
		t.Errorf("packaged machine after up: %q", got)
	}
}
