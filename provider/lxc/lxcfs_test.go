package lxc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/den-dev/den/provider"
)

// fakeLXCFS lays out a host for lxcfsHost: a mount table, the daemon's
// binary and LXC's common.conf.d, each present or not.
func fakeLXCFS(t *testing.T, mountinfo string, binary, hook bool, dead bool) lxcfsHost {
	t.Helper()
	dir := t.TempDir()
	h := lxcfsHost{
		dir:       "/var/lib/lxcfs",
		confDir:   filepath.Join(dir, "common.conf.d"),
		binary:    filepath.Join(dir, "lxcfs"),
		mountinfo: filepath.Join(dir, "mountinfo"),
		stat: func(p string) error {
			if p != "/var/lib/lxcfs/proc/meminfo" {
				t.Errorf("stat of %s", p)
			}
			if dead {
				return syscall.ENOTCONN
			}
			return nil
		},
	}
	write := func(p, data string) {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(h.mountinfo, mountinfo)
	if binary {
		write(h.binary, "")
	}
	if err := os.Mkdir(h.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(h.confDir, "10-other.conf"), "lxc.hook.mount = /usr/share/other/hook\n")
	if hook {
		// Debian's lxcfs package, verbatim.
		write(filepath.Join(h.confDir, "00-lxcfs.conf"), "lxc.hook.mount = /usr/share/lxcfs/lxc.mount.hook\nlxc.hook.post-stop = /usr/share/lxcfs/lxc.reboot.hook")
	}
	return h
}

const (
	hostMounts = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
193 168 0:56 / /var/lib/lxcfs rw,nosuid,nodev,relatime shared:90 - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other
`
	// After a restart of the daemon: a new FUSE connection, a new device.
	hostMountsRestarted = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
193 168 0:72 / /var/lib/lxcfs rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other
`
	noLXCFSMounts = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
)

func TestLXCFSState(t *testing.T) {
	for _, tc := range []struct {
		name                string
		mountinfo           string
		binary, hook, dead  bool
		want                lxcfsState
		wantDev, wantInText string
	}{
		{"running", hostMounts, true, true, false, lxcfsRunning, "0:56", ""},
		{"not installed", noLXCFSMounts, false, false, false, lxcfsNotInstalled, "", "apt-get install lxcfs"},
		{"installed, not running", noLXCFSMounts, true, true, false, lxcfsStopped, "", "/etc/init.d/lxcfs start"},
		{"daemon gone, mount left", hostMounts, true, true, true, lxcfsDead, "0:56", "umount -l /var/lib/lxcfs"},
		{"running without LXC's hook", hostMounts, true, false, false, lxcfsNoHook, "0:56", "00-lxcfs.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeLXCFS(t, tc.mountinfo, tc.binary, tc.hook, tc.dead)
			st, dev := h.state()
			if st != tc.want || dev != tc.wantDev {
				t.Fatalf("state = %d, %q; want %d, %q", st, dev, tc.want, tc.wantDev)
			}
			msg := st.message()
			if (tc.wantInText == "") != (msg == "") || !strings.Contains(msg, tc.wantInText) {
				t.Errorf("message %q, want one with %q", msg, tc.wantInText)
			}
			if msg != "" && !strings.Contains(msg, "host's memory") {
				t.Errorf("message %q does not say the guest sees the host's memory", msg)
			}
		})
	}
}

