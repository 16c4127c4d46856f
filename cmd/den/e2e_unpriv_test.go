package main

// End-to-end tests of what an unprivileged machine promises: root in the
// guest (the login user through sudo) tries each way out of a container
// that worked against privileged machines, and the test checks on the
// host, with a marker only a host-side success could make, that none
// did. A privileged machine shows the markers work. A machine with
// nesting = true runs an LXC container of its own.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var escapeBuild struct {
	once sync.Once
	path string
	err  error
}

// escapeHelper builds testdata/escape, static (it runs in the guest),
// once per test run.
func escapeHelper(t *testing.T) string {
	t.Helper()
	escapeBuild.once.Do(func() {
		escapeBuild.path = filepath.Join(filepath.Dir(e2e.bin), "escape")
		cmd := exec.Command("go", "build", "-o", escapeBuild.path, "./testdata/escape")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			escapeBuild.err = fmt.Errorf("build the escape helper: %v\n%s", err, out)
		}
	})
	if escapeBuild.err != nil {
		t.Fatal(escapeBuild.err)
	}
	return escapeBuild.path
}

// putOwned writes a file of the project owner (1234) into dir.
func putOwned(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 1234, 1234); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// asRoot runs the escape helper in the machine as root (sudo) and
// returns what it printed.
func asRoot(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := den(t, dir, "", "ssh", "-c", "sudo /den/escape "+strings.Join(args, " ")+" 2>&1")
	if r.code != 0 {
		t.Fatalf("escape %v in the guest: exit %d\n%s%s", args, r.code, r.out, r.err)
	}
	if !strings.Contains(r.out, "ATTEMPT ") {
		t.Fatalf("escape %v in the guest attempted nothing:\n%s", args, r.out)
	}
	return r.out
}

// attempts maps each ATTEMPT line of out to "done" or "failed: ...".
func attempts(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "ATTEMPT "); ok {
			if what, res, ok := strings.Cut(rest, ": "); ok {
				m[what] = res
			}
		}
	}
	return m
}

func wantFailed(t *testing.T, out string, whats ...string) {
	t.Helper()
	got := attempts(out)
	for _, w := range whats {
		if res, ok := got[w]; !ok || !strings.HasPrefix(res, "failed") {
			t.Errorf("guest root's %q: %q, want it to fail\n%s", w, res, out)
		}
	}
}

func absent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists: an attempt from the guest ran on the host (%v)", path, err)
	}
}

// hostKnob is a host-global sysfs value that root may change harmlessly.
func hostKnob(t *testing.T) string {
	for _, k := range []string{"/sys/kernel/mm/ksm/pages_to_scan", "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan", "/sys/kernel/mm/ksm/sleep_millisecs"} {
		if _, err := os.Stat(k); err == nil {
			return k
		}
	}
	t.Fatal("no host-global sysfs value to try (ksm, khugepaged)")
	return ""
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// restoreIfChanged puts path's value back when a test ends, should a
// guest have changed it (a failure the test reports).
func restoreIfChanged(t *testing.T, path, value string) {
	t.Cleanup(func() {
		if readTrim(t, path) != value {
			os.WriteFile(path, []byte(value), 0o644)
		}
	})
}

// hostKey adds a key to the host root's user keyring for the test.
func hostKey(t *testing.T, desc, secret string) {
	t.Helper()
	id, err := unix.AddKey("user", desc, []byte(secret), unix.KEY_SPEC_USER_KEYRING)
	if err != nil {
		t.Fatalf("add a key to root's keyring: %v", err)
	}
	t.Cleanup(func() { unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0) })
	// Readable by its user (root), not only by a process that holds it.
	if err := unix.KeyctlSetperm(id, 0x3f3f0000); err != nil {
		t.Fatalf("set the key's permissions: %v", err)
	}
}

// hostHasKey reports whether root's user keyring holds a key desc (and
// removes it: a guest put it there).
func hostHasKey(t *testing.T, desc string) bool {
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0)
	if err != nil {
		return false
	}
	unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0)
	return true
}

