package box

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// BuildOptions says what BuildRootfs makes. Empty fields take the defaults
// named on each field.
type BuildOptions struct {
	Suite    string            // Debian suite, e.g. "bookworm"; required
	Mirror   string            // default "http://deb.debian.org/debian"
	Arch     string            // default: the host's, from dpkg --print-architecture
	Packages []string          // installed on top of the recipe's packages
	User     string            // login user, default "den"
	Log      func(line string) // progress lines such as debootstrap's "I: Retrieving ..."; may be nil; one call at a time
}

// DefaultMirror is Debian's mirror, used when BuildOptions.Mirror is empty.
const DefaultMirror = "http://deb.debian.org/debian"

// buildDefaultUser is the login user when BuildOptions.User is empty.
const buildDefaultUser = "den"

// buildUID is the uid and gid of the login user and its group.
const buildUID = 1000

// buildKnown maps the box names that den can build to Debian suites.
var buildKnown = map[string]string{
	"debian/bookworm": "bookworm",
	"debian/trixie":   "trixie",
}

// buildPackages is what debootstrap installs on top of its minbase variant.
// Each exists in bookworm and trixie.
var buildPackages = []string{
	"openssh-server", "sudo", "systemd-sysv",
	"iproute2", "ifupdown", "isc-dhcp-client", "netbase", "iputils-ping",
	"ca-certificates", "less", "procps",
	// nc: a listener or client in one command, for quick checks of
	// forwarded ports and services (den's own tests use it).
	"netcat-openbsd",
	// rsync: the receiving end of type = "rsync" synced folders (a
	// remote LXD server cannot mount the project folder).
	"rsync",
}

// buildMasks are systemd units linked to /dev/null: useless or harmful in a
// den machine. Nothing sshd or the consoles need is among them.
var buildMasks = []string{
	// apt's daily update and unattended upgrade take apt's lock at random
	// times, so a provisioner's "apt-get install" fails; den machines are
	// updated by their user.
	"apt-daily.timer", "apt-daily.service",
	"apt-daily-upgrade.timer", "apt-daily-upgrade.service",
	// e2scrub checks ext4 filesystems on LVM: a container has neither, and
	// e2scrub_reap runs a shell on every boot for nothing.
	"e2scrub_all.timer", "e2scrub_all.service", "e2scrub_reap.service",
	// fstrim trims block devices the container does not own.
	"fstrim.timer", "fstrim.service",
	// On a first boot (empty /etc/machine-id) systemd applies its presets,
	// which would enable networkd and resolved: den-net-fallback.service
	// owns eth0 and den owns /etc/resolv.conf.
	"systemd-networkd.service", "systemd-networkd.socket",
	"systemd-networkd-wait-online.service", "systemd-resolved.service",
}

// buildFiles holds everything that decides the output besides the Debian
// archive: this file and the guest tree, which is copied into the rootfs
// as it is (files under usr/local/sbin/ become executable).
//
//go:embed build.go guest
var buildFiles embed.FS

var (
	buildNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]*$`)
	buildUserRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	buildNoSpaceRE = regexp.MustCompile(`^[^\s'"]+$`)
)

// KnownBuild returns the recipe for a box name that BuildRootfs can make,
// such as "debian/bookworm" or "debian/trixie": the suite and Debian's
// mirror (or $DEN_MIRROR); the rest takes BuildRootfs's defaults.
func KnownBuild(name string) (BuildOptions, bool) {
	suite, ok := buildKnown[name]
	if !ok {
		return BuildOptions{}, false
	}
	mirror := os.Getenv("DEN_MIRROR")
	if mirror == "" {
		mirror = DefaultMirror
	}
	return BuildOptions{Suite: suite, Mirror: mirror}, true
}

// BuildRecipeHash returns the sha256 (hex) of everything in den that decides
// what BuildRootfs makes: the recipe and the files it copies into the guest.
// Together with the suite and architecture it makes a cache key for a built box.
func BuildRecipeHash() string {
	sum, err := buildHash(buildFiles)
	if err != nil {
		panic(err) // embedded files always read
	}
	return sum
}

