package lxc

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lxcfs gives a container its own /proc/meminfo, cpuinfo, stat, uptime,
// diskstats, swaps, loadavg and /sys/devices/system/cpu, computed from its
// cgroups, so free, top and nproc show the machine's limits. Debian's
// lxcfs package ships /usr/share/lxc/config/common.conf.d/00-lxcfs.conf:
// an lxc.hook.mount that bind-mounts those files from /var/lib/lxcfs into
// every container whose config includes common.conf, as den's do, while
// the daemon runs (without it the hook does nothing). den adds nothing to
// a machine's config for lxcfs: it checks that the host's daemon runs and
// that a running machine's mounts are still the daemon's.
type lxcfsHost struct {
	dir       string // where the daemon mounts its filesystem
	confDir   string // LXC's common.conf.d, where the package puts its hook
	binary    string // the daemon
	mountinfo string // the host's mount table
	// stat checks that a file of the mount answers; a dead FUSE daemon
	// gives ENOTCONN.
	stat func(string) error
}

var hostLXCFS = lxcfsHost{
	dir:       "/var/lib/lxcfs",
	confDir:   "/usr/share/lxc/config/common.conf.d",
	binary:    "/usr/bin/lxcfs",
	mountinfo: "/proc/self/mountinfo",
	stat:      func(p string) error { _, err := os.Stat(p); return err },
}

// lxcfsState is what machines started now get from lxcfs.
type lxcfsState int

const (
	lxcfsRunning      lxcfsState = iota // mounted, answering, hooked into LXC
	lxcfsNotInstalled                   // neither the daemon nor its hook
	lxcfsStopped                        // installed, not mounted
	lxcfsDead                           // mounted, but its daemon is gone
	lxcfsNoHook                         // running, but LXC's config does not mount it
)

// lxcfsStartHint is how to start the daemon by hand.
const lxcfsStartHint = "start it with 'systemctl start lxcfs', or '/etc/init.d/lxcfs start' where systemd is not PID 1 (scripts/host-setup.sh does it)"

// problem says what is wrong with the host's lxcfs and how to fix it;
// "" for a running lxcfs.
func (s lxcfsState) problem() (what, fix string) {
	switch s {
	case lxcfsNotInstalled:
		return "lxcfs is not installed", "apt-get install lxcfs, then " + lxcfsStartHint
	case lxcfsStopped:
		return "lxcfs is installed but not running", lxcfsStartHint
	case lxcfsDead:
		return "lxcfs's mount at /var/lib/lxcfs is dead (its daemon ended)", "'umount -l /var/lib/lxcfs', then " + lxcfsStartHint
	case lxcfsNoHook:
		return "lxcfs runs, but no file in /usr/share/lxc/config/common.conf.d mounts it into containers", "Debian's lxcfs package ships that hook (00-lxcfs.conf)"
	}
	return "", ""
}

// message is the host's lxcfs problem as a note for 'den host check'; ""
// for a running lxcfs.
func (s lxcfsState) message() string {
	what, fix := s.problem()
	if what == "" {
		return ""
	}
	return what + ": machines started now show the host's memory and CPUs in free, top and /proc/meminfo, not their limits; " + fix
}

// state reports the host's lxcfs and, when it is mounted, the device of its
// mount ("0:56" in mountinfo), which every container's lxcfs mount shares.
func (h lxcfsHost) state() (lxcfsState, string) {
	dev := ""
	if f, err := os.Open(h.mountinfo); err == nil {
		for _, m := range parseMountinfo(f) {
			if m.fstype == "fuse.lxcfs" && m.point == h.dir {
				dev = m.dev // the last one is on top
			}
		}
		f.Close()
	}
	if dev == "" {
		if fileExists(h.binary) || h.hooked() {
			return lxcfsStopped, ""
		}
		return lxcfsNotInstalled, ""
	}
	if err := h.stat(filepath.Join(h.dir, "proc", "meminfo")); err != nil {
		return lxcfsDead, dev
	}
	if !h.hooked() {
		return lxcfsNoHook, dev
	}
	return lxcfsRunning, dev
}

// hooked reports whether LXC's common config mounts lxcfs into containers.
func (h lxcfsHost) hooked() bool {
	entries, err := os.ReadDir(h.confDir)
	if err != nil {
		return false
	}
	for _, en := range entries {
		if !strings.HasSuffix(en.Name(), ".conf") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(h.confDir, en.Name()))
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(l, "=")
			if ok && strings.TrimSpace(k) == "lxc.hook.mount" && strings.Contains(v, "lxcfs") {
				return true
			}
		}
	}
	return false
}

// guestNotes says what a person should know about a running machine's
// views, given the devices of the fuse.lxcfs mounts in its mount table and
// whether it has limits that lxcfs would show (memory, or fewer CPUs than
// the host's).
func (h lxcfsHost) guestNotes(guestDevs []string, limited bool) []string {
	st, dev := h.state()
	if len(guestDevs) > 0 {
		for _, d := range guestDevs {
			if st == lxcfsNotInstalled || st == lxcfsStopped || d != dev {
				return []string{"lxcfs was restarted or stopped after this machine started: free, top and /proc/meminfo fail in it ('Transport endpoint is not connected'); restart the machine (den reload) to mount lxcfs's new files. Reload lxcfs with SIGUSR1 ('systemctl reload lxcfs'), which keeps running machines' views, rather than restarting it"}
			}
		}
		return nil
	}
	if !limited {
		return nil
	}
	if st == lxcfsRunning {
		return []string{"this machine started before lxcfs did: free, top and /proc/meminfo in it show the host's memory and CPUs; restart the machine (den reload) to see its limits"}
	}
	what, fix := st.problem()
	return []string{what + ": free, top and /proc/meminfo in this machine show the host's memory and CPUs, not its limits; " + fix + ", then restart the machine (den reload)"}
}

// mountinfoEntry is one line of a mountinfo file.
type mountinfoEntry struct {
	dev    string // major:minor
	point  string // mount point, unescaped
	fstype string
}

// parseMountinfo reads a /proc/PID/mountinfo file.
func parseMountinfo(r io.Reader) []mountinfoEntry {
	var out []mountinfoEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 {
			continue
		}
		out = append(out, mountinfoEntry{dev: f[2], point: unescapeOctal(f[4]), fstype: g[0]})
	}
	return out
}

// unescapeOctal undoes mountinfo's \NNN escapes (\040 for a space).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, ok := octal(s[i+1 : i+4]); ok {
				b.WriteByte(n)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n*8 + int(c-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}

// guestLXCFS lists the devices of the lxcfs mounts in the mount table of
// the process pid (a container's init).
func guestLXCFS(pid int) ([]string, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var devs []string
	for _, m := range parseMountinfo(f) {
		if m.fstype == "fuse.lxcfs" {
			devs = append(devs, m.dev)
		}
	}
	return devs, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
