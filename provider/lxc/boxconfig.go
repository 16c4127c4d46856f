package lxc

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A box's lxc-config is untrusted: den passes the lines it allows to LXC
// with SetConfigItem and LXC writes them back as "key = value" lines, which
// it reads again at every start. liblxc 5.0 splits a config file on every
// '\r' and '\n' (parse.c, lxc_file_for_each_line_mmap) and stops at a NUL,
// so a value holding one of them would come back as a second line of the
// box's choosing, a hook for instance. FilterBoxConfig therefore refuses
// any control character, and checks each allowed key's value for its form.

// BoxConfigError is a line of a box's lxc-config that den refuses.
type BoxConfigError struct {
	Line   int    // 1-based, among the lines given to FilterBoxConfig
	Text   string // the line as the box has it
	Reason string
}

// Error names the line by number and quotes it (control characters escaped).
func (e *BoxConfigError) Error() string {
	return fmt.Sprintf("line %d %q: %s", e.Line, e.Text, e.Reason)
}

// boxKeys are the only LXC keys a box's lxc-config may set, each with the
// check of its value: none of them runs host code, adds mounts or devices,
// or touches the rootfs or id maps. Every other key is dropped.
var boxKeys = map[string]func(string) error{
	"lxc.arch":          checkArch,
	"lxc.tty.max":       checkUint("a number of ttys", 64),
	"lxc.pty.max":       checkUint("a number of ptys", 4096),
	"lxc.signal.halt":   checkSignal,
	"lxc.signal.reboot": checkSignal,
	"lxc.signal.stop":   checkSignal,
	"lxc.environment":   checkEnvironment,
	"lxc.init.cmd":      checkPrintable,
	"lxc.init.cwd":      checkAbsPath,
	"lxc.init.uid":      checkUint("a user id", 1<<32-2),
	"lxc.init.gid":      checkUint("a group id", 1<<32-2),
	"lxc.cap.drop":      checkCapDrop,
	"lxc.console.size":  checkConsoleSize,
}

// FilterBoxConfig sorts a box's lxc-config lines (split on '\r' and '\n',
// as LXC does) into the allowed keys and values, in order, and the lines
// den drops, to be reported: keys not allowed, legacy keys (lxc.utsname),
// lines that are not "lxc.KEY = VALUE". Blank lines and comments are
// skipped. It refuses the whole config with a *BoxConfigError naming the
// first bad line when a line holds a control character (a tab only
// between key, '=' and value) or an allowed key's value is not of its form.
// Keys and values are trimmed of spaces and tabs, and a value in matching
// quotes is unquoted, as LXC reads them.
func FilterBoxConfig(lines []string) (allowed [][2]string, dropped []string, err error) {
	for i, line := range lines {
		refuse := func(format string, args ...any) error {
			return &BoxConfigError{Line: i + 1, Text: line, Reason: fmt.Sprintf(format, args...)}
		}
		if !utf8.ValidString(line) {
			return nil, nil, refuse("not UTF-8 text")
		}
		if j := strings.IndexFunc(line, isControl); j >= 0 {
			r, _ := utf8.DecodeRuneInString(line[j:])
			return nil, nil, refuse("control character %U; LXC would read what follows a line break or NUL as another line", r)
		}
		l := strings.Trim(line, " \t")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimRight(k, " \t")
		check := boxKeys[k]
		if !ok || check == nil {
			dropped = append(dropped, l)
			continue
		}
		v = unquote(strings.Trim(v, " \t"))
		if strings.ContainsRune(v, '\t') {
			return nil, nil, refuse("control character U+0009 (tab) in the value")
		}
		if v == "" {
			return nil, nil, refuse("empty value: it would clear what den and LXC's common.conf set")
		}
		if err := check(v); err != nil {
			return nil, nil, refuse("%s: %v", k, err)
		}
		allowed = append(allowed, [2]string{k, v})
	}
	return allowed, dropped, nil
}

// isControl reports control characters other than tab: C0, DEL and C1.
func isControl(r rune) bool { return r != '\t' && unicode.IsControl(r) }