// BuildRootfs fills the empty folder dir with a Debian root filesystem made by
// debootstrap from opts.Mirror, set up as a den box: a login user with
// passwordless sudo, sshd taking keys only, eth0 that keeps the address set
// from outside and falls back to DHCP, and no per-machine state (host keys,
// machine-id, leases). It runs as root. On failure dir holds a partial tree
// that the caller removes.
func BuildRootfs(ctx context.Context, dir string, opts BuildOptions) error {
	opts, err := buildDefaults(opts)
	if err != nil {
		return err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("building a box needs root (debootstrap and file ownership): run den as root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errors.New("debootstrap is not installed: install it with 'apt-get install debootstrap'")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("build folder: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("build folder %q is not empty: give BuildRootfs an empty folder", dir)
	}
	if err := buildDebootstrap(ctx, dir, opts); err != nil {
		return err
	}
	if err := buildConfigure(dir, opts); err != nil {
		return fmt.Errorf("configure rootfs in %q: %w", dir, err)
	}
	return nil
}

// buildDefaults fills the empty fields of opts and checks the rest.
func buildDefaults(opts BuildOptions) (BuildOptions, error) {
	if opts.Mirror == "" {
		opts.Mirror = DefaultMirror
	}
	if opts.User == "" {
		opts.User = buildDefaultUser
	}
	if opts.Arch == "" {
		out, err := exec.Command("dpkg", "--print-architecture").Output()
		if err != nil {
			return opts, fmt.Errorf("find the host architecture with dpkg --print-architecture (or set one): %w", err)
		}
		opts.Arch = strings.TrimSpace(string(out))
	}
	if !buildNameRE.MatchString(opts.Suite) {
		return opts, fmt.Errorf("invalid Debian suite %q: want a name such as \"bookworm\"", opts.Suite)
	}
	if !buildNameRE.MatchString(opts.Arch) {
		return opts, fmt.Errorf("invalid architecture %q: want a Debian name such as \"amd64\"", opts.Arch)
	}
	for _, p := range opts.Packages {
		if !buildNameRE.MatchString(p) {
			return opts, fmt.Errorf("invalid package name %q", p)
		}
	}
	if !buildUserRE.MatchString(opts.User) || opts.User == "root" {
		return opts, fmt.Errorf("invalid user name %q: want lowercase letters, digits, '_' or '-'", opts.User)
	}
	if !buildNoSpaceRE.MatchString(opts.Mirror) || strings.HasPrefix(opts.Mirror, "-") {
		return opts, fmt.Errorf("invalid mirror %q: want a URL such as %q", opts.Mirror, DefaultMirror)
	}
	return opts, nil
}

// buildDebootstrap runs debootstrap into dir, passing its output to opts.Log.
// On cancellation the whole process group gets SIGTERM, on which debootstrap
// unmounts what it mounted in dir.
func buildDebootstrap(ctx context.Context, dir string, opts BuildOptions) error {
	pkgs := slices.Concat(buildPackages, opts.Packages)
	cmd := exec.CommandContext(ctx, "debootstrap",
		"--variant=minbase", "--arch="+opts.Arch, "--include="+strings.Join(pkgs, ","),
		opts.Suite, dir, opts.Mirror)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out := &buildLines{log: opts.Log}
	cmd.Stdout = out
	cmd.Stderr = out
	err := cmd.Run()
	out.flush()
	if err == nil {
		return nil
	}
	buildUnmountUnder(dir)
	if ctx.Err() != nil {
		return fmt.Errorf("debootstrap of %q interrupted: %w", opts.Suite, ctx.Err())
	}
	msg := fmt.Sprintf("debootstrap of %q from %q failed (%v); check the suite name and that the mirror is reachable", opts.Suite, opts.Mirror, err)
	if len(out.tail) > 0 {
		msg += "\nlast output:\n  " + strings.Join(out.tail, "\n  ")
	}
	if tail := buildTail(filepath.Join(dir, "debootstrap", "debootstrap.log"), 20); len(tail) > 0 {
		msg += "\nend of debootstrap.log:\n  " + strings.Join(tail, "\n  ")
	}
	return errors.New(msg)
}

// buildLines is an io.Writer that hands each complete line to log and keeps
// the last 20 lines for an error message.
type buildLines struct {
	log  func(string)
	buf  []byte
	tail []string
}

func (w *buildLines) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(bytes.TrimRight(w.buf[:i], "\r")))
		w.buf = w.buf[i+1:]
	}
}

