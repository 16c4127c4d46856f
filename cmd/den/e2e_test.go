package main

// End-to-end tests: the real den binary, real LXC containers, real ssh.
// They need root, LXC, the lxcbr0 bridge and a box file in DEN_TEST_BOX
// (scripts/test.sh builds and caches one). Without them they skip, except
// under CI=true, where a skip is a failure.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/testenv"
	lxcprovider "github.com/den-dev/den/provider/lxc"
)

var e2e struct {
	bin     string // the den binary
	home    string // DEN_HOME of the tests
	lxcpath string
	reason  string // why e2e cannot run, or ""
}

func TestMain(m *testing.M) {
	code := func() int {
		cleanup, err := setupE2E()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e setup:", err)
			return 1
		}
		defer cleanup()
		return m.Run()
	}()
	os.Exit(code)
}

// setupE2E builds den (the CLI tests run it too) and, when the real parts
// are there, adds the test box into a fresh DEN_HOME.
func setupE2E() (func(), error) {
	dir, err := os.MkdirTemp("/var/tmp", "den-e2e-")
	if err != nil {
		return nil, err
	}
	// Unprivileged machines' roots must pass through the LXC path.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	e2e.home = filepath.Join(dir, "home")
	e2e.lxcpath = filepath.Join(e2e.home, "machines")
	e2e.bin = filepath.Join(dir, "den")
	cleanup := func() {
		// Kill anything a failed test left, then remove the test home with
		// den's own safe remover (it refuses mounts and never follows links).
		// den's own Destroy also unmounts what it mounted for a machine
		// in /run/den/mnt.
		if entries, err := os.ReadDir(e2e.lxcpath); err == nil {
			p, _ := lxcprovider.New(e2e.lxcpath)
			for _, en := range entries {
				if err := p.Destroy(context.Background(), en.Name()); err != nil {
					fmt.Fprintln(os.Stderr, "e2e cleanup:", err)
				}
			}
		}
		if err := fsutil.RemoveTree(dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e cleanup:", err)
		}
	}
	build := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", e2e.bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		cleanup()
		return nil, fmt.Errorf("go build: %w", err)
	}
	if e2e.reason = testenv.Reason(); e2e.reason != "" {
		return cleanup, nil
	}
	add := exec.Command(e2e.bin, "box", "add", "debian/bookworm", os.Getenv("DEN_TEST_BOX"))
	add.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
	out, err := add.CombinedOutput()
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("den box add: %v\n%s", err, out)
	}
	return cleanup, nil
}

// needE2E skips (or fails under CI) when the real parts are missing.
func needE2E(t *testing.T) {
	t.Helper()
	if e2e.reason != "" {
		testenv.Skip(t, e2e.reason)
	}
}

type result struct {
	out, err string
	code     int
}

// den runs the binary in dir with the test DEN_HOME.
func den(t *testing.T, dir string, stdin string, args ...string) result {
	t.Helper()
	cmd := denCmd(dir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return runCmd(t, cmd, "")
}

// denCmd is the den binary with args, in dir, with the test DEN_HOME.
func denCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(e2e.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
	return cmd
}

// runCmd runs a prepared den command and returns its output and exit
// status; a den that could not run at all fails the test. who (with its
// separator) starts the log line.
func runCmd(t *testing.T, cmd *exec.Cmd, who string) result {
	t.Helper()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %sden %v: %v", who, cmd.Args[1:], err)
	}
	t.Logf("%sden %s -> %d\n%s%s", who, strings.Join(cmd.Args[1:], " "), code, out.String(), errb.String())
	return result{out.String(), errb.String(), code}
}

func mustDen(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := den(t, dir, "", args...)
	if r.code != 0 {
		t.Fatalf("den %v failed with %d:\n%s%s", args, r.code, r.out, r.err)
	}
	return r.out
}

// newProject makes a project folder owned by uid/gid 1234 (so the guest
// user's uid mapping is tested) with den.hcl and a file.
func newProject(t *testing.T, name, hcl string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "den.hcl"), filepath.Join(dir, "hello.txt")} {
		if err := os.Chown(p, 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		r := den(t, dir, "", "destroy", "-f")
		if r.code != 0 {
			t.Errorf("cleanup destroy failed: %s", r.err)
		}
	})
	return dir
}

type statusJSON struct {
	Name, State, Address, Container string
}

