package lxc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	golxc "github.com/lxc/go-lxc"

	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/provider"
)

// hostileLines are lxc-config lines a hostile box could write to run code on
// the host, add mounts or devices, change the rootfs, id maps or
// confinement, or smuggle a second line past the allowlist.
var hostileLines = []string{
	// Hooks run on the host as root.
	"lxc.hook.pre-start = /bin/evil",
	"lxc.hook.pre-mount = /bin/evil",
	"lxc.hook.mount = /bin/evil",
	"lxc.hook.autodev = /bin/evil",
	"lxc.hook.start-host = /bin/evil",
	"lxc.hook.stop = /bin/evil",
	"lxc.hook.post-stop = /bin/evil",
	"lxc.hook.clone = /bin/evil",
	"lxc.hook.destroy = /bin/evil",
	"lxc.hook.version = 1",
	// Mounts, the rootfs, id maps.
	"lxc.mount.entry = / host none bind,rw 0 0",
	"lxc.mount.fstab = /etc/fstab",
	"lxc.mount.auto = proc:rw sys:rw cgroup:rw",
	"lxc.rootfs.path = dir:/",
	"lxc.rootfs.mount = /",
	"lxc.rootfs.options = idmap=container",
	"lxc.idmap = u 0 0 65536",
	"lxc.autodev = 0",
	// Confinement.
	"lxc.apparmor.profile = unconfined",
	"lxc.apparmor.allow_nesting = 1",
	"lxc.apparmor.allow_incomplete = 1",
	"lxc.apparmor.raw = mount,",
	"lxc.seccomp.profile = /dev/null",
	"lxc.seccomp.allow_nesting = 1",
	"lxc.seccomp.notify.proxy = unix:/run/x",
	"lxc.cap.keep = sys_admin",
	"lxc.cap.drop =",
	"lxc.cap.drop = none",
	"lxc.namespace.keep = user net",
	"lxc.namespace.share.net = 1",
	"lxc.no_new_privs = 0",
	"lxc.monitor.unshare = 0",
	// Devices and cgroups.
	"lxc.cgroup.devices.allow = a",
	"lxc.cgroup2.devices.allow = b 8:* rwm",
	"lxc.cgroup.dir = ../../..",
	"lxc.cgroup.relative = 1",
	"lxc.sysctl.kernel.core_pattern = |/bin/evil",
	"lxc.proc.oom_score_adj = -1000",
	"lxc.prlimit.nofile = unlimited",
	// Files on the host.
	"lxc.include = /etc/shadow",
	"lxc.log.file = /etc/cron.d/evil",
	"lxc.console.logfile = /etc/cron.d/evil",
	"lxc.console.path = /dev/sda",
	"lxc.tty.dir = ../../etc",
	// Network scripts run on the host.
	"lxc.net.0.type = phys",
	"lxc.net.0.link = eth0",
	"lxc.net.0.script.up = /bin/evil",
	"lxc.net.0.script.down = /bin/evil",
	"lxc.net.1.ipvlan.mode = l3s",
	// Container lifetime.
	"lxc.ephemeral = 1",
	"lxc.start.auto = 1",
	"lxc.start.delay = 0",
	// A host environment variable copied into the guest.
	"lxc.environment = AWS_SECRET_ACCESS_KEY",
	// Allowed keys whose value carries a second line, with each line ending
	// LXC knows and a NUL, bare and quoted.
	"lxc.init.cmd = /sbin/init\nlxc.hook.pre-start = /bin/evil",
	"lxc.init.cmd = /sbin/init\rlxc.hook.pre-start = /bin/evil",
	"lxc.init.cmd = /sbin/init\r\nlxc.hook.pre-start = /bin/evil",
	"lxc.init.cmd = /sbin/init\x00lxc.hook.pre-start = /bin/evil",
	`lxc.init.cmd = "/sbin/init` + "\r" + `lxc.hook.pre-start = /bin/evil"`,
	"lxc.environment = A=b\rlxc.hook.pre-start = /bin/evil",
	"lxc.environment = A=b\nlxc.mount.entry = / host none bind 0 0",
	"lxc.init.cwd = /\rlxc.hook.pre-start = /bin/evil",
	"lxc.signal.halt = SIGPWR\nlxc.hook.stop = /bin/evil",
	"lxc.arch = amd64\x00",
	"lxc.init.cmd = /sbin/init\vlxc.hook.pre-start = /bin/evil",
	"lxc.init.cmd = /sbin/init\flxc.hook.pre-start = /bin/evil",
	"lxc.init.cmd = /sbin/init\u0085lxc.hook.pre-start = /bin/evil",
	"lxc.init.cmd = /sbin/init\u2028lxc.hook.pre-start = /bin/evil",
	"lxc.init.cmd = /sbin/init\x1b[2J",
	"lxc.init.cmd = /sbin/init\x7f",
	"lxc.environment = A=b\tlxc.hook.pre-start=/bin/evil",
	"lxc.init.cmd = \xff\xfe",
	// Keys with odd spacing, case or shape.
	"  lxc.hook.pre-start=/bin/evil",
	"\tlxc.hook.pre-start\t=\t/bin/evil",
	"lxc.hook.pre-start     =     /bin/evil   ",
	"lxc.hook.pre-start\v= /bin/evil",
	"lxc.hook .pre-start = /bin/evil",
	"LXC.HOOK.PRE-START = /bin/evil",
	"lxc.init.cmd.x = /bin/evil",
	"lxc.arch.x = amd64",
	"lxc.hook.pre-start",
	"= /bin/evil",
	"lxc.utsname = evil",
	"lxc.network.type = phys",
}