func (w *buildLines) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *buildLines) line(s string) {
	if w.log != nil {
		w.log(s)
	}
	w.tail = append(w.tail, s)
	if len(w.tail) > 20 {
		w.tail = w.tail[len(w.tail)-20:]
	}
}

// buildTail returns the last n lines of a file, or nothing if it cannot be read.
func buildTail(name string, n int) []string {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// buildUnmountUnder detaches whatever is still mounted in dir (debootstrap
// mounts proc and sys there and unmounts them on exit, but not when killed),
// so that removing the partial tree cannot reach into them.
func buildUnmountUnder(dir string) {
	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		p := buildUnescapeMount(fields[4])
		if p == abs || strings.HasPrefix(p, abs+"/") {
			points = append(points, p)
		}
	}
	// Deepest first, so inner mounts go before the ones holding them.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// buildUnescapeMount decodes the octal escapes (\040 for a space) of a path
// in /proc/self/mountinfo.
func buildUnescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			ok := true
			for _, d := range s[i+1 : i+4] {
				if d < '0' || d > '7' {
					ok = false
					break
				}
				c = c*8 + byte(d-'0')
			}
			if ok {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// buildHash hashes every regular file of fsys, names and contents, in
// lexical order.
func buildHash(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash recipe: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildConfigure turns the debootstrapped tree in dir into a den box. It
// edits files only; it runs nothing from the tree.
func buildConfigure(dir string, opts BuildOptions) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, step := range []func(*os.Root, BuildOptions) error{
		buildCopyGuest,
		buildSources,
		buildAddUser,
		buildUnits,
		buildScrub,
		buildStamp,
		buildMarkUpdated,
	} {
		if err := step(root, opts); err != nil {
			return err
		}
	}
	return nil
}

// buildWrite writes a file inside root with exactly the given mode, owned by
// whoever owned it before (root for a new file).
func buildWrite(root *os.Root, name string, data []byte, mode fs.FileMode) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	if err := root.WriteFile(name, data, mode); err != nil {
		return err
	}
	return root.Chmod(name, mode)
}

// buildCopyGuest copies the embedded guest tree into the rootfs.
func buildCopyGuest(root *os.Root, _ BuildOptions) error {
	guest, err := fs.Sub(buildFiles, "guest")
	if err != nil {
		return err
	}
	return fs.WalkDir(guest, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(guest, name)
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if strings.HasPrefix(name, "usr/local/sbin/") {
			mode = 0o755
		}
		return buildWrite(root, name, data, mode)
	})
}

// buildSources points apt at the suite, its updates and, with Debian's own
// mirror, its security archive.
func buildSources(root *os.Root, opts BuildOptions) error {
	var b strings.Builder
	fmt.Fprintf(&b, "deb %s %s main\n", opts.Mirror, opts.Suite)
	fmt.Fprintf(&b, "deb %s %s-updates main\n", opts.Mirror, opts.Suite)
	if opts.Mirror == DefaultMirror {
		fmt.Fprintf(&b, "deb http://deb.debian.org/debian-security %s-security main\n", opts.Suite)
	}
	return buildWrite(root, "etc/apt/sources.list", []byte(b.String()), 0o644)
}