// unquote removes one pair of matching quotes around v, as LXC does.
func unquote(v string) string {
	if len(v) > 1 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// arches are the names lxc.arch takes (liblxc's lxc_config_parse_arch).
var arches = []string{
	"arm", "armel", "armhf", "armv7l", "athlon", "i386", "i486", "i586", "i686", "linux32",
	"mips", "mipsel", "ppc", "powerpc", "x86", "aarch64", "amd64", "arm64", "linux64",
	"mips64", "mips64el", "ppc64", "ppc64el", "ppc64le", "powerpc64", "riscv64", "s390x", "x86_64",
}

func checkArch(v string) error {
	if !slices.Contains(arches, v) {
		return fmt.Errorf("unknown architecture (want one of %s)", strings.Join(arches, ", "))
	}
	return nil
}

// checkUint accepts a decimal number from 0 to limit.
func checkUint(what string, limit uint64) func(string) error {
	return func(v string) error {
		n, err := parseDecimal(v)
		if err != nil || n > limit {
			return fmt.Errorf("want %s, a whole number from 0 to %d", what, limit)
		}
		return nil
	}
}

// parseDecimal reads digits only (no sign, no base prefix).
func parseDecimal(v string) (uint64, error) {
	if v == "" || strings.Trim(v, "0123456789") != "" || len(v) > 19 {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(v, 10, 64)
}

// signals are the names liblxc's sig_parse knows, after "SIG".
var signals = []string{
	"HUP", "INT", "QUIT", "ILL", "ABRT", "FPE", "KILL", "SEGV", "PIPE", "ALRM", "TERM", "USR1", "USR2",
	"CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "TRAP", "IOT", "BUS", "STKFLT", "CLD", "URG",
	"XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
}

var rtSignalRE = regexp.MustCompile(`(?i)^SIGRT(MIN\+|MAX-)([0-9]{1,2})$`)

// checkSignal accepts a signal number (1-64), a name with its SIG prefix
// (any case) or SIGRTMIN+N / SIGRTMAX-N, as LXC does.
func checkSignal(v string) error {
	if n, err := parseDecimal(v); err == nil {
		if n < 1 || n > 64 {
			return fmt.Errorf("signal number %s is not in 1-64", v)
		}
		return nil
	}
	if m := rtSignalRE.FindStringSubmatch(v); m != nil {
		if n, _ := strconv.Atoi(m[2]); n <= 30 {
			return nil
		}
	}
	if len(v) > 3 && strings.EqualFold(v[:3], "SIG") && slices.ContainsFunc(signals, func(s string) bool { return strings.EqualFold(s, v[3:]) }) {
		return nil
	}
	return fmt.Errorf("want a signal name such as SIGPWR, or its number")
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnvironment accepts NAME=VALUE. A bare NAME is refused: LXC would
// copy that variable from the environment of the den process on the host.
func checkEnvironment(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want NAME=VALUE; a bare name would pass on den's own environment variable %q from the host", name)
	}
	if !envNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a variable name (letters, digits and '_', not starting with a digit)", name)
	}
	if value == "" {
		return nil
	}
	return checkPrintable(value)
}

// checkPrintable accepts printable text (letters, marks, numbers,
// punctuation, symbols and the ASCII space).
func checkPrintable(v string) error {
	if v == "" {
		return fmt.Errorf("empty")
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(v[i:])
		return fmt.Errorf("character %U is not printable", r)
	}
	return nil
}

func checkAbsPath(v string) error {
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("want an absolute path in the machine, such as /root")
	}
	return checkPrintable(v)
}

// capabilities are the names lxc.cap.drop takes (liblxc's caps_opt).
var capabilities = []string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// checkCapDrop accepts capability names (as LXC spells them: "sys_time")
// or numbers, separated by spaces.
func checkCapDrop(v string) error {
	for _, c := range strings.Fields(v) {
		if n, err := parseDecimal(c); err == nil && n < uint64(len(capabilities)) {
			continue
		}
		if !slices.Contains(capabilities, c) {
			return fmt.Errorf("%q is not a capability name (lower case without CAP_, e.g. sys_time)", c)
		}
	}
	return nil
}

var consoleSizeRE = regexp.MustCompile(`(?i)^([0-9]{1,12})\s*(B|KB|MB|GB)?$`)

// maxConsoleSize bounds the console ring buffer LXC keeps in memory.
const maxConsoleSize = 16 << 20

// checkConsoleSize accepts "auto" or a byte count with an optional B, KB,
// MB or GB (powers of 1024), up to 16 MB.
func checkConsoleSize(v string) error {
	if v == "auto" {
		return nil
	}
	m := consoleSizeRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf(`want "auto" or a size such as 128KB`)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	shift := map[string]uint{"": 0, "B": 0, "KB": 10, "MB": 20, "GB": 30}[strings.ToUpper(m[2])]
	if n > maxConsoleSize>>shift {
		return fmt.Errorf("at most 16MB")
	}
	return nil
}
