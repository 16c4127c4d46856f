package lxc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/den-dev/den/provider"
)

// An unprivileged machine's folders are laid out as trees on the host:
// each folder not inside another gets its own, the guards go at their
// place in the project's, and LXC binds only the trees.
func TestPlanAndConfigUnprivileged(t *testing.T) {
	p := &Provider{Path: "/var/lib/den/machines"}
	spec := &provider.Spec{
		Name: "den-app-default-abcdef", Rootfs: "/var/lib/den/boxes/b/1/lxc/rootfs", Hostname: "app",
		IDBase: 0x70010000, GuestUID: 1000, GuestGID: 1000, Nesting: true,
		Mounts: []provider.Mount{
			{Source: "/home/me/app", Target: "/den"},
			{Source: "/home/me/data", Target: "/data", ReadOnly: true},
			{Source: "/home/me/app/den.hcl", Target: "/den/den.hcl", ReadOnly: true, File: true},
			{Source: "/var/lib/den/empty", Target: "/den/.den", ReadOnly: true},
		},
	}
	mnt := MountRoot + "/" + spec.Name
	plan := p.planFolders(spec)
	want := []struct {
		dir    string
		parent int
	}{{mnt + "/folder0", -1}, {mnt + "/folder1", -1}, {mnt + "/folder0/den.hcl", 0}, {mnt + "/folder0/.den", 0}}
	for i, w := range want {
		if plan[i].dir != w.dir || plan[i].parent != w.parent {
			t.Errorf("mount %d (%s) planned at %s in %d, want %s in %d", i, plan[i].Target, plan[i].dir, plan[i].parent, w.dir, w.parent)
		}
	}
	kv, err := p.config(spec, overlayStore{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range kv {
		lines = append(lines, e[0]+" = "+e[1])
	}
	for _, w := range []string{
		fmt.Sprintf("lxc.idmap = u 0 %d 65536", spec.IDBase),
		fmt.Sprintf("lxc.idmap = g 0 %d 65536", spec.IDBase),
		"lxc.rootfs.path = overlay:" + mnt + "/box:" + mnt + "/machine/delta0",
		"lxc.rootfs.options = userxattr",
		"lxc.mount.entry = " + mnt + "/folder0 den none rbind,create=dir 0 0",
		"lxc.mount.entry = " + mnt + "/folder1 data none rbind,create=dir,ro 0 0",
		"lxc.mount.entry = proc dev/.lxc/proc proc create=dir,optional 0 0",
		"lxc.mount.entry = sys dev/.lxc/sys sysfs create=dir,optional 0 0",
		"lxc.mount.auto = cgroup:rw:force",
	} {
		if !slices.Contains(lines, w) {
			t.Errorf("config lacks %q:\n%s", w, strings.Join(lines, "\n"))
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "/home/me") {
			t.Errorf("config names a host folder itself (LXC must bind den's trees): %s", l)
		}
	}

	// Privileged: the folders as LXC bind mounts, no id map, and nesting
	// keeps common.conf's cgroup mounts.
	spec.IDBase = 0
	kv, err = p.config(spec, overlayStore{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range kv {
		if e[0] == "lxc.idmap" || e[0] == "lxc.rootfs.options" || e[1] == "cgroup:rw:force" || strings.Contains(e[1], MountRoot) {
			t.Errorf("privileged config has %s = %s", e[0], e[1])
		}
	}
}

// A DEN_HOME made 0700 (by an older den's first command, or by hand) kept
// every unprivileged machine from starting; den's own folders are now
// opened to pass through, and a folder above them is only named.
func TestCheckTraversable(t *testing.T) {
	top := t.TempDir()
	os.Chmod(filepath.Dir(top), 0o755) // the test's own folder above
	os.Chmod(top, 0o755)
	home := filepath.Join(top, "home")
	machines := filepath.Join(home, "machines")
	if err := os.MkdirAll(machines, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o700)
	if err := checkTraversable(machines); err != nil {
		t.Fatalf("den's own folders: %v", err)
	}
	for _, d := range []string{home, machines} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o711 {
			t.Errorf("%s: mode %04o, want 0711", d, fi.Mode().Perm())
		}
	}

	os.Chmod(top, 0o700) // the host's folder above DEN_HOME
	defer os.Chmod(top, 0o755)
	err := checkTraversable(machines)
	if err == nil || !strings.Contains(err.Error(), "chmod o+x "+top) {
		t.Errorf("a closed folder above DEN_HOME: %v, want one naming 'chmod o+x %s'", err, top)
	}
	if fi, _ := os.Stat(top); fi.Mode().Perm() != 0o700 {
		t.Errorf("den changed %s, which is not its own: %04o", top, fi.Mode().Perm())
	}
}