// escapeProject makes a project with the escape helper and a payload
// that writes marker, owned by the project owner, and brings it up.
func escapeProject(t *testing.T, name, hcl string) (dir, marker string) {
	t.Helper()
	dir = newProject(t, name, "box = \"debian/bookworm\"\n"+hcl)
	helper, err := os.ReadFile(escapeHelper(t))
	if err != nil {
		t.Fatal(err)
	}
	putOwned(t, filepath.Join(dir, "escape"), helper, 0o755)
	marker = filepath.Join("/var/tmp", "den-escape-"+name+"-"+randomHex(t))
	t.Cleanup(func() { os.Remove(marker) })
	putOwned(t, filepath.Join(dir, "payload.sh"), []byte("#!/bin/sh\necho escaped > "+marker+"\n"), 0o755)
	mustDen(t, dir, "up")
	return dir, marker
}

func TestE2EGuestRootCannotEscape(t *testing.T) {
	needE2E(t)
	for _, tc := range []struct{ name, hcl string }{
		{"unprivileged", ""},
		// nesting mounts proc and sysfs where the guest may mount them
		// again: the weakest unprivileged machine.
		{"nesting", "nesting = true\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, marker := escapeProject(t, "test-escape-"+tc.name, tc.hcl)
			if got := mustDen(t, dir, "status"); !strings.Contains(got, "unprivileged: host ids") {
				t.Fatalf("the machine is not unprivileged:\n%s", got)
			}
			payload := filepath.Join(dir, "payload.sh")

			t.Run("guards", func(t *testing.T) {
				hcl := readTrim(t, filepath.Join(dir, "den.hcl"))
				key := readTrim(t, filepath.Join(dir, ".den", "default", "id_ed25519"))
				out := asRoot(t, dir, "guards", "/den")
				wantFailed(t, out, "umount den.hcl", "umount -l den.hcl", "umount .den", "umount -l .den",
					"remount den.hcl rw", "remount .den rw", "open den.hcl for writing",
					"bind the project without its mounts", "open_tree the project without its mounts", "create a file in .den")
				if strings.Contains(out, "FOUND") || strings.Contains(out, key) {
					t.Errorf("guest root saw inside .den:\n%s", out)
				}
				if got := readTrim(t, filepath.Join(dir, "den.hcl")); got != hcl {
					t.Errorf("den.hcl on the host changed to %q", got)
				}
				absent(t, filepath.Join(dir, ".den", "escape-marker"))
			})

			t.Run("core_pattern", func(t *testing.T) {
				const path = "/proc/sys/kernel/core_pattern"
				before := readTrim(t, path)
				restoreIfChanged(t, path, before)
				out := asRoot(t, dir, "core_pattern", payload)
				wantFailed(t, out, "write core_pattern through /proc")
				if strings.Contains(out, "write core_pattern through a fresh proc: done") || strings.Contains(out, "/dev/.lxc/proc: done") {
					t.Errorf("guest root wrote core_pattern:\n%s", out)
				}
				time.Sleep(500 * time.Millisecond)
				if got := readTrim(t, path); got != before {
					t.Errorf("the host's core_pattern is %q, was %q", got, before)
				}
				absent(t, marker)
				if tc.name == "nesting" && !strings.Contains(out, "mount a fresh proc : done") {
					t.Errorf("a nesting machine could not mount proc (what nesting is for):\n%s", out)
				}
			})

			t.Run("sysfs", func(t *testing.T) {
				knob := hostKnob(t)
				before := readTrim(t, knob)
				restoreIfChanged(t, knob, before)
				n, _ := strconv.Atoi(before)
				out := asRoot(t, dir, "sysfs", knob, strconv.Itoa(n+1))
				for what, res := range attempts(out) {
					if strings.HasPrefix(what, "write") && !strings.HasPrefix(res, "failed") {
						t.Errorf("guest root's %q: %s", what, res)
					}
				}
				if got := readTrim(t, knob); got != before {
					t.Errorf("the host's %s is %q, was %q", knob, got, before)
				}
			})

			t.Run("release_agent", func(t *testing.T) {
				out := asRoot(t, dir, "release_agent", payload)
				for what, res := range attempts(out) {
					if strings.HasPrefix(what, "set release_agent") && !strings.HasPrefix(res, "failed") {
						t.Errorf("guest root's %q: %s", what, res)
					}
				}
				time.Sleep(500 * time.Millisecond)
				absent(t, marker)
			})

			t.Run("keyring", func(t *testing.T) {
				secretDesc, guestDesc, secret := "den-escape-secret-"+randomHex(t), "den-escape-guest-"+randomHex(t), randomHex(t)
				hostKey(t, secretDesc, secret)
				out := asRoot(t, dir, "keyring", secretDesc, guestDesc)
				wantFailed(t, out, "find the host's key in root's user keyring")
				if strings.Contains(out, secret) || strings.Contains(out, "FOUND") {
					t.Errorf("guest root read the host root's key:\n%s", out)
				}
				if hostHasKey(t, guestDesc) {
					t.Errorf("guest root added a key to the host root's keyring:\n%s", out)
				}
			})

			t.Run("devices", func(t *testing.T) {
				var st unix.Stat_t
				if err := unix.Stat("/", &st); err != nil {
					t.Fatal(err)
				}
				line := "den-escape-kmsg-" + randomHex(t)
				disk := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
				out := asRoot(t, dir, "devices", line, disk)
				wantFailed(t, out, "mknod kmsg", "mknod the host's disk "+disk)
				if strings.Contains(out, "FOUND") {
					t.Errorf("guest root read the host's disk:\n%s", out)
				}
				if log, err := exec.Command("dmesg").Output(); err == nil && bytes.Contains(log, []byte(line)) {
					t.Errorf("guest root wrote %q into the host's kernel log", line)
				}
			})

			t.Run("module", func(t *testing.T) {
				mods, _ := os.ReadFile("/proc/modules")
				out := asRoot(t, dir, "module")
				for _, l := range strings.Split(out, "\n") {
					if rest, ok := strings.CutPrefix(l, "ERRNO "); ok {
						what, num, _ := strings.Cut(rest, " ")
						if n, _ := strconv.Atoi(num); n != int(unix.EPERM) && n != int(unix.ENOSYS) {
							t.Errorf("%s from the guest got errno %d: the kernel took the request (only EPERM, or ENOSYS without modules, means refused)", what, n)
						}
					}
				}
				if after, _ := os.ReadFile("/proc/modules"); !bytes.Equal(after, mods) {
					t.Errorf("the host's modules changed:\n%s", after)
				}
			})

			t.Run("lxc inside", func(t *testing.T) {
				out, ok := innerLXC(t, dir)
				switch {
				case tc.name == "nesting" && (!ok || !innerRan(out)):
					t.Errorf("LXC in a nesting machine: ok %v\n%s", ok, out)
				case tc.name != "nesting" && ok:
					t.Errorf("LXC started a container in a machine without nesting: nesting = true is not what lets it\n%s", out)
				}
			})
		})
	}
}