func status(t *testing.T, dir string) []statusJSON {
	t.Helper()
	var s []statusJSON
	if err := json.Unmarshal([]byte(mustDen(t, dir, "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func lxcNames(t *testing.T) string {
	out, err := exec.Command("lxc-ls", "-P", e2e.lxcpath, "-1").CombinedOutput()
	if err != nil {
		t.Fatalf("lxc-ls: %v %s", err, out)
	}
	return string(out)
}

// cgroupValue reads a cgroup file of the container from the host's cgroup
// filesystem: v1file in the v1 controller v1ctrl, else v2file. It reads
// the container's own cgroup (lxc.payload.NAME), where LXC sets the limits,
// not the init.scope below it that systemd in the guest makes.
func cgroupValue(t *testing.T, container, v1ctrl, v1file, v2file string) string {
	t.Helper()
	out, err := exec.Command("lxc-info", "-P", e2e.lxcpath, "-n", container, "-p", "-H").Output()
	if err != nil {
		t.Fatalf("lxc-info: %v", err)
	}
	pid := strings.TrimSpace(string(out))
	cg, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own := func(p string) string {
		if i := strings.Index(p, "/lxc.payload."+container); i >= 0 {
			return p[:i+len("/lxc.payload.")+len(container)]
		}
		return p
	}
	v2 := host.CgroupLayout() == host.CgroupV2
	for _, l := range strings.Split(string(cg), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		file := ""
		switch {
		case v2 && f[0] == "0":
			file = filepath.Join("/sys/fs/cgroup", own(f[2]), v2file)
		case !v2 && strings.Contains(","+f[1]+",", ","+v1ctrl+","):
			file = filepath.Join("/sys/fs/cgroup", v1ctrl, own(f[2]), v1file)
		default:
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	t.Fatalf("no cgroup %s/%s for pid %s:\n%s", v1ctrl, v1file, pid, cg)
	return ""
}

func TestE2EMachineLifecycle(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-lifecycle", `box = "debian/bookworm"
memory = "256M"
`)
	up := mustDen(t, dir, "up")
	if !strings.Contains(up, "Machine booted and ready!") {
		t.Fatalf("up output lacks the ready line:\n%s", up)
	}
	st := status(t, dir)
	if len(st) != 1 || st[0].State != "running" || st[0].Address == "" {
		t.Fatalf("status after up: %+v", st)
	}
	container := st[0].Container

	// The box is in use: removing it is refused, naming the machine.
	if r := den(t, dir, "", "box", "remove", "debian/bookworm"); r.code == 0 || !strings.Contains(r.err, container) {
		t.Errorf("box remove of a box in use: code %d, %q", r.code, r.err)
	}

	// The project folder is at /den, both ways, owned by the project owner.
	if got := mustDen(t, dir, "ssh", "-c", "cat /den/hello.txt"); got != "hello from the host\n" {
		t.Fatalf("guest read %q", got)
	}
	mustDen(t, dir, "ssh", "-c", "echo written in the guest > /den/guest.txt; id -u")
	b, err := os.ReadFile(filepath.Join(dir, "guest.txt"))
	if err != nil || string(b) != "written in the guest\n" {
		t.Fatalf("host read guest.txt: %q %v", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "guest.txt"))
	if uid := statUID(fi); uid != 1234 {
		t.Errorf("guest.txt belongs to uid %d, want the project owner's 1234", uid)
	}
	// The login user keeps the box's uid: the owner's files are its own
	// through the mount's map. Guest root cannot create files there:
	// nothing it writes lands as the host's root.
	if got := mustDen(t, dir, "ssh", "-c", "id -u; stat -c %u /den/hello.txt"); got != "1000\n1000\n" {
		t.Errorf("the login user's uid and the owner's files in the guest: %q", got)
	}
	if r := den(t, dir, "", "ssh", "-c", "sudo touch /den/by-root"); r.code == 0 || !strings.Contains(r.err+r.out, "Value too large") {
		t.Errorf("guest root creating a file in /den: code %d, %q", r.code, r.err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "by-root")); err == nil {
		t.Errorf("guest root created a file in the project")
	}

	// The guest cannot change den.hcl nor read .den/.
	if r := den(t, dir, "", "ssh", "-c", "sudo sh -c 'echo evil >> /den/den.hcl'"); r.code == 0 {
		t.Errorf("guest could write den.hcl")
	}
	if got := mustDen(t, dir, "ssh", "-c", "ls -A /den/.den | wc -l"); strings.TrimSpace(got) != "0" {
		t.Errorf("guest sees .den contents: %q", got)
	}

	// The memory limit is in force in the container's cgroup.
	if got := cgroupValue(t, container, "memory", "memory.limit_in_bytes", "memory.max"); got != strconv.Itoa(256<<20) {
		t.Errorf("memory limit = %s, want %d", got, 256<<20)
	}

	// The remote exit status is den's exit status.
	if r := den(t, dir, "", "ssh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("ssh -c 'exit 3' gave %d", r.code)
	}

	// An interactive shell gets a terminal of the caller's size and TERM,
	// and its exit status is den's (script(1) gives den a terminal).
	out, code := onTerminal(t, dir, 100, 30, "ssh", "echo TERM=$TERM; tty; stty size; exit 5\n")
	if code != 5 {
		t.Errorf("interactive ssh: exit status %d\n%s", code, out)
	}
	for _, want := range []string{"TERM=xterm-256color", "/dev/pts/", "30 100"} {
		if !strings.Contains(out, want) {
			t.Errorf("interactive ssh output lacks %q:\n%s", want, out)
		}
	}

	// den exec on a terminal gives the command one: size, TERM, a
	// controlling terminal (the shell's job control works).
	out, code = onTerminal(t, dir, 90, 20, "exec -- bash -i", "echo TERM=$TERM; stty size; test -t 0 && echo IS-A-TTY; exit 4\n")
	if code != 4 {
		t.Errorf("interactive exec: exit status %d\n%s", code, out)
	}
	for _, want := range []string{"TERM=xterm-256color", "20 90", "IS-A-TTY"} {
		if !strings.Contains(out, want) {
			t.Errorf("interactive exec output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "no job control") {
		t.Errorf("the exec'd shell has no controlling terminal:\n%s", out)
	}

	// OpenSSH takes den's ssh-config, with the pinned host key.
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte(mustDen(t, dir, "ssh-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("ssh", "-F", cfg, "-o", "BatchMode=yes", "test-lifecycle-default", "echo", "via-openssh").CombinedOutput(); err != nil || !strings.Contains(string(b), "via-openssh") {
		t.Errorf("ssh -F: %v\n%s", err, b)
	}
	// exec: no sshd, the login user, a login environment, the synced
	// folder's guest path, the command's status (signals as 128+N).
	if got := mustDen(t, dir, "exec", "--", "sh", "-c", "id -un; pwd; echo $HOME; env | grep -c DEN_HOME || true"); got != "den\n/den\n/home/den\n0\n" {
		t.Errorf("den exec: %q", got)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if got := mustDen(t, sub, "exec", "--root", "--", "sh", "-c", "id -u; pwd"); got != "0\n/den/sub\n" {
		t.Errorf("den exec --root from a subfolder: %q", got)
	}
	if r := den(t, dir, "", "exec", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("den exec exit status: %d", r.code)
	}
	if r := den(t, dir, "", "exec", "--", "sh", "-c", "kill -9 $$"); r.code != 137 {
		t.Errorf("den exec of a killed command: %d, want 137", r.code)
	}
	if r := den(t, dir, "input\n", "exec", "--", "cat"); r.out != "input\n" {
		t.Errorf("den exec stdin: %q", r.out)
	}

	// upload: a host file into the login user's home, and to a path.
	upFile := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(upFile, []byte("uploaded\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustDen(t, dir, "upload", upFile)
	mustDen(t, dir, "upload", upFile, "/tmp/placed.txt", "default")
	if got := mustDen(t, dir, "ssh", "-c", "cat ~/notes.txt /tmp/placed.txt"); got != "uploaded\nuploaded\n" {
		t.Errorf("uploaded files hold %q", got)
	}

	// Arguments after -- go to OpenSSH, which den runs with that config.
	if got := mustDen(t, dir, "ssh", "-c", "echo via-dashdash", "--", "-o", "BatchMode=yes"); got != "via-dashdash\n" {
		t.Errorf("den ssh -- ARGS: %q", got)
	}

	// A tampered pin makes ssh fail clearly.
	pin := filepath.Join(dir, ".den", "default", "host_ed25519.pub")
	good, err := os.ReadFile(pin)
	if err != nil {
		t.Fatal(err)
	}
	other := mustDen(t, dir, "ssh", "-c", "ssh-keygen -q -t ed25519 -N '' -f /tmp/k >/dev/null && cat /tmp/k.pub")
	os.WriteFile(pin, []byte(other), 0o644)
	r := den(t, dir, "", "ssh", "-c", "true")
	if r.code == 0 || !strings.Contains(r.err, "host key") {
		t.Errorf("ssh with a tampered pin: code %d, stderr %q", r.code, r.err)
	}
	os.WriteFile(pin, good, 0o644)

	// halt, status, up again.
	mustDen(t, dir, "halt")
	if st := status(t, dir); st[0].State != "stopped" {
		t.Fatalf("status after halt: %+v", st)
	}
	mustDen(t, dir, "up")
	if got := mustDen(t, dir, "ssh", "-c", "cat /den/guest.txt"); got != "written in the guest\n" {
		t.Fatalf("after restart: %q", got)
	}

	// destroy refuses without a terminal and without -f.
	if r := den(t, dir, "", "destroy"); r.code == 0 || !strings.Contains(r.err, "-f") {
		t.Errorf("destroy without -f and without a TTY: code %d, %q", r.code, r.err)
	}
	mustDen(t, dir, "destroy", "-f")
	if names := lxcNames(t); strings.Contains(names, container) {
		t.Errorf("container still listed by lxc-ls: %s", names)
	}
	if _, err := os.Stat(filepath.Join(e2e.lxcpath, container)); !os.IsNotExist(err) {
		t.Errorf("machine folder still there: %v", err)
	}
	for _, f := range []string{"den.hcl", "hello.txt", "guest.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("project file %s after destroy: %v", f, err)
		}
	}
	if st := status(t, dir); st[0].State != "not created" {
		t.Errorf("status after destroy: %+v", st)
	}
	// Twice is fine.
	mustDen(t, dir, "destroy", "-f")
}

// TestE2EBoxFromFile adds the test box file into a fresh home, as a user
// with a box file would, and checks what landed; then a malicious box file
// is refused and the store does not change.
func TestE2EBoxFromFile(t *testing.T) {
	needE2E(t)
	home := t.TempDir()
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(e2e.bin, args...)
		cmd.Env = append(os.Environ(), "DEN_HOME="+home)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		t.Logf("den %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		return result{out.String(), errb.String(), code}
	}
	if r := run("box", "add", "debian/bookworm", os.Getenv("DEN_TEST_BOX")); r.code != 0 {
		t.Fatalf("box add failed: %s", r.err)
	}
	var boxes []struct {
		Name, Version, Path, User string
		Size                      int64
	}
	r := run("box", "list", "--json")
	if err := json.Unmarshal([]byte(r.out), &boxes); err != nil || len(boxes) != 1 {
		t.Fatalf("box list --json: %v %q", err, r.out)
	}
	b := boxes[0]
	if b.Name != "debian/bookworm" || b.User != "den" || b.Size < 50<<20 {
		t.Errorf("listed box: %+v", b)
	}
	rootfs := filepath.Join(b.Path, "rootfs")
	if fi, err := os.Stat(filepath.Join(rootfs, "usr/sbin/sshd")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("no sshd in the box: %v", err)
	}
	passwd, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	if !strings.Contains(string(passwd), "\nden:x:1000:1000:") {
		t.Errorf("no den user in /etc/passwd:\n%s", passwd)
	}
	if keys, _ := filepath.Glob(filepath.Join(rootfs, "etc/ssh/ssh_host_*")); len(keys) != 0 {
		t.Errorf("the box carries host keys: %v", keys)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "usr/bin/sudo")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("sudo is not setuid in the box: %v", err)
	}
	// An empty /etc/machine-id (not a missing one): systemd makes a new id
	// at each machine's first boot.
	if id, err := os.ReadFile(filepath.Join(rootfs, "etc/machine-id")); err != nil || len(id) != 0 {
		t.Errorf("the box's /etc/machine-id: %q, %v; want an empty file", id, err)
	}

	// A malicious box file is refused by name, and nothing lands.
	before := run("box", "list", "--json").out
	for _, evil := range []string{"evil-dotdot.box", "evil-symlink-write.box", "evil-hardlink-out.box"} {
		r := run("box", "add", "evil/box", filepath.Join("..", "..", "testdata", "archives", evil))
		if r.code != 1 || !strings.Contains(r.err, "refused") {
			t.Errorf("%s: exit %d, stderr %q", evil, r.code, r.err)
		}
	}
	if after := run("box", "list", "--json").out; after != before {
		t.Errorf("the store changed after refused adds:\n%s\n%s", before, after)
	}
	if entries, _ := os.ReadDir(filepath.Join(home, "boxes", ".tmp")); len(entries) != 0 {
		t.Errorf("temp area holds %d entries", len(entries))
	}

	// remove refuses nothing here (no machine uses it) and empties the store.
	if r := run("box", "remove", "debian/bookworm"); r.code != 0 {
		t.Errorf("box remove: %s", r.err)
	}
	if r := run("box", "list", "--json"); strings.TrimSpace(r.out) != "[]" {
		t.Errorf("after remove: %q", r.out)
	}
}

// onTerminal runs den with the shell words args in dir under script(1),
// which gives it a terminal of cols x rows with TERM=xterm-256color, and
// input typed on that terminal; it returns what the terminal showed and
// den's exit status.
func onTerminal(t *testing.T, dir string, cols, rows int, args, input string) (string, int) {
	t.Helper()
	cmd := exec.Command("script", "-qec", fmt.Sprintf("stty cols %d rows %d; %s %s", cols, rows, e2e.bin, args), "/dev/null")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEN_HOME="+e2e.home, "TERM=xterm-256color")
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil {
		t.Fatalf("script(1): %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
