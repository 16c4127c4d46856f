package main

// End-to-end tests of provider "lxd": the den binary against this host's
// LXD through its socket, the same server as a remote over HTTPS, and a
// cluster of two LXD daemons (e2e_cluster_test.go). They need what the
// LXC end-to-end tests need and LXD (scripts/lxd-setup.sh); without it
// they skip, except under CI=true.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/provider/lxd/lxdtest"
)

// needLXD skips (or fails under CI) when LXD tests cannot run.
func needLXD(t *testing.T) {
	t.Helper()
	needE2E(t)
	if why := testenv.LXDReason(); why != "" {
		testenv.Skip(t, why)
	}
}

// lxdBackend is where a scenario's machines go.
type lxdBackend struct {
	lxd     string            // the top-level lxd block's body
	targets map[string]string // machine → its lxd block's body (cluster members)
	remote  bool              // not this host's socket: rsync folders, forwards over ssh
	where   string            // the location den status shows ("" for this host)
	socket  string            // the unix socket of a server holding the instances
}

// addSelfRemote adds this host's LXD as remote name of the test DEN_HOME
// over HTTPS, and untrusts den's certificate when the test ends.
func addSelfRemote(t *testing.T, name string) {
	t.Helper()
	token, err := lxdtest.Token(lxdtest.Socket, "den-e2e")
	if err != nil {
		t.Fatal(err)
	}
	mustDen(t, t.TempDir(), "remote", "add", name, lxdtest.HTTPS, "--token", token)
	t.Cleanup(func() {
		den(t, t.TempDir(), "", "remote", "remove", name)
		cert, err := os.ReadFile(filepath.Join(e2e.home, "lxd", "client.crt"))
		if err == nil {
			err = lxdtest.Untrust(lxdtest.Socket, string(cert))
		}
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func TestE2ELXD(t *testing.T) {
	needLXD(t)
	t.Run("local", func(t *testing.T) {
		lxdScenario(t, lxdBackend{lxd: `network = "lxdbr0"`, socket: lxdtest.Socket})
	})
	t.Run("remote", func(t *testing.T) {
		addSelfRemote(t, "self")
		lxdScenario(t, lxdBackend{lxd: `remote = "self"`, remote: true, where: "self", socket: lxdtest.Socket})
	})
}

// lxdScenario runs den's lifecycle on two machines of one project on b:
// up in parallel with a provisioner, names, synced folders, limits, exit
// statuses, OpenSSH through ssh-config, den exec, a memory limit changed
// live, a forwarded port, suspend and resume, a snapshot, halt, reload,
// global-status and destroy.
func lxdScenario(t *testing.T, b lxdBackend) {
	port := freePort(t)
	block := func(m string) string {
		if b.targets[m] == "" {
			return ""
		}
		return "  lxd {\n    " + b.targets[m] + "\n  }\n"
	}
	hcl := fmt.Sprintf(`box      = "debian/bookworm"
provider = "lxd"
memory   = "256M"
cpus     = 1

lxd {
  %s
}

provision "shell" {
  inline = ["hostname > /tmp/provisioned"]
}

machine "web" {
%s  forward {
    guest = 7000
    host  = %d
  }
}

machine "db" {
%s}
`, b.lxd, block("web"), port, block("db"))
	dir := newProject(t, "test-lxd", hcl)

	out := mustDen(t, dir, "up")
	if strings.Count(out, "Machine booted and ready!") != 2 {
		t.Fatalf("up output:\n%s", out)
	}
	var st []struct{ Name, State, Address, Container, Provider, Location string }
	if err := json.Unmarshal([]byte(mustDen(t, dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	containers := map[string]string{}
	for _, s := range st {
		containers[s.Name] = s.Container
		if s.State != "running" || s.Provider != "lxd" || s.Address == "" || !strings.HasPrefix(s.Location, b.where) {
			t.Errorf("status of %s: %+v, want running on lxd at %q", s.Name, s, b.where)
		}
	}
	if b.targets != nil {
		if !strings.HasSuffix(st[0].Location, "/node1") || !strings.HasSuffix(st[1].Location, "/node2") {
			t.Errorf("the machines are not on their members: %+v", st)
		}
	}
	text := mustDen(t, dir, "status")
	if !strings.Contains(text, "lxd") {
		t.Errorf("den status does not name the provider:\n%s", text)
	}

	// The provisioner ran, and the machines reach each other by name.
	if got := mustDen(t, dir, "ssh", "web", "-c", "cat /tmp/provisioned"); got != "web\n" {
		t.Errorf("provisioned: %q", got)
	}
	if r := den(t, dir, "", "ssh", "web", "-c", "ping -c 1 -W 5 db >/dev/null && getent hosts db"); r.code != 0 || !strings.HasPrefix(r.out, st[1].Address) {
		t.Errorf("web cannot reach db by name: %d %q %q", r.code, r.out, r.err)
	}

	// The project folder.
	if got := mustDen(t, dir, "ssh", "web", "-c", "cat /den/hello.txt"); got != "hello from the host\n" {
		t.Fatalf("guest read %q", got)
	}
	if b.remote {
		// An rsync copy: never den.hcl nor .den/; 'den rsync' brings changes.
		if got := mustDen(t, dir, "ssh", "web", "-c", "ls -A /den"); strings.Contains(got, "den.hcl") || strings.Contains(got, ".den") {
			t.Errorf("the copy holds den's files: %q", got)
		}
		writeProjectFile(t, dir, "hello.txt", "changed on the host\n", 0o644)
		mustDen(t, dir, "rsync", "web")
		if got := mustDen(t, dir, "ssh", "web", "-c", "cat /den/hello.txt; stat -c %U /den/hello.txt"); got != "changed on the host\nden\n" {
			t.Errorf("after den rsync: %q", got)
		}
		// rsync-auto copies what changes, until it is interrupted.
		auto := exec.Command(e2e.bin, "rsync-auto", "web")
		auto.Dir = dir
		auto.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
		var autoOut strings.Builder
		auto.Stdout, auto.Stderr = &autoOut, &autoOut
		if err := auto.Start(); err != nil {
			t.Fatal(err)
		}
		writeProjectFile(t, dir, "sub/auto.txt", "made while rsync-auto watched\n", 0o644)
		got := ""
		for range 60 {
			if r := den(t, dir, "", "ssh", "web", "-c", "cat /den/sub/auto.txt 2>/dev/null"); r.code == 0 {
				got = r.out
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		auto.Process.Signal(os.Interrupt)
		if err := auto.Wait(); err != nil && auto.ProcessState.ExitCode() != 130 {
			t.Errorf("rsync-auto ended with %v:\n%s", err, autoOut.String())
		}
		if got != "made while rsync-auto watched\n" {
			t.Errorf("rsync-auto did not copy a new file: %q\n%s", got, autoOut.String())
		}
	} else {
		mustDen(t, dir, "ssh", "web", "-c", "echo written in the guest > /den/guest.txt")
		fi, err := os.Stat(filepath.Join(dir, "guest.txt"))
		if err != nil || statUID(fi) != 1234 {
			t.Errorf("guest.txt on the host: %v, want it owned by the project owner 1234", err)
		}
		if r := den(t, dir, "", "ssh", "web", "-c", "sudo sh -c 'echo evil >> /den/den.hcl'"); r.code == 0 {
			t.Errorf("the guest could write den.hcl")
		}
		if got := mustDen(t, dir, "ssh", "web", "-c", "ls -A /den/.den | wc -l"); strings.TrimSpace(got) != "0" {
			t.Errorf("the guest sees .den: %q", got)
		}
	}

	// Limits, exit status, OpenSSH with den's ssh-config.
	mem := mustDen(t, dir, "ssh", "db", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
	if strings.TrimSpace(mem) != strconv.Itoa(256<<20) {
		t.Errorf("memory limit in the guest: %q", mem)
	}
	if r := den(t, dir, "", "ssh", "db", "-c", "exit 3"); r.code != 3 {
		t.Errorf("ssh -c 'exit 3' gave %d", r.code)
	}
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte(mustDen(t, dir, "ssh-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	ssh := exec.Command("ssh", "-F", cfg, "-o", "BatchMode=yes", filepath.Base(dir)+"-db", "echo", "via-openssh")
	ssh.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
	if out, err := ssh.CombinedOutput(); err != nil || !strings.Contains(string(out), "via-openssh") {
		t.Errorf("ssh -F: %v\n%s", err, out)
	}

	// den exec: no sshd (LXD's exec API, on a remote too), the login user
	// in the project folder's guest path with a login environment (never
	// den's), root with --root, the command's status, stdin, a terminal.
	if got := mustDen(t, dir, "exec", "db", "--", "sh", "-c", "id -un; pwd; echo $HOME; env | grep -c DEN_HOME || true"); got != "den\n/den\n/home/den\n0\n" {
		t.Errorf("den exec: %q", got)
	}
	if got := mustDen(t, dir, "exec", "--root", "db", "--", "sh", "-c", "id -u; pwd"); got != "0\n/den\n" {
		t.Errorf("den exec --root: %q", got)
	}
	if r := den(t, dir, "", "exec", "db", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("den exec exit status: %d", r.code)
	}
	if r := den(t, dir, "", "exec", "db", "--", "sh", "-c", "kill -9 $$"); r.code != 137 {
		t.Errorf("den exec of a killed command: %d, want 137", r.code)
	}
	if r := den(t, dir, "input\n", "exec", "db", "--", "cat"); r.code != 0 || r.out != "input\n" {
		t.Errorf("den exec stdin: %d %q %q", r.code, r.out, r.err)
	}
	// The command lingers after its output: LXD can drop what an
	// interactive command wrote just before its end (canonical/lxd #1114).
	if out, code := onTerminal(t, dir, 100, 30, "exec db -- sh -c 'test -t 0 && stty size; sleep 1; exit 5'", ""); code != 5 || !strings.Contains(out, "30 100") {
		t.Errorf("den exec on a terminal: exit status %d\n%s", code, out)
	}

	// A new memory limit in den.hcl reaches the running machines at up.
	writeProjectFile(t, dir, "den.hcl", strings.Replace(hcl, `memory   = "256M"`, `memory   = "384M"`, 1), 0o644)
	if out := mustDen(t, dir, "up"); strings.Count(out, "Applied den.hcl's new limits") != 2 {
		t.Errorf("up after a memory change:\n%s", out)
	}
	mem = mustDen(t, dir, "exec", "db", "--", "sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
	if strings.TrimSpace(mem) != strconv.Itoa(384<<20) {
		t.Errorf("memory limit in the guest after up: %q, want %d", mem, 384<<20)
	}

	// The forwarded port.
	listenIn(t, dir, "web", 7000)
	if got, err := exchangeWhole(port); err != nil || got != "pong\n" {
		t.Errorf("forwarded port: %q %v", got, err)
	}

	// Suspend, resume.
	mustDen(t, dir, "suspend", "web")
	if r := den(t, dir, "", "ssh", "web", "-c", "true"); r.code == 0 || !strings.Contains(r.err, "suspended") {
		t.Errorf("ssh into a suspended machine: %d %q", r.code, r.err)
	}
	mustDen(t, dir, "resume", "web")

	// A snapshot, restored.
	mustDen(t, dir, "snapshot", "save", "web", "s1")
	mustDen(t, dir, "ssh", "web", "-c", "touch /home/den/after")
	mustDen(t, dir, "snapshot", "restore", "web", "s1")
	if r := den(t, dir, "", "ssh", "web", "-c", "test -e /home/den/after"); r.code == 0 {
		t.Errorf("the file made after the snapshot survived its restore")
	}
	mustDen(t, dir, "snapshot", "push", "web")
	if got := mustDen(t, dir, "snapshot", "list", "web"); !strings.Contains(got, "s1") || !strings.Contains(got, "push_") {
		t.Errorf("snapshot list:\n%s", got)
	}
	mustDen(t, dir, "snapshot", "pop", "web")
	mustDen(t, dir, "snapshot", "delete", "web", "s1")
	if got := mustDen(t, dir, "snapshot", "list", "web", "--json"); strings.TrimSpace(got) != "[]" {
		t.Errorf("snapshots left after pop and delete: %s", got)
	}

	// An interactive shell gets a terminal of the caller's size, and its
	// exit status is den's (through the exec stream on a remote).
	if out, code := onTerminal(t, dir, 100, 30, "ssh web", "stty size; exit 5\n"); code != 5 || !strings.Contains(out, "30 100") {
		t.Errorf("interactive ssh: exit status %d\n%s", code, out)
	}

	// A pin that does not match is refused, also through LXD.
	pin := filepath.Join(dir, ".den", "web", "host_ed25519.pub")
	good, err := os.ReadFile(pin)
	if err != nil {
		t.Fatal(err)
	}
	other := mustDen(t, dir, "ssh", "web", "-c", "ssh-keygen -q -t ed25519 -N '' -f /tmp/k >/dev/null && cat /tmp/k.pub")
	os.WriteFile(pin, []byte(other), 0o644)
	if r := den(t, dir, "", "ssh", "web", "-c", "true"); r.code == 0 || !strings.Contains(r.err, "host key") {
		t.Errorf("ssh with a wrong pin: %d %q", r.code, r.err)
	}
	os.WriteFile(pin, good, 0o644)

	// Halt and up one; reload the other, whose forward comes back.
	mustDen(t, dir, "halt", "db")
	if r := den(t, dir, "", "ssh", "db", "-c", "true"); r.code == 0 {
		t.Errorf("ssh into a halted machine worked")
	}
	mustDen(t, dir, "up", "db")
	mustDen(t, dir, "reload", "web")
	listenIn(t, dir, "web", 7000)
	if got, err := exchangeWhole(port); err != nil || got != "pong\n" {
		t.Errorf("forwarded port after reload: %q %v", got, err)
	}

	var gs []struct{ Name, Provider, State, Directory string }
	if err := json.Unmarshal([]byte(mustDen(t, dir, "global-status", "--json")), &gs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range gs {
		if g.Directory == dir && g.Provider == "lxd" && g.State == "running" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("global-status: %+v, want both machines running on lxd", gs)
	}

	mustDen(t, dir, "destroy", "-f")
	names, err := lxdtest.Instances(b.socket)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range containers {
		if slices.Contains(names, c) {
			t.Errorf("instance %s is still there after destroy", c)
		}
	}
	for _, f := range []string{"den.hcl", "hello.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("project file %s after destroy: %v", f, err)
		}
	}
}

// exchangeWhole is exchange without the half-close: LXD's proxy device
// ends the whole connection when the client ends its side, so the guest's
// answer would be lost. It sends "ping" and reads the reply until the
// guest closes.
func exchangeWhole(port int) (string, error) {
	var last error
	for range 50 {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
		if err != nil {
			return "", err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("ping\n"))
		b, err := io.ReadAll(c)
		c.Close()
		if len(b) > 0 {
			return string(b), nil
		}
		last = fmt.Errorf("empty reply (%v)", err)
		time.Sleep(100 * time.Millisecond)
	}
	return "", last
}

// listenIn is listenInGuest for machine m of a project of several.
func listenIn(t *testing.T, dir, m string, port int) {
	t.Helper()
	mustDen(t, dir, "ssh", m, "-c", fmt.Sprintf("setsid sh -c 'echo pong | nc -N -l %d > /tmp/req' </dev/null >/dev/null 2>&1 &", port))
}

// TestE2ELXDBesideLXC puts a machine on each provider in one project:
// both come up, den status shows both, destroy removes both.
func TestE2ELXDBesideLXC(t *testing.T) {
	needLXD(t)
	dir := newProject(t, "test-mixed", `box = "debian/bookworm"

machine "old" {
}

machine "new" {
  provider = "lxd"
  lxd {
    network = "lxdbr0"
  }
}
`)
	mustDen(t, dir, "up")
	var st []struct{ Name, State, Provider, Container string }
	if err := json.Unmarshal([]byte(mustDen(t, dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Provider != "lxc" || st[1].Provider != "lxd" || st[0].State != "running" || st[1].State != "running" {
		t.Fatalf("status: %+v, want old running on lxc and new running on lxd", st)
	}
	text := mustDen(t, dir, "status")
	if !strings.Contains(text, "lxc") || !strings.Contains(text, "lxd") {
		t.Errorf("den status shows not both providers:\n%s", text)
	}
	// Each reaches the other by name across the two engines' bridges.
	if r := den(t, dir, "", "ssh", "new", "-c", "getent hosts old"); r.code != 0 {
		t.Errorf("new does not know old by name: %q", r.err)
	}
	if !strings.Contains(lxcNames(t), st[0].Container) {
		t.Errorf("old is not an LXC container")
	}
	names, err := lxdtest.Instances(lxdtest.Socket)
	if err != nil || !slices.Contains(names, st[1].Container) {
		t.Errorf("new is not an LXD instance: %v %v", names, err)
	}
	mustDen(t, dir, "destroy", "-f")
	names, _ = lxdtest.Instances(lxdtest.Socket)
	if slices.Contains(names, st[1].Container) || strings.Contains(lxcNames(t), st[0].Container) {
		t.Errorf("destroy left a machine")
	}
}

// TestE2ELXDBadInput: what den.hcl names and the server lacks, a remote
// that does not trust den, and a wrong token are clear errors naming the
// den.hcl line or the remote, and nothing is made.
func TestE2ELXDBadInput(t *testing.T) {
	needLXD(t)
	before, err := lxdtest.Instances(lxdtest.Socket)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, block, want string }{
		{"profile", `profiles = ["default", "no-such-profile"]`, `den.hcl:5:14: error: Unknown LXD profile`},
		{"pool", `storage_pool = "no-such-pool"`, `den.hcl:5:18: error: Unknown LXD storage pool`},
		{"network", `network = "nonet0"`, `den.hcl:5:13: error: Unknown LXD network`},
		{"target", `target = "node9"`, `den.hcl:5:12: error: LXD remote is not a cluster`},
		{"remote", `remote = "nowhere"`, `den.hcl:5:12: error: Unknown LXD remote`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newProject(t, "test-bad-"+tc.name, "box = \"debian/bookworm\"\nprovider = \"lxd\"\n\nlxd {\n  "+tc.block+"\n}\n")
			r := den(t, dir, "", "up")
			if r.code != 1 || !strings.Contains(r.err, tc.want) {
				t.Errorf("up: exit %d, stderr %q; want 1 and %q", r.code, r.err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, ".den", "default", "machine.json")); !os.IsNotExist(err) {
				t.Errorf("a record was written: %v", err)
			}
		})
	}

	t.Run("wrong token", func(t *testing.T) {
		token, err := lxdtest.Token(lxdtest.Socket, "den-e2e-wrong")
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			ClientName  string   `json:"client_name"`
			Fingerprint string   `json:"fingerprint"`
			Addresses   []string `json:"addresses"`
			Secret      string   `json:"secret"`
		}
		raw, _ := base64Decode(token)
		json.Unmarshal(raw, &tok)
		tok.Secret = strings.Repeat("0", len(tok.Secret))
		wrong, _ := json.Marshal(tok)
		r := den(t, t.TempDir(), "", "remote", "add", "wrong", lxdtest.HTTPS, "--token", base64Encode(wrong))
		if r.code == 0 || !strings.Contains(r.err, `remote "wrong"`) || !strings.Contains(r.err, "refused the token") {
			t.Errorf("remote add with a wrong token: exit %d, %q", r.code, r.err)
		}
		if out := mustDen(t, t.TempDir(), "remote", "list"); strings.Contains(out, "wrong") {
			t.Errorf("the refused remote is listed:\n%s", out)
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		addSelfRemote(t, "revoked")
		cert, err := os.ReadFile(filepath.Join(e2e.home, "lxd", "client.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if err := lxdtest.Untrust(lxdtest.Socket, string(cert)); err != nil {
			t.Fatal(err)
		}
		dir := newProject(t, "test-bad-trust", "box = \"debian/bookworm\"\nprovider = \"lxd\"\n\nlxd {\n  remote = \"revoked\"\n}\n")
		r := den(t, dir, "", "up")
		if r.code != 1 || !strings.Contains(r.err, `den.hcl:5:12`) || !strings.Contains(r.err, `remote "revoked"`) || !strings.Contains(r.err, "does not trust den's client certificate") {
			t.Errorf("up on a remote that does not trust den: exit %d, %q", r.code, r.err)
		}
	})

	after, err := lxdtest.Instances(lxdtest.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("instances before %v, after %v: bad input made something", before, after)
	}
}

// TestE2ELXDPackage packages a machine of this host's LXD into a box file
// that den box add takes.
func TestE2ELXDPackage(t *testing.T) {
	needLXD(t)
	dir := newProject(t, "test-lxd-package", "box = \"debian/bookworm\"\nprovider = \"lxd\"\n")
	mustDen(t, dir, "up")
	mustDen(t, dir, "ssh", "-c", "echo packaged | sudo tee /etc/den-packaged >/dev/null")
	out := filepath.Join(t.TempDir(), "p.box")
	mustDen(t, dir, "package", "--output", out)
	if st := status(t, dir); st[0].State != "stopped" {
		t.Errorf("after package the machine is %s, want stopped", st[0].State)
	}
	home := t.TempDir()
	add := exec.Command(e2e.bin, "box", "add", "test/packaged", out)
	add.Env = append(os.Environ(), "DEN_HOME="+home)
	if b, err := add.CombinedOutput(); err != nil {
		t.Fatalf("box add of the package: %v\n%s", err, b)
	}
	rootfs, _ := filepath.Glob(filepath.Join(home, "boxes", "test-VAGRANTSLASH-packaged", "*", "lxc", "rootfs"))
	if len(rootfs) != 1 {
		t.Fatalf("no rootfs in %s", home)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs[0], "etc/den-packaged")); err != nil || string(b) != "packaged\n" {
		t.Errorf("the package lacks the machine's change: %q %v", b, err)
	}
	if keys, _ := filepath.Glob(filepath.Join(rootfs[0], "etc/ssh/ssh_host_*")); len(keys) != 0 {
		t.Errorf("the package holds host keys: %v", keys)
	}
	if fi, err := os.Stat(filepath.Join(rootfs[0], "home/den")); err != nil || statUID(fi) != 1234 {
		t.Errorf("home/den in the package: %v (want the guest's own uid 1234, not a shifted one)", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e2e.home, "lxd", "export")); len(entries) != 0 {
		t.Errorf("the export left %d entries", len(entries))
	}
}

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
func base64Encode(b []byte) string          { return base64.StdEncoding.EncodeToString(b) }