// innerRan reports whether out shows a process of the inner container:
// a pid of its own pid namespace, its hostname, and the machine's user
// namespace (not the host's identity map).
func innerRan(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		var pid int
		var host, inside, outside, count string
		if n, _ := fmt.Sscanf(l, "INNER pid %d hostname %s uid_map %s %s %s", &pid, &host, &inside, &outside, &count); n == 5 {
			return pid < 100 && host == "inner" && inside == "0" && outside != "0" && count == "65536"
		}
	}
	return false
}

// innerLXC copies the host's LXC (the packages lxc, liblxc1 and
// liblxc-common, built for the same Debian release as the test box) into
// the machine, makes a container there whose whole image is the escape
// helper (its init), starts it, runs a command in it and stops it. It
// needs no network.
func innerLXC(t *testing.T, dir string) (string, bool) {
	t.Helper()
	out, err := exec.Command("dpkg", "-L", "lxc", "liblxc1", "liblxc-common").Output()
	if err != nil {
		t.Fatalf("list the host's LXC files (dpkg -L): %v", err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\n") {
		if fi, err := os.Lstat(f); err == nil && !fi.IsDir() && !strings.Contains(f, "/share/man/") && !strings.Contains(f, "/share/doc/") {
			files = append(files, strings.TrimPrefix(f, "/"))
		}
	}
	tarball := filepath.Join(dir, "lxc.tar")
	tar := exec.Command("tar", "-C", "/", "-cf", tarball, "-T", "-")
	tar.Stdin = strings.NewReader(strings.Join(files, "\n") + "\n")
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar the host's LXC: %v\n%s", err, out)
	}
	os.Chown(tarball, 1234, 1234)
	script := `set -e
tar -C / -xf /den/lxc.tar
r=/var/lib/lxc/inner/rootfs
mkdir -p $r/proc $r/sys $r/dev $r/tmp
cp /den/escape $r/init
cat > /var/lib/lxc/inner/config <<CFG
lxc.include = /usr/share/lxc/config/common.conf
lxc.rootfs.path = dir:$r
lxc.uts.name = inner
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.init.cmd = /init init
lxc.log.file = /var/lib/lxc/inner/log
CFG
if ! lxc-start -n inner; then cat /var/lib/lxc/inner/log; exit 1; fi
lxc-info -n inner -s
lxc-attach -n inner -- /init whoami
lxc-stop -n inner -k
`
	putOwned(t, filepath.Join(dir, "inner.sh"), []byte(script), 0o644)
	r := den(t, dir, "", "ssh", "-c", "sudo sh /den/inner.sh 2>&1")
	return r.out + r.err, r.code == 0
}

