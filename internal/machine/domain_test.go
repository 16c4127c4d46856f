package machine

// Unit tests of the domain's operations against the in-memory fake
// provider: no root, no box, no container. The fake answers ssh with the
// keys den wrote, so up, provision and resume run their real code paths.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/forward"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provider/fake"
)

// TestMain lets the test binary act as den's port forwarder ("__forward"),
// as den runs itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == ForwardCommand && os.Args[2] == "--pidfile" {
		ctx, stop := signalContext()
		defer stop()
		// A forwarder through ssh (--project DIR --machine NAME) dials
		// directly here: the fake's guests answer nothing anyway.
		args := os.Args[4:]
		for len(args) >= 2 && (args[0] == "--project" || args[0] == "--machine") {
			args = args[2:]
		}
		if err := forward.Main(ctx, os.Args[3], args, os.Stderr, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// world is a den home with a fake provider, a box and a project.
type world struct {
	t    *testing.T
	env  *Env
	prov *fake.Provider
	dir  string // the project folder

	mu     sync.Mutex
	events []ui.Event
}

func newWorld(t *testing.T) *world {
	t.Helper()
	home := layout.Home(t.TempDir())
	run := t.TempDir()
	oldHomes, oldLock, oldWait := homesFile, addressLock, lockWait
	homesFile, addressLock, lockWait = filepath.Join(run, "homes"), filepath.Join(run, "addresses.lock"), 100*time.Millisecond
	t.Cleanup(func() { homesFile, addressLock, lockWait = oldHomes, oldLock, oldWait })
	w := &world{t: t, prov: fake.New(filepath.Join(home.Path(), "fake")), dir: filepath.Join(t.TempDir(), "app")}
	w.env = NewEnv(Options{Home: home, Providers: []provider.Provider{w.prov}, UI: ui.NewEvents(w.record)})
	w.env.Forwarder = []string{os.Args[0], ForwardCommand}
	w.env.ReadyTimeout = 10 * time.Second
	w.env.Store.LockWait = 100 * time.Millisecond
	w.addBox("test/box", "1.0")
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// End any forwarder a failing test left.
		entries, _ := filepath.Glob(filepath.Join(w.dir, ".den", "*", "forward.pid"))
		for _, pidfile := range entries {
			forward.Stop(pidfile)
		}
	})
	return w
}

func (w *world) record(e ui.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
}

// said reports whether machine reported a step or detail containing text.
func (w *world) said(machine, text string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.ContainsFunc(w.events, func(e ui.Event) bool {
		return e.Machine == machine && strings.Contains(e.Text, text)
	})
}

// addBox installs a tiny box: a login user den (1000), /etc/ssh.
func (w *world) addBox(name, version string) {
	w.t.Helper()
	tmp, err := w.env.Store.TempDir()
	if err != nil {
		w.t.Fatal(err)
	}
	rootfs := filepath.Join(tmp, "rootfs")
	files := map[string]string{
		"etc/passwd":       "root:x:0:0:root:/root:/bin/bash\nden:x:1000:1000::/home/den:/bin/bash\n",
		"etc/group":        "root:x:0:\nden:x:1000:\n",
		"etc/ssh/sshd.cfg": "",
		"home/den/.bashrc": "# rc\n",
	}
	for p, data := range files {
		writeFile(w.t, filepath.Join(rootfs, p), data, 0o644)
	}
	meta := box.Metadata{Provider: box.FormatProvider, Version: box.FormatVersion, Den: &box.DenMetadata{Version: version, User: "den"}}
	if _, err := w.env.Store.Import(name, version, meta, rootfs); err != nil {
		w.t.Fatal(err)
	}
}

// project writes den.hcl and loads it.
func (w *world) project(hcl string) *config.Project {
	w.t.Helper()
	path := filepath.Join(w.dir, config.FileName)
	if err := os.WriteFile(path, []byte(hcl), 0o644); err != nil {
		w.t.Fatal(err)
	}
	p, err := config.Load(path)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) machines(p *config.Project, names ...string) []*Machine {
	w.t.Helper()
	ms, err := Select(p, names)
	if err != nil {
		w.t.Fatal(err)
	}
	return ms
}