// TestFilterBoxConfigHostile feeds FilterBoxConfig every key a hostile box
// could set: each line is refused or dropped, never applied.
func TestFilterBoxConfigHostile(t *testing.T) {
	for _, line := range hostileLines {
		t.Run(fmt.Sprintf("%q", line), func(t *testing.T) {
			allowed, dropped, err := FilterBoxConfig([]string{"lxc.arch = amd64", line})
			if err != nil {
				var be *BoxConfigError
				if !errors.As(err, &be) || be.Line != 2 || be.Text != line {
					t.Fatalf("error %v does not name line 2 and the line", err)
				}
				if !strings.HasPrefix(err.Error(), fmt.Sprintf("line 2 %q: ", line)) {
					t.Errorf("error %q does not start with the line number and the quoted line", err)
				}
				return
			}
			if !slices.Equal(allowed, [][2]string{{"lxc.arch", "amd64"}}) {
				t.Errorf("allowed %q: the line was applied", allowed)
			}
			if len(dropped) != 1 {
				t.Errorf("dropped %q: want the line reported", dropped)
			}
		})
	}
}

func TestFilterBoxConfigAllowed(t *testing.T) {
	lines := []string{
		"# a vagrant-lxc box's config",
		"",
		"lxc.arch = x86_64",
		"lxc.tty.max=4",
		"  lxc.pty.max   =   1024  ",
		"\tlxc.signal.halt\t=\tSIGPWR",
		"lxc.signal.reboot = sigrtmin+3",
		"lxc.signal.stop = 9",
		"lxc.environment = DEBIAN_FRONTEND=noninteractive",
		"lxc.environment = EMPTY=",
		"lxc.environment = GREETING=hello world",
		`lxc.init.cmd = "/sbin/init --log-level=info"`,
		"lxc.init.cwd = /root",
		"lxc.init.uid = 1000",
		"lxc.init.gid = 0",
		"lxc.cap.drop = sys_module mac_admin  mac_override 21",
		"lxc.console.size = 128KB",
		"lxc.console.size = auto",
		"lxc.include = /usr/share/lxc/config/debian.common.conf",
	}
	allowed, dropped, err := FilterBoxConfig(lines)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"lxc.arch", "x86_64"}, {"lxc.tty.max", "4"}, {"lxc.pty.max", "1024"}, {"lxc.signal.halt", "SIGPWR"},
		{"lxc.signal.reboot", "sigrtmin+3"}, {"lxc.signal.stop", "9"},
		{"lxc.environment", "DEBIAN_FRONTEND=noninteractive"}, {"lxc.environment", "EMPTY="}, {"lxc.environment", "GREETING=hello world"},
		{"lxc.init.cmd", "/sbin/init --log-level=info"}, {"lxc.init.cwd", "/root"}, {"lxc.init.uid", "1000"}, {"lxc.init.gid", "0"},
		{"lxc.cap.drop", "sys_module mac_admin  mac_override 21"}, {"lxc.console.size", "128KB"}, {"lxc.console.size", "auto"},
	}
	if !slices.Equal(allowed, want) {
		t.Errorf("allowed\n got %q\nwant %q", allowed, want)
	}
	if !slices.Equal(dropped, []string{"lxc.include = /usr/share/lxc/config/debian.common.conf"}) {
		t.Errorf("dropped %q", dropped)
	}
}