// TestE2EEscapeMarkersWork runs the escapes whose markers are harmless to
// the host against a privileged machine, where they work: a test above
// that finds no marker has looked in the right place.
func TestE2EEscapeMarkersWork(t *testing.T) {
	needE2E(t)
	dir, _ := escapeProject(t, "test-escape-control", "privileged = true\n")
	if got := mustDen(t, dir, "status"); !strings.Contains(got, "privileged") {
		t.Fatalf("the machine is not privileged:\n%s", got)
	}
	out := asRoot(t, dir, "guards", "/den")
	if a := attempts(out); a["umount den.hcl"] != "done" || a["write den.hcl"] != "done" {
		t.Errorf("guest root of a privileged machine could not undo the den.hcl guard:\n%s", out)
	}
	if hcl := readTrim(t, filepath.Join(dir, "den.hcl")); !strings.Contains(hcl, "written by guest root") {
		t.Errorf("den.hcl on the host does not show the write: %q", hcl)
	}
	if !strings.Contains(out, "FOUND /den/.den/") {
		t.Errorf("guest root of a privileged machine did not reach .den:\n%s", out)
	}
	secretDesc, guestDesc, secret := "den-escape-secret-"+randomHex(t), "den-escape-guest-"+randomHex(t), randomHex(t)
	hostKey(t, secretDesc, secret)
	out = asRoot(t, dir, "keyring", secretDesc, guestDesc)
	if !strings.Contains(out, secret) {
		t.Errorf("guest root of a privileged machine did not read the host root's key:\n%s", out)
	}
	if !hostHasKey(t, guestDesc) {
		t.Errorf("guest root of a privileged machine did not reach the host root's keyring:\n%s", out)
	}
}

