package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/den-dev/den/internal/fsutil"
)

// TestE2EAutostart: in a DEN_HOME of its own, machines marked autostart
// come back after every container was killed (as a host reboot would),
// one autostart_order after the other, with their port forwarders; the
// others stay down. The shipped init script halts them again.
func TestE2EAutostart(t *testing.T) {
	needE2E(t)
	home := filepath.Join(filepath.Dir(e2e.home), "home-autostart")
	lxcpath := filepath.Join(home, "machines")
	env := []string{"DEN_HOME=" + home}
	run := func(dir string, args ...string) result {
		t.Helper()
		return denAs(t, dir, env, args...)
	}
	must := func(dir string, args ...string) string {
		t.Helper()
		r := run(dir, args...)
		if r.code != 0 {
			t.Fatalf("den %v failed with %d:\n%s%s", args, r.code, r.out, r.err)
		}
		return r.out
	}
	project := func(name, hcl string) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(hcl), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { run(dir, "destroy", "-f", "--no-triggers") })
		return dir
	}
	// Runs last: nothing of this home survives a failed test.
	t.Cleanup(func() {
		entries, _ := os.ReadDir(lxcpath)
		for _, en := range entries {
			exec.Command("lxc-stop", "-P", lxcpath, "-n", en.Name(), "-k").Run()
		}
		if err := fsutil.RemoveTree(home); err != nil {
			t.Errorf("remove the test home: %v", err)
		}
	})
	must(t.TempDir(), "box", "add", "debian/bookworm", os.Getenv("DEN_TEST_BOX"))

	port := freePort(t)
	app := project("test-auto-app", fmt.Sprintf(`box    = "debian/bookworm"
memory = "256M"

machine "db" {
  autostart       = true
  autostart_delay = 1
}

machine "web" {
  autostart       = true
  autostart_order = 1
  forward {
    guest = 7777
    host  = %d
  }
}

machine "tool" {}
`, port))
	other := project("test-auto-other", "box = \"debian/bookworm\"\nmemory = \"256M\"\nautostart = true\n")
	must(app, "up")
	must(other, "up")

	// status and global-status show the flag; global-status from the index.
	if out := must(app, "status"); !strings.Contains(out, "autostart") {
		t.Errorf("status does not show autostart:\n%s", out)
	}
	var all []struct {
		Name, State, Directory, Container string
		Autostart                         bool
		Order                             int `json:"autostart_order"`
	}
	if err := json.Unmarshal([]byte(must(t.TempDir(), "global-status", "--json")), &all); err != nil {
		t.Fatal(err)
	}
	autos := map[string]string{}
	for _, g := range all {
		autos[filepath.Base(g.Directory)+"/"+g.Name] = fmt.Sprintf("%t/%d", g.Autostart, g.Order)
	}
	if want := "map[test-auto-app/db:true/0 test-auto-app/tool:false/0 test-auto-app/web:true/1 test-auto-other/default:true/0]"; fmt.Sprint(autos) != want {
		t.Errorf("global-status autostart: %v, want %s", autos, want)
	}

	// A host reboot: every container is killed, the forwarders die.
	entries, err := os.ReadDir(lxcpath)
	if err != nil || len(entries) != 4 {
		t.Fatalf("containers of the home: %v %v", entries, err)
	}
	for _, en := range entries {
		if out, err := exec.Command("lxc-stop", "-P", lxcpath, "-n", en.Name(), "-k").CombinedOutput(); err != nil {
			t.Fatalf("lxc-stop -k %s: %v %s", en.Name(), err, out)
		}
	}
	killForwarder(t, filepath.Join(app, ".den", "web", "forward.pid"))
	states := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, dir := range []string{app, other} {
			var st []statusJSON
			if err := json.Unmarshal([]byte(must(dir, "status", "--json")), &st); err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				out[filepath.Base(dir)+"/"+s.Name] = s.State
			}
		}
		return out
	}
	if st := fmt.Sprint(states()); st != "map[test-auto-app/db:stopped test-auto-app/tool:stopped test-auto-app/web:stopped test-auto-other/default:stopped]" {
		t.Fatalf("after the kill: %s", st)
	}

	out := must(t.TempDir(), "autostart")
	if st := fmt.Sprint(states()); st != "map[test-auto-app/db:running test-auto-app/tool:stopped test-auto-app/web:running test-auto-other/default:running]" {
		t.Errorf("after den autostart: %s", st)
	}
	// Order 0 (db, other's default) is up before order 1 (web) starts.
	webStart := strings.Index(out, "==> test-auto-app/web: Starting machine...")
	for _, ready := range []string{"==> test-auto-app/db: Machine booted and ready!", "==> test-auto-other/default: Machine booted and ready!", "==> test-auto-app/db: Waiting 1s (autostart_delay)"} {
		if i := strings.Index(out, ready); i < 0 || webStart < 0 || i > webStart {
			t.Errorf("%q (at %d) does not come before web's start (at %d):\n%s", ready, i, webStart, out)
		}
	}
	// web's forwarder is back: a TCP exchange through the host port.
	must(app, "ssh", "web", "-c", "setsid sh -c 'echo pong | nc -N -l 7777 > /tmp/req' </dev/null >/dev/null 2>&1 &")
	if reply, err := exchange(port); err != nil || reply != "pong\n" {
		t.Errorf("exchange through 127.0.0.1:%d after autostart: %q %v", port, reply, err)
	}

	// At shutdown, the init script den ships halts them; tool, started by
	// hand, keeps running.
	must(app, "up", "tool")
	script := filepath.Join(t.TempDir(), "den-autostart")
	src, err := os.ReadFile(filepath.Join("..", "..", "dist", "den-autostart.init"))
	if err != nil {
		t.Fatal(err)
	}
	src = []byte(strings.Replace(string(src), "\nDEN=/usr/local/bin/den\n", "\nDEN="+e2e.bin+"\n", 1))
	if err := os.WriteFile(script, src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", script, "stop")
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	t.Logf("den-autostart stop:\n%s", b)
	if err != nil {
		t.Errorf("den-autostart stop: %v", err)
	}
	if st := fmt.Sprint(states()); st != "map[test-auto-app/db:stopped test-auto-app/tool:running test-auto-app/web:stopped test-auto-other/default:stopped]" {
		t.Errorf("after den-autostart stop: %s", st)
	}
	if web, db := strings.Index(string(b), "test-auto-app/web: Attempting graceful shutdown"), strings.Index(string(b), "test-auto-app/db: Attempting graceful shutdown"); web < 0 || db < 0 || web > db {
		t.Errorf("stop order: web at %d, db at %d", web, db)
	}
}

// killForwarder kills the port forwarder whose pidfile is path, as a
// reboot would: den started it for this test.
func killForwarder(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("forwarder pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatalf("forwarder pidfile %q: %v", b, err)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), "__forward") || !strings.Contains(string(cmdline), path) {
		t.Fatalf("pid %d is not the forwarder of %s: %q", pid, path, cmdline)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}
