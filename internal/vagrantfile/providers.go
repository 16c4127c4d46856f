package vagrantfile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/den-dev/den/internal/config"
)

// providerNames are the providers' names for people.
var providerNames = map[string]string{
	"virtualbox": "VirtualBox", "libvirt": "libvirt", "vmware_desktop": "VMware", "vmware_fusion": "VMware",
	"vmware_workstation": "VMware", "parallels": "Parallels", "hyperv": "Hyper-V", "docker": "Docker",
	"lxc": "vagrant-lxc", "lxd": "LXD", "qemu": "QEMU", "aws": "AWS", "google": "Google Cloud", "azure": "Azure",
}

func providerName(p string) string {
	if n, ok := providerNames[p]; ok {
		return n
	}
	return p
}

// providerRank orders the providers whose memory and cpus den takes: the
// LXC provider first (den replaces it), then the others by closeness.
var providerRank = []string{"lxc", "lxd", "libvirt", "virtualbox", "vmware_desktop", "vmware_workstation", "vmware_fusion", "parallels", "hyperv", "qemu"}

func rank(p string) int {
	if i := slices.Index(providerRank, p); i >= 0 {
		return i
	}
	return len(providerRank)
}

// provider reads config.vm.provider NAME do |p, override| ... end.
func (c *conv) provider(e event, lv *level) {
	name := e.arg(0)
	if name != "lxc" && !slices.Contains(c.providers, name) {
		c.providers = append(c.providers, name)
	}
	if len(e.Blocks) == 0 {
		return
	}
	pfx := fmt.Sprintf("vm.provider %q: ", name)
	for _, b := range e.Blocks[0] {
		setting := pfx + settingName(b)
		switch {
		case b.Op == "set" && len(b.Path) == 0 && (b.Name == "memory" || b.Name == "cpus"):
			c.resource(lv, name, b.Name, b.Value, b.at(), setting, false)
		case name == "virtualbox" && b.Op == "call" && b.Name == "customize" && len(b.Path) == 0:
			c.vbCustomize(b, lv, pfx)
		case strings.HasPrefix(name, "vmware") && b.Op == "index" && slices.Equal(b.Path, []string{"vmx"}):
			switch k, _ := str(b.Key); k {
			case "memsize":
				c.resource(lv, name, "memory", b.Value, b.at(), setting, false)
			case "numvcpus":
				c.resource(lv, name, "cpus", b.Value, b.at(), setting, false)
			default:
				c.drop(b.at(), setting, "a VMware setting: den machines are LXC containers")
			}
		case name == "lxc" && b.Op == "call" && b.Name == "customize" && len(b.Path) == 0:
			c.lxcCustomize(b, lv, pfx)
		case name == "lxc":
			c.drop(b.at(), setting, "%s", lxcReason(b.Name))
		default:
			c.drop(b.at(), setting, "a %s setting: den machines are LXC containers", providerName(name))
		}
	}
	if len(e.Blocks) < 2 {
		return
	}
	if name == "lxc" {
		lv.override = append(lv.override, e.Blocks[1]...)
		return
	}
	for _, b := range e.Blocks[1] {
		c.drop(b.at(), pfx+"override."+settingName(b), "applies only when Vagrant runs the machine with %s", providerName(name))
	}
}

func lxcReason(name string) string {
	switch name {
	case "container_name":
		return "den names each machine's container itself"
	case "backingstore", "backingstore_option":
		return "den picks the store itself (btrfs when DEN_HOME is on btrfs, else an overlay over the box); storage = \"btrfs\" or \"overlay\" in den.hcl chooses"
	case "privileged":
		return "den runs machines unprivileged (root in the guest is an unprivileged host user); privileged = true in den.hcl makes one privileged, as vagrant-lxc's are by default"
	case "tmpfs_mount_size":
		return "den mounts no tmpfs at /tmp"
	case "fetch_ip_tries", "ssh_ip_addr":
		return "den sets each machine's address itself"
	}
	return "den has no such setting"
}

// resource records memory (megabytes; with isSize, a size such as "1G") or cpus.
func (c *conv) resource(lv *level, provider, kind string, v any, a at, setting string, isSize bool) {
	switch kind {
	case "memory":
		var bytes int64
		text := ""
		if s, ok := str(v); ok && isSize {
			n, err := config.ParseSize(s)
			if err != nil {
				c.drop(a, setting, "%s is not a size den reads", ruby(v))
				return
			}
			bytes, text = n, s
		} else if n, ok := integer(v); ok {
			bytes, text = n<<20, megabytes(n)
		} else {
			c.drop(a, setting, "%s is not a number of megabytes", ruby(v))
			return
		}
		if bytes < config.MinMemory {
			c.drop(a, setting, "%s is less than the 32 MiB den needs", ruby(v))
			return
		}
		lv.res = append(lv.res, res{provider, "memory", text, a, setting})
	case "cpus":
		n, ok := integer(v)
		if !ok || n < 1 {
			c.drop(a, setting, "%s is not a number of CPUs", ruby(v))
			return
		}
		lv.res = append(lv.res, res{provider, "cpus", strconv.FormatInt(n, 10), a, setting})
	}
}