func (w *world) state(m *Machine) provider.State {
	w.t.Helper()
	_, _, st, err := w.env.current(context.Background(), m)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const twoMachines = `
box = "test/box"
provision "shell" {
  name   = "once"
  inline = ["echo provisioned once"]
}
provision "shell" {
  name   = "always"
  inline = ["echo every time"]
  run    = "always"
}
machine "web" {
  hostname = "www"
}
machine "db" {
  memory = "512M"
}
`

func TestUpProvisionDestroyProject(t *testing.T) {
	w := newWorld(t)
	p := w.project(twoMachines)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{Parallel: true}))

	st, err := w.env.Status(ctx, ms)
	must(t, err)
	if len(st) != 2 || st[0].State != "running" || st[1].State != "running" || st[0].Address == st[1].Address || st[0].Address == "" {
		t.Fatalf("status after up: %+v", st)
	}
	for _, name := range []string{"web", "db"} {
		for _, step := range []string{"Creating machine from box test/box (1.0)", "Machine booted and ready!", "Running provisioner: once"} {
			if !w.said(name, step) {
				t.Errorf("%s did not report %q", name, step)
			}
		}
		if !w.said(name, "provisioned once") {
			t.Errorf("%s: the provisioner's output was not streamed", name)
		}
	}
	// Every machine knows the others by name from its first boot.
	hosts, err := os.ReadFile(filepath.Join(w.prov.Rootfs(ms[0].Container()), "etc/hosts"))
	must(t, err)
	if !strings.Contains(string(hosts), st[1].Address+"\tdb") || !strings.Contains(string(hosts), "127.0.1.1\twww") {
		t.Errorf("web's /etc/hosts:\n%s", hosts)
	}
	if spec, _ := w.prov.Spec(ms[1].Container()); spec.Memory != 512<<20 {
		t.Errorf("db's memory = %d", spec.Memory)
	}
	entries, err := ReadIndex(w.env.Home)
	must(t, err)
	if len(entries) != 2 {
		t.Errorf("index: %+v", entries)
	}

	// A second up runs only the run = "always" provisioner.
	before := len(w.prov.Commands(ms[0].Container()))
	must(t, w.env.Up(ctx, ms[:1], UpOptions{}))
	cmds := w.prov.Commands(ms[0].Container())[before:]
	if n := countRuns(cmds, "always"); n != 1 || countRuns(cmds, "once") != 0 {
		t.Errorf("second up ran %v", cmds)
	}
	// --provision-with runs just that one, whatever its run.
	before = len(w.prov.Commands(ms[0].Container()))
	must(t, w.env.Up(ctx, ms[:1], UpOptions{With: []string{"once"}}))
	if cmds := w.prov.Commands(ms[0].Container())[before:]; countRuns(cmds, "once") != 1 || countRuns(cmds, "always") != 0 {
		t.Errorf("--provision-with once ran %v", cmds)
	}
	// den provision runs all again.
	before = len(w.prov.Commands(ms[1].Container()))
	must(t, w.env.Provision(ctx, ms[1:], ProvisionOptions{Force: true}))
	if cmds := w.prov.Commands(ms[1].Container())[before:]; countRuns(cmds, "once") != 1 || countRuns(cmds, "always") != 1 {
		t.Errorf("provision ran %v", cmds)
	}

	must(t, w.env.Halt(ctx, ms, false, time.Second))
	if w.state(ms[0]) != provider.Stopped || w.state(ms[1]) != provider.Stopped {
		t.Error("halt left a machine running")
	}
	// A stopped machine comes up with its address and keys.
	must(t, w.env.Up(ctx, ms[1:], UpOptions{}))
	st2, _ := w.env.Status(ctx, ms[1:])
	if st2[0].Address != st[1].Address {
		t.Errorf("db's address changed across halt/up: %s -> %s", st[1].Address, st2[0].Address)
	}

	must(t, w.env.Destroy(ctx, ms))
	for _, m := range ms {
		if w.state(m) != provider.NotCreated {
			t.Errorf("%s still exists", m.Name())
		}
		if _, err := os.Lstat(m.State.Path()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: .den/%s is still there", m.Name(), m.Name())
		}
	}
	if entries, _ := ReadIndex(w.env.Home); len(entries) != 0 {
		t.Errorf("index after destroy: %+v", entries)
	}
	if _, err := os.Stat(filepath.Join(w.dir, config.FileName)); err != nil {
		t.Errorf("the project folder lost den.hcl: %v", err)
	}
}