func TestFilterBoxConfigForms(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"lxc.arch = sparc", "unknown architecture"},
		{"lxc.arch = AMD64", "unknown architecture"},
		{"lxc.tty.max = 65", "from 0 to 64"},
		{"lxc.tty.max = -1", "from 0 to 64"},
		{"lxc.tty.max = 0x10", "from 0 to 64"},
		{"lxc.pty.max = 99999999999999999999999", "from 0 to 4096"},
		{"lxc.signal.halt = PWR", "signal name"},
		{"lxc.signal.halt = 65", "not in 1-64"},
		{"lxc.signal.halt = 0", "not in 1-64"},
		{"lxc.signal.stop = SIGRTMIN+31", "signal name"},
		{"lxc.environment = 1A=b", "not a variable name"},
		{"lxc.environment = A-B=c", "not a variable name"},
		{"lxc.environment = HOME", "bare name"},
		{"lxc.init.cmd = ''", "empty value"},
		{"lxc.init.cwd = root", "absolute path"},
		{"lxc.init.uid = -1", "user id"},
		{"lxc.init.uid = 4294967295", "user id"},
		{"lxc.init.gid = 1.5", "group id"},
		{"lxc.cap.drop = CAP_SYS_ADMIN", "not a capability name"},
		{"lxc.cap.drop = sys_time 41", "not a capability name"},
		{"lxc.console.size = 1GB", "at most 16MB"},
		{"lxc.console.size = 12K", "size"},
		{"lxc.signal.halt =", "empty value"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			_, _, err := FilterBoxConfig([]string{"# first", tc.line})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), fmt.Sprintf("line 2 %q: ", tc.line)) {
				t.Errorf("error %q: want line 2 named and %q", err, tc.want)
			}
		})
	}
}

// TestFilterBoxConfigInvariant checks, over every test line and pairs of
// them, that whatever is allowed is an allowlisted key whose value has no
// control character nor anything unprintable.
func TestFilterBoxConfigInvariant(t *testing.T) {
	lines := append(slices.Clone(hostileLines), "lxc.arch = amd64", "lxc.init.cmd = /sbin/init", "lxc.environment = A=b")
	for _, a := range lines {
		for _, b := range lines {
			allowed, _, err := FilterBoxConfig([]string{a, b})
			if err != nil {
				continue
			}
			for _, kv := range allowed {
				if boxKeys[kv[0]] == nil || strings.IndexFunc(kv[1], func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
					t.Errorf("%q, %q: allowed %q", a, b, kv)
				}
			}
		}
	}
}

// TestCreateNeverWritesBoxHooks creates containers with hostile box lines
// and reads each saved config back with LXC itself: no hook, mount or
// other key of the box's choosing may be in it. Before den refused
// control characters, a CR or LF in an lxc.init.cmd value came back from
// the saved config as an lxc.hook.pre-start line.
func TestCreateNeverWritesBoxHooks(t *testing.T) {
	p, base := rootProvider(t)
	lower := filepath.Join(base, "box", "rootfs")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, line := range hostileLines {
		t.Run(fmt.Sprintf("%q", line), func(t *testing.T) {
			name := fmt.Sprintf("den-test-boxcfg-%03d", i)
			var warned []string
			spec := &provider.Spec{Name: name, Rootfs: lower, Hostname: "boxcfg", BoxConfig: []string{line},
				Warn: func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }}
			err := p.Create(context.Background(), spec)
			if err != nil {
				if !strings.Contains(err.Error(), filepath.Join(base, "box", "lxc-config")) || !strings.Contains(err.Error(), "line 1 ") {
					t.Errorf("error %q does not name the box's lxc-config and the line", err)
				}
				if _, serr := os.Lstat(p.dir(name)); serr == nil {
					t.Errorf("a refused create left %s", p.dir(name))
				}
				return
			}
			defer p.Destroy(context.Background(), name)
			if len(warned) != 1 {
				t.Errorf("warnings %q: want the dropped line named", warned)
			}
			c, err := golxc.NewContainer(name, p.Path)
			if err != nil {
				t.Fatalf("LXC cannot read the saved config: %v", err)
			}
			defer c.Release()
			for _, key := range []string{"lxc.hook.pre-start", "lxc.hook.stop", "lxc.hook.mount", "lxc.mount.entry", "lxc.apparmor.profile", "lxc.idmap", "lxc.cgroup.devices.allow"} {
				got := strings.Join(c.ConfigItem(key), " ")
				if strings.Contains(got, "evil") || strings.Contains(got, "host") || key == "lxc.apparmor.profile" && got != "unconfined" && got != "generated" {
					t.Errorf("%s = %q after LXC read the saved config", key, got)
				}
			}
			data, _ := os.ReadFile(filepath.Join(p.dir(name), "config"))
			if strings.Contains(string(data), "evil") {
				t.Errorf("saved config holds the box's line:\n%s", data)
			}
		})
	}
}

// rootProvider returns a provider in a temporary folder (its LXC path is
// base/machines), skipping the test unless it runs as root.
func rootProvider(t *testing.T) (p *Provider, base string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root; CI=true does not allow skipping")
		}
		testenv.Skip(t, "needs root (LXC reads the container config as root)")
	}
	base = t.TempDir()
	p, err := New(filepath.Join(base, "machines"))
	if err != nil {
		t.Fatal(err)
	}
	return p, base
}