// megabytes writes n MiB as den writes sizes: "2G", "1536M".
func megabytes(n int64) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%dG", n/1024)
	}
	return fmt.Sprintf("%dM", n)
}

// vbCustomize reads vb.customize ["modifyvm", :id, "--memory", "1024", ...].
func (c *conv) vbCustomize(b event, lv *level, pfx string) {
	setting := pfx + settingName(b)
	args, _ := list(firstArg(b))
	var words []string
	for _, a := range args {
		s, _ := str(a)
		words = append(words, s)
	}
	if len(words) < 3 || words[0] != "modifyvm" {
		c.drop(b.at(), setting, "a VirtualBox command: den machines are LXC containers")
		return
	}
	var rest []string
	for i := 2; i < len(words); i++ {
		if (words[i] == "--memory" || words[i] == "--cpus") && i+1 < len(words) {
			c.resource(lv, "virtualbox", strings.TrimPrefix(words[i], "--"), words[i+1], b.at(), setting, false)
			i++
			continue
		}
		rest = append(rest, words[i])
	}
	if len(rest) > 0 {
		c.drop(b.at(), setting, "VirtualBox options %s: den machines are LXC containers", strings.Join(rest, " "))
	}
}

func firstArg(e event) any {
	if len(e.Args) == 0 {
		return nil
	}
	return e.Args[0]
}

// legacyLXCKeys are LXC 2 key names vagrant-lxc Vagrantfiles use, and
// their names since LXC 3.0 (lxc-update-config's table).
var legacyLXCKeys = map[string]string{
	"aa_profile": "apparmor.profile", "aa_allow_incomplete": "apparmor.allow_incomplete",
	"tty": "tty.max", "pts": "pty.max", "se_context": "selinux.context",
	"haltsignal": "signal.halt", "rebootsignal": "signal.reboot", "stopsignal": "signal.stop",
	"init_cmd": "init.cmd", "init_uid": "init.uid", "init_gid": "init.gid",
	"console": "console.path", "utsname": "uts.name", "seccomp": "seccomp.profile",
	"loglevel": "log.level", "logfile": "log.file", "rootfs": "rootfs.path", "mount": "mount.fstab", "id_map": "idmap",
}

// lxcCustomize reads lxc.customize "KEY", "VALUE" (vagrant-lxc writes it
// as lxc.KEY = VALUE).
func (c *conv) lxcCustomize(b event, lv *level, pfx string) {
	setting := pfx + settingName(b)
	key, value := b.arg(0), b.arg(1)
	key = strings.TrimPrefix(key, "lxc.")
	switch key {
	case "cgroup.memory.limit_in_bytes", "cgroup2.memory.max":
		c.resource(lv, "lxc", "memory", value, b.at(), setting, true)
		return
	case "cgroup.cpuset.cpus", "cgroup2.cpuset.cpus":
		n, ok := countCPUs(value)
		if !ok {
			c.drop(b.at(), setting, "%q is not a list of CPUs", value)
			return
		}
		c.resource(lv, "lxc", "cpus", strconv.Itoa(n), b.at(), setting, false)
		c.note(Changed, b.at(), setting, "written as cpus = %d: den picks which host CPUs a machine gets", n)
		return
	}
	renamed := key
	first, rest, _ := strings.Cut(key, ".")
	if n, ok := legacyLXCKeys[key]; ok {
		renamed = n
	} else if first == "network" {
		renamed = "net." + rest
	}
	full := "lxc." + renamed
	if use, owned := config.OwnedLXCKey(full); owned {
		c.drop(b.at(), setting, "den sets %s itself; %s", full, use)
		return
	}
	if !config.ValidLXCKey(full) {
		c.drop(b.at(), setting, "%q is not an LXC key", key)
		return
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		c.drop(b.at(), setting, "an LXC value is one line")
		return
	}
	switch {
	case key == "cgroup.devices.allow" || key == "cgroup.devices.deny":
		// LXC applies device rules on a cgroup v2 host (Debian 12) through
		// lxc.cgroup2.devices.*, with the same syntax.
		full = "lxc.cgroup2." + strings.TrimPrefix(key, "cgroup.")
		c.note(Changed, b.at(), setting, "written as %s: LXC applies lxc.cgroup.* keys only on cgroup v1 hosts", full)
	case first == "cgroup":
		c.note(Changed, b.at(), setting, "written as %s, a cgroup v1 key that LXC applies only on cgroup v1 hosts: on cgroup v2 (Debian 12) write the lxc.cgroup2.* key, whose names and units differ", full)
	case renamed != key:
		c.note(Changed, b.at(), setting, "written as %s, the key's name since LXC 3.0", full)
	}
	lv.lxc = slices.DeleteFunc(lv.lxc, func(e kv) bool { return e.key == full })
	lv.lxc = append(lv.lxc, kv{full, value})
}

// countCPUs counts the CPUs of a cpuset list such as "0-1,3".
func countCPUs(s string) (int, bool) {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || b < a {
			return 0, false
		}
		n += b - a + 1
	}
	return n, n > 0
}