// TestE2EConvertPrivilegedMachine makes a machine privileged, as den did
// before machines were unprivileged, with a folder of the box deleted and
// made again (an opaque folder in its layer) and a snapshot; then den.hcl
// drops privileged = true and the next up converts it: the deleted files
// stay deleted, in the snapshot too, and /den still belongs to its owner.
func TestE2EConvertPrivilegedMachine(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-convert", "box = \"debian/bookworm\"\nprivileged = true\n")
	mustDen(t, dir, "up")
	change := "sudo sh -c 'rm -rf /usr/share/doc/apt && mkdir /usr/share/doc/apt && echo new > /usr/share/doc/apt/new && rm /etc/motd'"
	mustDen(t, dir, "ssh", "-c", change)
	mustDen(t, dir, "snapshot", "save", "before")
	mustDen(t, dir, "halt")
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte("box = \"debian/bookworm\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mustDen(t, dir, "status"); !strings.Contains(got, "privileged") || !strings.Contains(got, "converts it") {
		t.Errorf("status before the conversion:\n%s", got)
	}
	if up := mustDen(t, dir, "up"); !strings.Contains(up, "Converting the machine, made privileged, to run unprivileged") {
		t.Errorf("up did not say it converts:\n%s", up)
	}
	if got := mustDen(t, dir, "status"); !strings.Contains(got, "unprivileged: host ids") {
		t.Errorf("status after the conversion:\n%s", got)
	}
	check := "ls -A /usr/share/doc/apt; test -e /etc/motd && echo motd is back; awk '{print $1}' /proc/self/uid_map"
	if got := mustDen(t, dir, "ssh", "-c", check); got != "new\n0\n" {
		t.Errorf("the converted machine shows %q, want only new and no motd", got)
	}
	// den gave the login user the owner's uid when the machine was made
	// privileged: the owner map keeps /den the owner's.
	mustDen(t, dir, "ssh", "-c", "echo converted > /den/converted.txt")
	if fi, err := os.Stat(filepath.Join(dir, "converted.txt")); err != nil || statUID(fi) != 1234 {
		t.Errorf("a file the login user wrote after the conversion: %v", err)
	}
	mustDen(t, dir, "ssh", "-c", "sudo rm -rf /usr/share/doc/apt")
	mustDen(t, dir, "snapshot", "restore", "before")
	if got := mustDen(t, dir, "ssh", "-c", check); got != "new\n0\n" {
		t.Errorf("the converted snapshot shows %q, want only new and no motd", got)
	}
}

// TestE2EKilledUnprivileged kills den (SIGKILL) at several moments of an
// unprivileged up, halt and destroy: the next command finds the mounts a
// killed den left in /run/den/mnt and clears or reuses them, destroy
// never deletes while something is mounted, and nothing is left after.
func TestE2EKilledUnprivileged(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-killed", "box = \"debian/bookworm\"\n")
	var container string
	killAfter := func(d time.Duration, args ...string) {
		t.Helper()
		cmd := exec.Command(e2e.bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d)
		cmd.Process.Kill()
		cmd.Wait()
	}
	mnt := func() string { return filepath.Join("/run/den/mnt", container) }
	for i, d := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, 700 * time.Millisecond, 1000 * time.Millisecond} {
		killAfter(d, "up")
		mustDen(t, dir, "up")
		if container == "" {
			container = status(t, dir)[0].Container
		}
		if got := mustDen(t, dir, "ssh", "-c", "cat /den/hello.txt"); got != "hello from the host\n" {
			t.Fatalf("round %d: /den after a killed up: %q", i, got)
		}
		killAfter(d/2, "halt")
		mustDen(t, dir, "up")
		killAfter(d/3, "destroy", "-f")
		r := den(t, dir, "", "destroy", "-f")
		if r.code != 0 {
			t.Fatalf("round %d: destroy after a killed destroy: %s", i, r.err)
		}
		if left := mountsUnder(t, mnt()); len(left) > 0 {
			t.Errorf("round %d: mounts left after destroy: %v", i, left)
		}
		for _, p := range []string{mnt(), filepath.Join(e2e.lxcpath, container)} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("round %d: %s left after destroy", i, p)
			}
		}
		if cg, _ := filepath.Glob("/sys/fs/cgroup/*/lxc.*." + container); len(cg) > 0 {
			t.Errorf("round %d: cgroups left after destroy: %v", i, cg)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "hello.txt")); err != nil || string(b) != "hello from the host\n" {
			t.Fatalf("round %d: the project's file after destroy: %q %v", i, b, err)
		}
	}
}

// mountsUnder lists the host's mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}