// buildAddUser adds the login user and its group (uid and gid 1000), puts it
// in group sudo with a passwordless sudo rule, and makes its home from
// /etc/skel. The account has no password ("*"): den logs in with keys.
func buildAddUser(root *os.Root, opts BuildOptions) error {
	u := opts.User
	home := "home/" + u
	edits := []struct {
		file string
		edit func(string) (string, error)
	}{
		{"etc/passwd", buildAppendEntry(u, fmt.Sprintf("%s:x:%d:%d:%s:/%s:/bin/bash", u, buildUID, buildUID, u, home))},
		{"etc/shadow", buildAppendEntry(u, u+":*::0:99999:7:::")},
		{"etc/group", buildAppendEntry(u, fmt.Sprintf("%s:x:%d:", u, buildUID))},
		{"etc/gshadow", buildAppendEntry(u, u+":!::")},
		{"etc/group", buildAddMember("sudo", u)},
		{"etc/gshadow", buildAddMember("sudo", u)},
	}
	for _, e := range edits {
		data, err := root.ReadFile(e.file)
		if err != nil {
			return err
		}
		text, err := e.edit(string(data))
		if err != nil {
			return fmt.Errorf("/%s: %w", e.file, err)
		}
		if err := root.WriteFile(e.file, []byte(text), 0); err != nil {
			return err
		}
	}
	if err := buildCheckUID(root); err != nil {
		return err
	}

	if err := root.MkdirAll("home", 0o755); err != nil {
		return err
	}
	if err := root.Mkdir(home, 0o755); err != nil {
		return err
	}
	if err := root.Chmod(home, 0o755); err != nil {
		return err
	}
	err := fs.WalkDir(root.FS(), "etc/skel", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "etc/skel" {
			return err
		}
		dst := path.Join(home, strings.TrimPrefix(name, "etc/skel/"))
		switch {
		case d.IsDir():
			if err := root.Mkdir(dst, 0o755); err != nil {
				return err
			}
		case d.Type().IsRegular():
			data, err := root.ReadFile(name)
			if err != nil {
				return err
			}
			if err := buildWrite(root, dst, data, 0o644); err != nil {
				return err
			}
		default:
			return nil // /etc/skel holds plain files; skip anything else
		}
		return root.Lchown(dst, buildUID, buildUID)
	})
	if err != nil {
		return fmt.Errorf("copy /etc/skel: %w", err)
	}
	ssh := home + "/.ssh"
	if err := root.Mkdir(ssh, 0o700); err != nil {
		return err
	}
	if err := root.Chmod(ssh, 0o700); err != nil {
		return err
	}
	for _, p := range []string{home, ssh} {
		if err := root.Lchown(p, buildUID, buildUID); err != nil {
			return err
		}
	}
	rule := fmt.Sprintf("%s ALL=(ALL) NOPASSWD:ALL\n", u)
	return buildWrite(root, "etc/sudoers.d/"+u, []byte(rule), 0o440)
}

// buildCheckUID refuses a tree in which another account already has uid or
// gid 1000 (a fresh debootstrap has none).
func buildCheckUID(root *os.Root) error {
	for _, file := range []string{"etc/passwd", "etc/group"} {
		data, err := root.ReadFile(file)
		if err != nil {
			return err
		}
		n := 0
		for line := range strings.Lines(string(data)) {
			f := strings.Split(line, ":")
			if len(f) > 2 && f[2] == fmt.Sprint(buildUID) {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("/%s: id %d is taken twice", file, buildUID)
		}
	}
	return nil
}

// buildAppendEntry returns an edit that appends line to a colon-separated
// account file, refusing one that already has an entry called name.
func buildAppendEntry(name, line string) func(string) (string, error) {
	return func(text string) (string, error) {
		for l := range strings.Lines(text) {
			if strings.HasPrefix(l, name+":") {
				return "", fmt.Errorf("entry %q exists already", name)
			}
		}
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		return text + line + "\n", nil
	}
}

// buildAddMember returns an edit that adds user to the member list (the last
// field) of group in /etc/group or /etc/gshadow.
func buildAddMember(group, user string) func(string) (string, error) {
	return func(text string) (string, error) {
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			if !strings.HasPrefix(l, group+":") {
				continue
			}
			f := strings.Split(l, ":")
			members := strings.FieldsFunc(f[len(f)-1], func(r rune) bool { return r == ',' })
			if !slices.Contains(members, user) {
				f[len(f)-1] = strings.Join(append(members, user), ",")
			}
			lines[i] = strings.Join(f, ":")
			return strings.Join(lines, "\n"), nil
		}
		return "", fmt.Errorf("no group %q", group)
	}
}