func TestLXCFSGuestNotes(t *testing.T) {
	guest := []string{"0:56", "0:56", "0:56"} // a machine started under the first daemon
	for _, tc := range []struct {
		name      string
		host      string
		binary    bool
		guestDevs []string
		limited   bool
		want      string // a part of the one note, or "" for none
	}{
		{"views in place", hostMounts, true, guest, true, ""},
		{"daemon restarted since the machine started", hostMountsRestarted, true, guest, true, "Transport endpoint is not connected"},
		{"daemon stopped since the machine started", noLXCFSMounts, true, guest, false, "den reload"},
		{"machine started before the daemon", hostMounts, true, nil, true, "started before lxcfs"},
		{"no daemon, machine with limits", noLXCFSMounts, true, nil, true, "not running"},
		{"no daemon, machine without limits", noLXCFSMounts, true, nil, false, ""},
		{"not installed, machine with limits", noLXCFSMounts, false, nil, true, "not installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeLXCFS(t, tc.host, tc.binary, tc.binary, false)
			notes := h.guestNotes(tc.guestDevs, tc.limited)
			if tc.want == "" {
				if len(notes) != 0 {
					t.Errorf("notes %q, want none", notes)
				}
				return
			}
			if len(notes) != 1 || !strings.Contains(notes[0], tc.want) {
				t.Errorf("notes %q, want one with %q", notes, tc.want)
			}
		})
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `231 165 0:58 / / rw,relatime shared:82 - overlay overlay rw,lowerdir=/a,upperdir=/b
239 231 254:0 /src/my\040project /den rw,relatime shared:107 - ext4 /dev/vda rw
242 233 0:56 /proc/cpuinfo /proc/cpuinfo rw,nosuid,nodev,relatime shared:95 - fuse.lxcfs lxcfs rw,user_id=0
250 233 0:57 / /mnt/with\040space\134x rw master:3 shared:4 - tmpfs tmpfs rw
not a mountinfo line
`
	got := parseMountinfo(strings.NewReader(in))
	want := []mountinfoEntry{
		{"0:58", "/", "overlay"},
		{"254:0", "/den", "ext4"},
		{"0:56", "/proc/cpuinfo", "fuse.lxcfs"},
		{"0:57", `/mnt/with space\x`, "tmpfs"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseMountinfo:\n got %q\nwant %q", got, want)
	}
}

// TestBoxConfigCannotTouchLXCFS checks the config den writes for a box whose
// lxc-config tries to switch lxcfs off, add hooks or mounts, or include
// other files: none of it reaches the config, so LXC's common.conf (and the
// lxcfs hook it includes) stays in force and no box code runs on the host.
func TestBoxConfigCannotTouchLXCFS(t *testing.T) {
	p := &Provider{Path: t.TempDir()}
	hostile := []string{
		"lxc.hook.mount =",
		"lxc.hook.mount = /bin/sh -c 'touch /tmp/pwned'",
		"lxc.hook.pre-start = /tmp/evil",
		"lxc.hook.version = 1",
		"lxc.hook.post-stop=",
		"lxc.include = /tmp/evil.conf",
		"lxc.include=",
		"lxc.mount.auto =",
		"lxc.mount.auto = proc:rw sys:rw",
		"lxc.mount.entry = /var/lib/lxcfs/proc/meminfo proc/meminfo none bind 0 0",
		"lxc.mount.fstab = /tmp/fstab",
		"  lxc.hook.start-host = /tmp/evil",
		"lxc.clear = lxc.hook",
		"lxc.rootfs.path = dir:/",
		"lxc.apparmor.profile = unconfined",
		"lxc.arch = x86_64",
	}
	kv, err := p.config(&provider.Spec{Name: "m", Rootfs: "/boxes/b/rootfs", Hostname: "m", BoxConfig: hostile}, overlayStore{})
	if err != nil {
		t.Fatal(err)
	}
	includes := 0
	for _, item := range kv {
		k, v := item[0], item[1]
		switch {
		case strings.HasPrefix(k, "lxc.hook"), strings.HasPrefix(k, "lxc.mount"), k == "lxc.clear", strings.Contains(v, "evil"), strings.Contains(v, "pwned"):
			t.Errorf("a box's lxc-config reached the config: %s = %s", k, v)
		case k == "lxc.include":
			includes++
			if v != "/usr/share/lxc/config/common.conf" {
				t.Errorf("include of %q", v)
			}
		case k == "lxc.rootfs.path" && v != "overlay:/boxes/b/rootfs:"+p.upper("m"):
			t.Errorf("rootfs %q", v)
		}
	}
	if includes != 1 || kv[0] != [2]string{"lxc.include", "/usr/share/lxc/config/common.conf"} {
		t.Errorf("den's config must start with the one include of common.conf (which brings lxcfs's hook): %q", kv)
	}
	if !slices.Contains(kv, [2]string{"lxc.arch", "x86_64"}) {
		t.Errorf("an allowed key was dropped: %q", kv)
	}
}