// countRuns counts the commands that ran provisioner name's script.
func countRuns(cmds []string, name string) int {
	n := 0
	for _, c := range cmds {
		if strings.Contains(c, "/tmp/den-provision-"+name+"-") && !strings.HasPrefix(c, "rm -f") {
			n++
		}
	}
	return n
}

func TestFailingProvisionerIsTyped(t *testing.T) {
	w := newWorld(t)
	p := w.project(`
box = "test/box"
provision "shell" {
  name   = "broken"
  inline = ["exit 7"]
}
`)
	ctx := context.Background()
	ms := w.machines(p)
	err := w.env.Up(ctx, ms, UpOptions{})
	if errdefs.KindOf(err) != errdefs.GuestFailed || !strings.Contains(err.Error(), `provisioner "broken"`) || errdefs.MachineOf(err) != "default" {
		t.Fatalf("up with a failing provisioner: %v (kind %q)", err, errdefs.KindOf(err))
	}
	if w.state(ms[0]) != provider.Running {
		t.Error("the machine did not stay up after its provisioner failed")
	}
}

func TestTypedStateErrors(t *testing.T) {
	w := newWorld(t)
	p := w.project(`box = "test/box"`)
	ctx := context.Background()
	ms := w.machines(p)
	if _, err := w.env.Connect(ctx, ms[0]); errdefs.KindOf(err) != errdefs.NotCreated {
		t.Errorf("connect to a machine never made: %v", err)
	}
	if err := w.env.SnapshotSave(ctx, ms, "s", false); errdefs.KindOf(err) != errdefs.NotCreated {
		t.Errorf("snapshot of a machine never made: %v", err)
	}
	if _, err := Select(p, []string{"nope"}); errdefs.KindOf(err) != errdefs.NotFound {
		t.Errorf("select an unknown machine: %v", err)
	}
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	must(t, w.env.Suspend(ctx, ms))
	if _, err := w.env.Connect(ctx, ms[0]); errdefs.KindOf(err) != errdefs.Frozen {
		t.Errorf("connect to a frozen machine: %v", err)
	}
	if err := w.env.Up(ctx, ms, UpOptions{}); errdefs.KindOf(err) != errdefs.Frozen {
		t.Errorf("up of a frozen machine: %v", err)
	}
	must(t, w.env.Resume(ctx, ms))
	if !w.said("default", "Machine resumed and ready!") {
		t.Error("resume did not wait for ssh")
	}
	must(t, w.env.Halt(ctx, ms, true, 0))
	if _, err := w.env.Connect(ctx, ms[0]); errdefs.KindOf(err) != errdefs.NotRunning {
		t.Errorf("connect to a stopped machine: %v", err)
	}
	// Another den holds the machine: a typed, named lock error.
	lk, err := ms[0].lock(ctx, "den up")
	must(t, err)
	err = w.env.Halt(ctx, ms, false, time.Second)
	lk.Unlock()
	if errdefs.KindOf(err) != errdefs.Locked {
		t.Errorf("halt while locked: %v", err)
	}
	// A host that is not ready stops up before anything is made.
	w.prov.HostErr = errdefs.Newf(errdefs.HostNotReady, "no bridge")
	must(t, w.env.Destroy(ctx, ms))
	if err := w.env.Up(ctx, ms, UpOptions{}); errdefs.KindOf(err) != errdefs.HostNotReady || w.state(ms[0]) != provider.NotCreated {
		t.Errorf("up on an unready host: %v", err)
	}
}

// plainProvider has only the base abilities: no snapshots, no export.
type plainProvider struct{ provider.Provider }