// buildUnits masks buildMasks and makes sure ssh.service and the guest's
// den-net-fallback.service start at boot.
func buildUnits(root *os.Root, _ BuildOptions) error {
	const etc = "etc/systemd/system/"
	for _, unit := range buildMasks {
		if err := root.Remove(etc + unit); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := root.Symlink("/dev/null", etc+unit); err != nil {
			return err
		}
	}
	if err := root.MkdirAll(etc+"multi-user.target.wants", 0o755); err != nil {
		return err
	}
	for _, unit := range []string{"/usr/lib/systemd/system/ssh.service", "/" + etc + "den-net-fallback.service"} {
		if _, err := root.Stat(unit[1:]); err != nil {
			return fmt.Errorf("enable %s: %w", path.Base(unit), err)
		}
		wants := etc + "multi-user.target.wants/" + path.Base(unit)
		if _, err := root.Lstat(wants); errors.Is(err, fs.ErrNotExist) {
			if err := root.Symlink(unit, wants); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildScrub removes the state that must differ between machines, and apt's
// caches: host keys (den writes one per machine), the machine id (empty:
// den or systemd writes one), DHCP leases, downloaded lists and packages.
func buildScrub(root *os.Root, _ BuildOptions) error {
	for _, g := range []string{
		"etc/ssh/ssh_host_*",
		"var/lib/dbus/machine-id",
		"var/lib/systemd/random-seed",
		"var/lib/dhcp/*",
		"var/lib/apt/lists/*",
		"var/cache/apt/*.bin",
		"var/cache/apt/archives/*.deb",
	} {
		if err := buildRemoveGlob(root, g); err != nil {
			return err
		}
	}
	return buildWrite(root, "etc/machine-id", nil, 0o444)
}

// buildRemoveGlob removes the entries of one folder in root whose names
// match the last element of pattern. A missing folder is no error.
func buildRemoveGlob(root *os.Root, pattern string) error {
	dir, glob := path.Split(pattern)
	entries, err := fs.ReadDir(root.FS(), path.Clean(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if ok, _ := path.Match(glob, e.Name()); ok {
			if err := root.RemoveAll(dir + e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildStamp writes /etc/den-box, which says how the box was made.
func buildStamp(root *os.Root, opts BuildOptions) error {
	var b strings.Builder
	b.WriteString("# Made by 'den box build'.\n")
	fmt.Fprintf(&b, "suite=%s\narch=%s\nmirror=%s\nuser=%s\n", opts.Suite, opts.Arch, opts.Mirror, opts.User)
	if len(opts.Packages) > 0 {
		fmt.Fprintf(&b, "packages=%s\n", strings.Join(opts.Packages, ","))
	}
	fmt.Fprintf(&b, "recipe=%s\n", BuildRecipeHash())
	return buildWrite(root, "etc/den-box", []byte(b.String()), 0o644)
}

// buildMarkUpdated does what systemd-update-done does on a first boot: it
// stamps /etc and /var with the time /usr last changed, so that every new
// machine does not run ldconfig, sysusers and catalog updates again
// (ConditionNeedsUpdate) on the boot path. Run it after the last change.
func buildMarkUpdated(root *os.Root, _ BuildOptions) error {
	usr, err := root.Lstat("usr")
	if err != nil {
		return err
	}
	t := usr.ModTime()
	stamp := fmt.Sprintf("# Written by 'den box build' for systemd-update-done(8).\nTIMESTAMP_NSEC=%d\n", t.UnixNano())
	for _, name := range []string{"etc/.updated", "var/.updated"} {
		if err := buildWrite(root, name, []byte(stamp), 0o644); err != nil {
			return err
		}
		if err := root.Chtimes(name, t, t); err != nil {
			return err
		}
	}
	return nil
}