func TestOptionalAbilitiesNotSupported(t *testing.T) {
	w := newWorld(t)
	p := w.project(`box = "test/box"`)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	w.env.providers[w.prov.Name()] = plainProvider{w.prov}
	_, listErr := w.env.SnapshotList(ctx, ms)
	for name, err := range map[string]error{
		"save":    w.env.SnapshotSave(ctx, ms, "s", false),
		"restore": w.env.SnapshotRestore(ctx, ms, "s", RestoreOptions{}),
		"delete":  w.env.SnapshotDelete(ctx, ms, "s"),
		"push":    w.env.SnapshotPush(ctx, ms),
		"pop":     w.env.SnapshotPop(ctx, ms, RestoreOptions{}),
		"list":    listErr,
		"package": w.env.Package(ctx, ms[0], PackageOptions{Output: filepath.Join(t.TempDir(), "x.box")}),
	} {
		if !errors.Is(err, provider.ErrNotSupported) || errdefs.KindOf(err) != errdefs.Unsupported {
			t.Errorf("%s: got %v, want ErrNotSupported", name, err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestEveryStopEndsTheForwarder: halt, snapshot restore (with or without
// a start) and package all stop the machine through one path, which ends
// its port forwarder (package and restore --no-start used to leave it
// holding the host port).
func TestEveryStopEndsTheForwarder(t *testing.T) {
	w := newWorld(t)
	port := freePort(t)
	p := w.project(fmt.Sprintf(`
box = "test/box"
forward {
  guest = 80
  host  = %d
}
`, port))
	ctx := context.Background()
	ms := w.machines(p)
	m := ms[0]
	forwarding := func() bool {
		_, ok := forward.Running(m.State.ForwardPid())
		return ok
	}
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if !forwarding() {
		t.Fatal("up started no forwarder")
	}
	must(t, w.env.SnapshotSave(ctx, ms, "clean", false))
	must(t, w.env.SnapshotRestore(ctx, ms, "clean", RestoreOptions{NoStart: true}))
	if forwarding() {
		t.Error("snapshot restore --no-start left the forwarder running")
	}
	must(t, w.env.SnapshotRestore(ctx, ms, "clean", RestoreOptions{}))
	if !forwarding() {
		t.Error("snapshot restore did not start the forwarder again")
	}
	if os.Geteuid() == 0 { // package writes the box's files as root
		must(t, w.env.Package(ctx, m, PackageOptions{Output: filepath.Join(t.TempDir(), "p.box")}))
		if forwarding() {
			t.Error("package left the forwarder running")
		}
		if w.state(m) != provider.Stopped {
			t.Error("package did not leave the machine stopped")
		}
	}
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	must(t, w.env.Halt(ctx, ms, false, time.Second))
	if forwarding() {
		t.Error("halt left the forwarder running")
	}
	// The port is free again.
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	must(t, err)
	l.Close()
}

// TestRestoreHoldsTheLockThroughItsUp: nothing can slip between a
// restore and the up that follows it.
func TestRestoreHoldsTheLockThroughItsUp(t *testing.T) {
	w := newWorld(t)
	p := w.project(`
box = "test/box"
provision "shell" {
  name   = "probe"
  inline = ["true"]
  run    = "always"
}
`)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	must(t, w.env.SnapshotSave(ctx, ms, "s", false))
	var heldDuringUp error
	w.prov.Run = func(machine, cmd string, stdout func(string)) int {
		if strings.Contains(cmd, "den-provision-probe") && !strings.HasPrefix(cmd, "rm") {
			_, heldDuringUp = lock.Acquire(ctx, ms[0].State.Lock(), "test", 0)
		}
		return 0
	}
	must(t, w.env.SnapshotRestore(ctx, ms, "s", RestoreOptions{}))
	if !errors.Is(heldDuringUp, lock.ErrHeld) {
		t.Errorf("during the restore's up, the machine lock was free (%v)", heldDuringUp)
	}
	if w.state(ms[0]) != provider.Running {
		t.Error("restore did not start the machine")
	}
	must(t, w.env.SnapshotPush(ctx, ms))
	must(t, w.env.SnapshotPop(ctx, ms, RestoreOptions{NoStart: true}))
	rows, err := w.env.SnapshotList(ctx, ms)
	must(t, err)
	if len(rows) != 1 || rows[0].Name != "s" {
		t.Errorf("after push and pop: %+v", rows)
	}
	must(t, w.env.SnapshotDelete(ctx, ms, "s"))
	if err := w.env.SnapshotDelete(ctx, ms, "s"); errdefs.KindOf(err) != errdefs.NotFound {
		t.Errorf("delete of a missing snapshot: %v", err)
	}
}

// TestReserve: a multi-machine up reserves every address first; a machine
// whose lock another den holds is left to that den.
func TestReserve(t *testing.T) {
	w := newWorld(t)
	p := w.project(twoMachines)
	ctx := context.Background()
	ms := w.machines(p)
	lk, err := ms[1].lock(ctx, "den up")
	must(t, err)
	must(t, w.env.reserveAll(ctx, ms))
	lk.Unlock()
	web, err := ms[0].Record()
	must(t, err)
	db, err := ms[1].Record()
	must(t, err)
	if web == nil || web.Address == "" || db != nil {
		t.Fatalf("reservations: web %+v, db %+v", web, db)
	}
	if w.state(ms[0]) != provider.NotCreated {
		t.Error("a reservation created the machine")
	}
	// Up keeps the reserved address.
	must(t, w.env.Up(ctx, ms, UpOptions{Parallel: true}))
	after, _ := ms[0].Record()
	if after.Address != web.Address {
		t.Errorf("web got %s, reserved %s", after.Address, web.Address)
	}
}

// TestTamperedStateDir: values in .den/ are data, never paths.
func TestTamperedStateDir(t *testing.T) {
	w := newWorld(t)
	p := w.project(`box = "test/box"`)
	ctx := context.Background()
	ms := w.machines(p)
	m := ms[0]
	must(t, ensureStateDir(w.dir, m.State))
	victim := filepath.Join(t.TempDir(), "victim")
	writeFile(t, filepath.Join(victim, "precious"), "data", 0o644)
	// A record that names a container outside den's machines.
	writeFile(t, m.State.Record(), fmt.Sprintf(`{"container": "../../%s", "project": %q, "machine": "default"}`, victim, w.dir), 0o600)
	if err := w.env.Destroy(ctx, ms); errdefs.KindOf(err) != errdefs.Tampered || !strings.Contains(err.Error(), m.State.Record()) {
		t.Errorf("destroy with a record naming another container: %v", err)
	}
	if _, err := os.Stat(filepath.Join(victim, "precious")); err != nil {
		t.Errorf("the folder a tampered record named was touched: %v", err)
	}
	os.Remove(m.State.Record())
	// A lock that is a symlink is refused, and its target left alone.
	target := filepath.Join(t.TempDir(), "target")
	writeFile(t, target, "keep\n", 0o644)
	os.Remove(m.State.Lock())
	must(t, os.Symlink(target, m.State.Lock()))
	if err := w.env.Halt(ctx, ms, false, time.Second); err == nil {
		t.Error("halt took a symlinked lock")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Errorf("the lock symlink's target was written: %q", b)
	}
	os.Remove(m.State.Lock())
	// A .den that is a symlink is refused.
	must(t, os.RemoveAll(filepath.Join(w.dir, ".den")))
	must(t, os.Symlink(t.TempDir(), filepath.Join(w.dir, ".den")))
	if err := w.env.Up(ctx, ms, UpOptions{}); errdefs.KindOf(err) != errdefs.Tampered {
		t.Errorf("up with .den a symlink: %v", err)
	}
}

// TestBoxStoreLock: a box in use cannot be removed, and no removal can run
// while an up is making a machine from it.
func TestBoxStoreLock(t *testing.T) {
	w := newWorld(t)
	p := w.project(`box = "test/box"`)
	ctx := context.Background()
	ms := w.machines(p)
	shared, err := w.env.Store.Lock(ctx, false, "den up")
	must(t, err)
	if err := w.env.RemoveBox(ctx, "test/box", "", false); errdefs.KindOf(err) != errdefs.Locked {
		t.Errorf("remove while an up holds the store: %v", err)
	}
	shared.Unlock()
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if err := w.env.RemoveBox(ctx, "test/box", "", false); errdefs.KindOf(err) != errdefs.Exists || !strings.Contains(err.Error(), ms[0].Container()) {
		t.Errorf("remove of a box in use: %v", err)
	}
	n, err := w.env.PruneBoxes(ctx, box.PruneOptions{KeepActive: true})
	if err != nil || n != 0 {
		t.Errorf("prune = %d, %v", n, err)
	}
	must(t, w.env.Destroy(ctx, ms))
	must(t, w.env.RemoveBox(ctx, "test/box", "", false))
}

func TestGlobalStatusAndPrune(t *testing.T) {
	w := newWorld(t)
	p := w.project(twoMachines)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms[:1], UpOptions{}))
	all, err := w.env.GlobalStatus(ctx)
	must(t, err)
	// web runs; db holds a reserved address.
	if len(all) != 2 || all[0].Name != "db" || all[0].State != "not created" || all[0].Stale != "" || all[1].State != "running" || all[1].Provider != "fake" {
		t.Fatalf("global status: %+v", all)
	}
	// The project folder goes away: both entries are stale, web's
	// container remains and the hint says how to remove it.
	must(t, os.RemoveAll(w.dir))
	all, err = w.env.GlobalStatus(ctx)
	must(t, err)
	dropped, err := w.env.PruneGlobal(ctx, all)
	must(t, err)
	if len(dropped) != 2 || !slices.ContainsFunc(dropped, func(g GlobalEntry) bool { return g.ContainerExists && strings.HasPrefix(g.RemoveHint, "fake-remove ") }) {
		t.Errorf("pruned: %+v", dropped)
	}
	w.prov.Destroy(ctx, ms[0].Container())
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// TestFirstProvisioningFinishesLater: a first up whose provisioning did
// not finish (here: a provisioner fails) says so in status, and the next
// up runs what did not complete, in order, then status is clean.
func TestFirstProvisioningFinishesLater(t *testing.T) {
	w := newWorld(t)
	p := w.project(`
box = "test/box"
provision "shell" {
  name   = "one"
  inline = ["true"]
}
provision "shell" {
  name   = "two"
  inline = ["true"]
}
provision "shell" {
  name   = "three"
  inline = ["true"]
}
`)
	ctx := context.Background()
	ms := w.machines(p)
	c := ms[0].Container()
	failTwo := true
	w.prov.Run = func(machine, cmd string, stdout func(string)) int {
		if failTwo && strings.Contains(cmd, "den-provision-two-") && !strings.HasPrefix(cmd, "rm") {
			return 5
		}
		return 0
	}
	if err := w.env.Up(ctx, ms, UpOptions{}); errdefs.KindOf(err) != errdefs.GuestFailed {
		t.Fatalf("first up: %v", err)
	}
	st, _ := w.env.Status(ctx, ms)
	if st[0].Provisioning != "unfinished" {
		t.Errorf("status after an unfinished first provisioning: %+v", st[0])
	}
	failTwo = false
	before := len(w.prov.Commands(c))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	cmds := w.prov.Commands(c)[before:]
	if countRuns(cmds, "one") != 0 || countRuns(cmds, "two") != 1 || countRuns(cmds, "three") != 1 {
		t.Errorf("the next up ran %v; want two and three only", cmds)
	}
	if !w.said("default", "first provisioning did not finish") {
		t.Error("up did not say it finishes the first provisioning")
	}
	st, _ = w.env.Status(ctx, ms)
	if st[0].Provisioning != "" {
		t.Errorf("status after the provisioning finished: %+v", st[0])
	}
	// A later up runs none of them and says so.
	before = len(w.prov.Commands(c))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if cmds := w.prov.Commands(c)[before:]; countRuns(cmds, "one")+countRuns(cmds, "two")+countRuns(cmds, "three") != 0 {
		t.Errorf("a later up ran %v", cmds)
	}
	if !w.said("default", "Machine already provisioned.") {
		t.Error("up did not say the machine is already provisioned")
	}
}

// TestLiveLimitsAndChanges: up of a running machine applies changed
// memory and cpus at once and names what needs a reload.
func TestLiveLimitsAndChanges(t *testing.T) {
	w := newWorld(t)
	p := w.project(`
box = "test/box"
memory = "256M"
`)
	ctx := context.Background()
	must(t, w.env.Up(ctx, w.machines(p), UpOptions{}))
	p = w.project(`
box = "test/box"
memory = "512M"
cpus = 1
hostname = "renamed"
`)
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if spec, _ := w.prov.Spec(ms[0].Container()); spec.Memory != 512<<20 || spec.CPUs != 1 {
		t.Errorf("limits in force: memory %d, cpus %d", spec.Memory, spec.CPUs)
	}
	if !w.said("default", "Applied den.hcl's new limits") || !w.said("default", "den.hcl changed hostname (") {
		t.Errorf("up did not say what it applied and what needs a reload: %+v", w.events)
	}
}

// TestNewMachineJoinsRunningPeers: a machine made later is added to the
// /etc/hosts of the project's running machines, and taken out again when
// it is destroyed.
func TestNewMachineJoinsRunningPeers(t *testing.T) {
	w := newWorld(t)
	p := w.project(`
box = "test/box"
machine "web" {}
`)
	ctx := context.Background()
	must(t, w.env.Up(ctx, w.machines(p), UpOptions{}))
	p = w.project(`
box = "test/box"
machine "web" {}
machine "cache" {}
`)
	ms := w.machines(p)
	before := len(w.prov.Commands(ms[0].Container()))
	must(t, w.env.Up(ctx, ms[1:], UpOptions{}))
	cmds := w.prov.Commands(ms[0].Container())[before:]
	if len(cmds) != 1 || !strings.Contains(cmds[0], "/etc/hosts") {
		t.Fatalf("web ran %v; want its /etc/hosts rewritten", cmds)
	}
	rec, _ := ms[0].Record()
	cache, _ := ms[1].Record()
	if !strings.Contains(rec.Hosts, cache.IP()+"\tcache") {
		t.Errorf("web's recorded /etc/hosts lacks cache:\n%s", rec.Hosts)
	}
	must(t, w.env.Destroy(ctx, ms[1:]))
	rec, _ = ms[0].Record()
	if strings.Contains(rec.Hosts, "cache") {
		t.Errorf("web's /etc/hosts still names the destroyed cache:\n%s", rec.Hosts)
	}
}

// TestOrphansAndGlobalIDs: a machine whose block left den.hcl is shown,
// destroyable, and refused by up; a global-status id names a machine from
// anywhere; a den.hcl that does not parse still lets status and destroy
// work from .den/.
func TestOrphansAndGlobalIDs(t *testing.T) {
	w := newWorld(t)
	p := w.project(`
box = "test/box"
machine "a" {}
machine "b" {}
`)
	ctx := context.Background()
	must(t, w.env.Up(ctx, w.machines(p), UpOptions{Parallel: true}))
	w.project(`
box = "test/box"
machine "a" {}
`)
	ms, err := w.env.Lookup(w.dir, nil, LookupOptions{Orphans: true})
	must(t, err)
	if len(ms) != 2 || ms[1].Name() != "b" || !ms[1].Orphan {
		t.Fatalf("machines with orphans: %v", ms)
	}
	st, err := w.env.Status(ctx, ms)
	must(t, err)
	if !st[1].Orphaned || st[1].State != "running" {
		t.Errorf("orphan's status: %+v", st[1])
	}
	if _, err := w.env.Lookup(w.dir, []string{"b"}, LookupOptions{}); errdefs.KindOf(err) != errdefs.NotFound || !strings.Contains(err.Error(), "den destroy b") {
		t.Errorf("an orphan where orphans are not taken: %v", err)
	}
	if err := w.env.Up(ctx, ms[1:], UpOptions{}); errdefs.KindOf(err) != errdefs.NotFound {
		t.Errorf("up of an orphan: %v", err)
	}
	// A global-status id, from another folder.
	entries, _ := ReadIndex(w.env.Home)
	var id string
	for _, e := range entries {
		if e.Machine == "a" {
			id = GlobalID(e.Container)
		}
	}
	got, err := w.env.Lookup(t.TempDir(), []string{id}, LookupOptions{})
	must(t, err)
	if len(got) != 1 || got[0].Name() != "a" || got[0].Project.Dir != w.dir {
		t.Errorf("lookup of id %s: %+v", id, got)
	}
	// den.hcl broken: status and destroy work from .den/.
	if err := os.WriteFile(filepath.Join(w.dir, config.FileName), []byte("box = \"unterminated\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := w.env.Lookup(w.dir, nil, LookupOptions{}); err == nil {
		t.Error("lookup without FromState took a broken den.hcl")
	}
	ms, err = w.env.Lookup(w.dir, nil, LookupOptions{Orphans: true, FromState: true})
	must(t, err)
	if len(ms) != 2 || !w.said("", "working from the machines recorded in .den/") {
		t.Fatalf("from .den/: %v", ms)
	}
	must(t, w.env.Destroy(ctx, ms))
	for _, m := range ms {
		if w.state(m) != provider.NotCreated {
			t.Errorf("%s survived destroy", m.Name())
		}
	}
}

// TestPortClashNamesTheHolder: a host port another den machine forwards is
// refused before the machine starts, naming that machine and the den.hcl
// line that asks for the port.
func TestPortClashNamesTheHolder(t *testing.T) {
	w := newWorld(t)
	port := freePort(t)
	hcl := fmt.Sprintf(`
box = "test/box"
machine "one" {
  forward {
    guest = 80
    host  = %d
  }
}
machine "two" {}
`, port)
	p := w.project(hcl)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms[:1], UpOptions{}))
	// Another project asks for the same port.
	other := newWorld(t)
	q := other.project(fmt.Sprintf("box = \"test/box\"\n\nforward {\n  guest = 22\n  host  = %d\n}\n", port))
	err := other.env.Up(ctx, other.machines(q), UpOptions{})
	want := fmt.Sprintf(`Host port %d/tcp on 127.0.0.1 is in use by den machine "one" of %s (its port forwarder, pid `, port, w.dir)
	var diag *config.DiagError
	if !errors.As(err, &diag) || len(diag.Diags) != 1 || !strings.Contains(diag.Diags[0].Detail, want) || diag.Diags[0].Subject.Start.Line != 5 {
		t.Errorf("port clash: %v\nwant a diagnostic at the host line saying %s", err, want)
	}
	if st := other.state(other.machines(q)[0]); st != provider.NotCreated {
		t.Errorf("the machine was made despite the clash: %s", st)
	}
	must(t, w.env.Halt(ctx, ms, false, time.Second))
}

// TestExec: den exec runs as the login user (or root), in the guest path
// of the synced folder den runs in, with a login environment, never the
// host's.
func TestExec(t *testing.T) {
	w := newWorld(t)
	p := w.project(`box = "test/box"`)
	ctx := context.Background()
	ms := w.machines(p)
	if _, err := w.env.Exec(ctx, ms[0], []string{"true"}, ExecOptions{}); errdefs.KindOf(err) != errdefs.NotCreated {
		t.Errorf("exec in a machine never made: %v", err)
	}
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	t.Setenv("SECRET_HOST_VAR", "leak")
	sub := filepath.Join(w.dir, "src", "lib")
	must(t, os.MkdirAll(sub, 0o755))
	std := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	status, err := w.env.Exec(ctx, ms[0], []string{"make", "test"}, ExecOptions{HostWD: sub, Stdin: std[0], Stdout: std[1], Stderr: std[2]})
	must(t, err)
	if status != 0 {
		t.Errorf("status %d", status)
	}
	cmds := w.prov.Commands(ms[0].Container())
	last := cmds[len(cmds)-1]
	for _, want := range []string{"exec 1000:1000 /den/src/lib ", "HOME=/home/den", "USER=den", "PATH=/usr/local/bin:", "-- make test"} {
		if !strings.Contains(last, want) {
			t.Errorf("exec ran %q; want %q in it", last, want)
		}
	}
	if strings.Contains(last, "SECRET_HOST_VAR") {
		t.Errorf("the host's environment leaked: %q", last)
	}
	w.env.Exec(ctx, ms[0], []string{"id"}, ExecOptions{Root: true, HostWD: t.TempDir(), Stdin: std[0], Stdout: std[1], Stderr: std[2]})
	cmds = w.prov.Commands(ms[0].Container())
	if last := cmds[len(cmds)-1]; !strings.HasPrefix(last, "exec 0:0 /root ") || !strings.Contains(last, "USER=root") {
		t.Errorf("exec --root ran %q", last)
	}
	must(t, w.env.Suspend(ctx, ms))
	if _, err := w.env.Exec(ctx, ms[0], []string{"true"}, ExecOptions{}); errdefs.KindOf(err) != errdefs.Frozen {
		t.Errorf("exec in a frozen machine: %v", err)
	}
}

// A project folder whose .den/ was removed (or replaced by a fresh copy
// at the same path) while its machine lived: up names the machine den
// made before and how to remove it, and destroy by its global-status id
// removes it; den neither adopts nor deletes it unasked.
func TestUpAfterDotDenLost(t *testing.T) {
	w := newWorld(t)
	p := w.project("box = \"test/box\"\nmemory = \"256M\"\n")
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	must(t, os.RemoveAll(filepath.Join(w.dir, ".den")))

	ms = w.machines(w.project("box = \"test/box\"\nmemory = \"256M\"\n"))
	err := w.env.Up(ctx, ms, UpOptions{})
	id := GlobalID(ms[0].Container())
	if errdefs.KindOf(err) != errdefs.Exists || err == nil || !strings.Contains(err.Error(), "den destroy -f "+id) {
		t.Fatalf("up with .den/ gone: %v (kind %v), want Exists naming 'den destroy -f %s'", err, errdefs.KindOf(err), id)
	}
	if st, _ := w.prov.State(ctx, ms[0].Container()); st != provider.Running {
		t.Errorf("the machine den made before: %v, want it left running", st)
	}
}
