package box

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/den-dev/den/internal/testenv"
	"golang.org/x/sys/unix"
)

// vagrantRootfs makes a small root filesystem with what a packer must keep:
// owners (as root), setuid and odd modes, a symlink, hard links, a fifo, a
// device node (as root), extended attributes and a folder without write
// permission.
func vagrantRootfs(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	asRoot := os.Geteuid() == 0
	file := func(name, data string, mode fs.FileMode, uid, gid int) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if asRoot {
			if err := os.Lchown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	file("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nden:x:1000:1000:den:/home/den:/bin/bash\n", 0o644, 0, 0)
	file("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640, 0, 42)
	file("usr/bin/true", "\x7fELF", 0o755, 0, 0)
	file("usr/bin/su", "\x7fELF su", 0o755|fs.ModeSetuid, 0, 0)
	file("home/den/private", "mine\n", 0o600, 1234, 1234)
	file("usr/bin/ping", "\x7fELF ping", 0o755, 0, 0)
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "usr/bin/true"), filepath.Join(root, "usr/bin/[")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "home/den/fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "home/den/fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(root, "home/den/private"), "user.den", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	if asRoot {
		if err := unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
		}
		// cap_net_raw+ep, as ping has it.
		capability := []byte{0, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if err := unix.Lsetxattr(filepath.Join(root, "usr/bin/ping"), "security.capability", capability, 0); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"home/den"} {
			if err := os.Lchown(filepath.Join(root, d), 1234, 1234); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(filepath.Join(root, "home/den"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "usr/bin"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "usr/bin"), 0o755) })
	return root
}

// member is one entry of a tar archive, with its data.
type member struct {
	hdr  *tar.Header
	data []byte
}

// readTar reads every entry of a tar stream, checking that the stream is
// gzip (what the reader on the other side uncompresses with).
func readGzipTar(t *testing.T, what string, data []byte) []member {
	t.Helper()
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("%s is not gzip-compressed (starts % x)", what, data[:min(4, len(data))])
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []member
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{hdr, b})
	}
}

func writeVagrantBox(t *testing.T, rootfs string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "package.box")
	meta := Metadata{
		BuiltOn:      "2026-11-30T12:00:00Z",
		TemplateOpts: map[string]string{"--arch": "amd64"},
		Den:          &DenMetadata{Version: "2026.11.30.120000", User: VagrantUser, Suite: "bookworm"},
	}
	cfg := VagrantLXCConfig(nil)
	if err := WriteBoxFile(context.Background(), out, rootfs, meta, PackOptions{Format: FormatVagrantLXC, LXCConfig: cfg}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVagrantLXCBoxLayout checks a box written for vagrant-lxc against what
// vagrant-lxc 1.4's code reads (lib/vagrant-lxc/action/handle_box_metadata.rb
// and scripts/lxc-template): Vagrant unpacks the box file (a tar; den
// gzips it as 'vagrant package' does) into the box folder; HandleBoxMetadata
// fetches metadata.json's "version", which must be one of 1.0.0, 2, 3 and
// is 1.0.0 for a current box (else it passes --auth-key, which the default
// template refuses), merges "template-opts" into the template's options
// (den writes none: the default template refuses unknown ones), needs
// rootfs.tar.gz, and uses lxc-config when present and its own lxc-template
// when the box has none. The template runs, in the new rootfs,
// 'tar xfz rootfs.tar.gz --strip-components=2 --xattrs --xattrs-include=*'
// and then requires bin/true.
func TestVagrantLXCBoxLayout(t *testing.T) {
	rootfs := vagrantRootfs(t)
	out := writeVagrantBox(t, rootfs)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	members := readGzipTar(t, "the box file", data)
	byName := map[string]member{}
	var names []string
	for _, m := range members {
		names = append(names, m.hdr.Name)
		byName[m.hdr.Name] = m
		if m.hdr.Typeflag != tar.TypeReg || m.hdr.Mode&0o444 != 0o444 {
			t.Errorf("box member %s: type %c mode %o; want a readable file", m.hdr.Name, m.hdr.Typeflag, m.hdr.Mode)
		}
	}
	slices.Sort(names)
	if want := []string{"lxc-config", "metadata.json", "rootfs.tar.gz"}; !slices.Equal(names, want) {
		t.Fatalf("box members %q, want %q (no lxc-template: vagrant-lxc's own is used)", names, want)
	}

	var meta map[string]any
	if err := json.Unmarshal(byName["metadata.json"].data, &meta); err != nil {
		t.Fatal(err)
	}
	if meta["provider"] != "lxc" {
		t.Errorf(`metadata "provider" = %v, want "lxc" (Vagrant matches it against the provider)`, meta["provider"])
	}
	if v, ok := meta["version"].(string); !ok || !slices.Contains([]string{"1.0.0", "2", "3"}, v) || v != "1.0.0" {
		t.Errorf(`metadata "version" = %v, want "1.0.0"`, meta["version"])
	}
	if _, ok := meta["template-opts"]; ok {
		t.Errorf(`metadata has "template-opts" %v: vagrant-lxc's default template would refuse them`, meta["template-opts"])
	}
	if !strings.Contains(string(byName["lxc-config"].data), "\nlxc.include = /usr/share/lxc/config/common.conf\n") {
		t.Errorf("lxc-config lacks LXC's common config:\n%s", byName["lxc-config"].data)
	}

	entries := readGzipTar(t, "rootfs.tar.gz", byName["rootfs.tar.gz"].data)
	got := map[string]*tar.Header{}
	for _, m := range entries {
		name := m.hdr.Name
		// --strip-components=2 drops "." and "rootfs".
		parts := strings.Split(strings.TrimSuffix(name, "/"), "/")
		if len(parts) < 2 || parts[0] != "." || parts[1] != "rootfs" {
			t.Fatalf("rootfs.tar.gz entry %q is not under ./rootfs/ (the template strips two components)", name)
		}
		if m.hdr.Typeflag == tar.TypeLink && !strings.HasPrefix(m.hdr.Linkname, "./rootfs/") {
			t.Errorf("hard link %s -> %q: its target must be stripped alike", name, m.hdr.Linkname)
		}
		if m.hdr.Uname != "" || m.hdr.Gname != "" {
			t.Errorf("entry %s names owner %q:%q; den writes numeric owners (as 'tar --numeric-owner')", name, m.hdr.Uname, m.hdr.Gname)
		}
		got[strings.Join(parts[2:], "/")] = m.hdr
	}
	want := map[string]struct {
		typ  byte
		mode int64
	}{
		"usr/bin/su": {tar.TypeReg, 0o4755},
		"usr/bin":    {tar.TypeDir, 0o555}, "bin": {tar.TypeSymlink, 0o777},
		"home/den":         {tar.TypeDir, 0o750},
		"home/den/private": {tar.TypeReg, 0o600}, "home/den/fifo": {tar.TypeFifo, 0o620},
		"etc/shadow": {tar.TypeReg, 0o640},
	}
	for name, w := range want {
		h := got[name]
		if h == nil {
			t.Errorf("rootfs.tar.gz lacks %s", name)
			continue
		}
		if h.Typeflag != w.typ || h.Mode != w.mode {
			t.Errorf("%s: type %c mode %o, want %c %o", name, h.Typeflag, h.Mode, w.typ, w.mode)
		}
	}
	// usr/bin/[ and usr/bin/true are one file: the first one packed holds
	// the data, the other is a hard link to its (unstripped) name.
	if a, b := got["usr/bin/["], got["usr/bin/true"]; a == nil || b == nil || a.Typeflag != tar.TypeReg || b.Typeflag != tar.TypeLink || b.Linkname != "./rootfs/usr/bin/[" {
		t.Errorf("hard links: %+v, %+v", a, b)
	}
	if h := got["home/den/private"]; h != nil && h.PAXRecords["SCHILY.xattr.user.den"] != "kept" {
		t.Errorf("extended attribute user.den not in the archive (GNU tar --xattrs reads SCHILY.xattr.*): %v", h.PAXRecords)
	}
	if os.Geteuid() == 0 {
		for name, ids := range map[string][2]int{"home/den/private": {1234, 1234}, "etc/shadow": {0, 42}, "usr/bin/su": {0, 0}} {
			if h := got[name]; h == nil || h.Uid != ids[0] || h.Gid != ids[1] {
				t.Errorf("%s owner: %+v, want %d:%d", name, h, ids[0], ids[1])
			}
		}
		if h := got["dev/null"]; h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
			t.Errorf("dev/null: %+v", h)
		}
	}
}

// TestVagrantLXCTemplateUnpack unpacks rootfs.tar.gz with the command
// vagrant-lxc's template runs (GNU tar, as root), and compares the result
// with the packed tree: every owner, mode, link and capability survives.
func TestVagrantLXCTemplateUnpack(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "unpacking owners and device nodes needs root, as vagrant-lxc's template runs")
	}
	if _, err := exec.LookPath("tar"); err != nil {
		testenv.Skip(t, "no tar")
	}
	rootfs := vagrantRootfs(t)
	out := writeVagrantBox(t, rootfs)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	boxDir := t.TempDir()
	for _, m := range readGzipTar(t, "the box file", data) {
		if err := os.WriteFile(filepath.Join(boxDir, m.hdr.Name), m.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "xfz", filepath.Join(boxDir, "rootfs.tar.gz"), "--strip-components=2", "--xattrs", "--xattrs-include=*")
	cmd.Dir = target
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar as vagrant-lxc's template runs it: %v\n%s", err, b)
	}
	if fi, err := os.Stat(filepath.Join(target, "bin/true")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the template's check, [ -f rootfs/bin/true ], fails: %v", err)
	}
	if got, want := manifest(t, target), manifest(t, rootfs); !slices.Equal(got[1:], want[1:]) { // [0] is the folder itself
		t.Errorf("unpacked tree differs:\n got %q\nwant %q", got, want)
	}
	var v [8]byte
	if n, err := unix.Lgetxattr(filepath.Join(target, "home/den/private"), "user.den", v[:]); err != nil || string(v[:n]) != "kept" {
		t.Errorf("user.den after unpacking: %q %v", v[:max(n, 0)], err)
	}
}

// TestVagrantLXCRoundTrip adds the box den writes for vagrant-lxc back into
// den's store: same tree, vagrant as the login user, den's version.
func TestVagrantLXCRoundTrip(t *testing.T) {
	rootfs := vagrantRootfs(t)
	out := writeVagrantBox(t, rootfs)
	s := NewStore(t.TempDir())
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := s.Add(context.Background(), "test/vagrant", f, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(b.Rootfs(), "usr/bin"), 0o755) }) // a non-root test can delete it then
	if b.Version != "2026.11.30.120000" || b.Meta.Version != VagrantLXCVersion || b.Meta.LoginUser() != VagrantUser {
		t.Errorf("added: version %q, format %q, user %q", b.Version, b.Meta.Version, b.Meta.LoginUser())
	}
	lines, err := b.LXCConfig()
	if err != nil || !slices.Contains(lines, "lxc.include = /usr/share/lxc/config/common.conf") {
		t.Errorf("lxc-config %q %v", lines, err)
	}
	if os.Geteuid() == 0 {
		if got, want := manifest(t, b.Rootfs()), manifest(t, rootfs); !slices.Equal(got[1:], want[1:]) {
			t.Errorf("tree differs after a round trip:\n got %q\nwant %q", got, want)
		}
	}
}

func TestWriteBoxFileVagrantLXCRefusesOtherCompression(t *testing.T) {
	err := WriteBoxFile(context.Background(), filepath.Join(t.TempDir(), "x.box"), t.TempDir(), Metadata{}, PackOptions{Format: FormatVagrantLXC, Compression: Zstd})
	if err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("zstd for vagrant-lxc: %v", err)
	}
}

func TestVagrantLXCConfig(t *testing.T) {
	if got := string(VagrantLXCConfig([]string{"lxc.arch = amd64"})); !strings.Contains(got, "\nlxc.include = /usr/share/lxc/config/common.conf\nlxc.arch = amd64\n") {
		t.Errorf("den box's lxc-config: %q", got)
	}
	own := []string{"lxc.include = /usr/share/lxc/config/ubuntu.common.conf", "lxc.arch = amd64"}
	if got := string(VagrantLXCConfig(own)); got != strings.Join(own, "\n")+"\n" {
		t.Errorf("a box that includes its own config keeps it as it is: %q", got)
	}
}

// guestTree makes a Debian-like root for PrepareVagrantLXC: accounts (uid
// 1000 taken), sudo, skel, systemd and ssh-keygen when withSystemd.
func guestTree(t *testing.T, withSystemd bool, extraPasswd string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":          "root:x:0:0:root:/root:/bin/bash\nden:x:1000:1000:den:/home/den:/bin/bash\n" + extraPasswd,
		"etc/group":           "root:x:0:\nsudo:x:27:den\nden:x:1000:\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\nden:*::0:99999:7:::\n",
		"etc/gshadow":         "root:*::\nsudo:*::den\nden:!::\n",
		"etc/skel/.bashrc":    "# skel\n",
		"etc/hosts":           "127.0.1.1\tsource-machine\n10.0.3.5\tpeer\n",
		"bin/bash":            "",
		"etc/sudoers.d/den":   "den ALL=(ALL) NOPASSWD:ALL\n",
		"etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\n",
	}
	if withSystemd {
		files["usr/bin/ssh-keygen"] = ""
		files["etc/systemd/system/multi-user.target.wants/ssh.service"] = ""
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "etc/shadow"), 0o640)
	return root
}

func prepare(t *testing.T, dir string) ([]string, error) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	return PrepareVagrantLXC(root)
}

func TestPrepareVagrantLXC(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "giving files to the vagrant user needs root")
	}
	dir := guestTree(t, true, "")
	done, err := prepare(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("done: %q", done)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for file, want := range map[string]string{
		"etc/passwd":  "\nvagrant:x:1001:1001:Vagrant:/home/vagrant:/bin/bash\n",
		"etc/group":   "\nsudo:x:27:den,vagrant\n",
		"etc/shadow":  "\nvagrant:*::0:99999:7:::\n",
		"etc/gshadow": "\nvagrant:!::\n",
	} {
		if !strings.Contains(read(file), want) {
			t.Errorf("/%s lacks %q:\n%s", file, want, read(file))
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc/shadow")); fi.Mode().Perm() != 0o640 {
		t.Errorf("/etc/shadow mode %v", fi.Mode())
	}
	check := func(name string, mode fs.FileMode, uid int) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || int(st.Uid) != uid {
			t.Errorf("/%s: %v uid %d, want %v uid %d", name, fi.Mode(), st.Uid, mode, uid)
		}
	}
	check("home/vagrant", 0o755, 1001)
	check("home/vagrant/.bashrc", 0o644, 1001)
	check("home/vagrant/.ssh", 0o700, 1001)
	check("home/vagrant/.ssh/authorized_keys", 0o600, 1001)
	check("etc/sudoers.d/vagrant", 0o440, 0)
	if got := read("home/vagrant/.ssh/authorized_keys"); got != VagrantInsecureKeys {
		t.Errorf("authorized_keys %q", got)
	}
	if got := read("etc/sudoers.d/vagrant"); got != "vagrant ALL=(ALL) NOPASSWD:ALL\n" {
		t.Errorf("sudoers %q", got)
	}
	if got := read("etc/hosts"); strings.Contains(got, "source-machine") || strings.Contains(got, "peer") || !strings.Contains(got, "localhost") {
		t.Errorf("/etc/hosts keeps the source machine's names: %q", got)
	}
	unit := read("etc/systemd/system/den-ssh-hostkeys.service")
	for _, want := range []string{"ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key", "DefaultDependencies=no", "ssh.service ssh.socket", "ExecStart=/usr/bin/ssh-keygen -A"} {
		if !strings.Contains(unit, want) {
			t.Errorf("host key unit lacks %q", want)
		}
	}
	if l, err := os.Readlink(filepath.Join(dir, "etc/systemd/system/sysinit.target.wants/den-ssh-hostkeys.service")); err != nil || l != "/etc/systemd/system/den-ssh-hostkeys.service" {
		t.Errorf("unit not enabled: %q %v", l, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "etc/ssh/ssh_host_*")); len(m) != 0 {
		t.Errorf("host keys in a box with systemd: %v", m)
	}

	// Twice: the user is found, not added again.
	if _, err := prepare(t, dir); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(read("etc/passwd"), "\nvagrant:"); n != 1 {
		t.Errorf("%d vagrant lines after a second run", n)
	}
}

func TestPrepareVagrantLXCExistingUserNoSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "giving files to the vagrant user needs root")
	}
	dir := guestTree(t, false, "vagrant:x:1005:1005::/home/vagrant:/bin/bash\n")
	ssh := filepath.Join(dir, "home/vagrant/.ssh")
	os.MkdirAll(ssh, 0o700)
	os.WriteFile(filepath.Join(ssh, "authorized_keys"), []byte("ssh-ed25519 AAAA someone-elses\n"), 0o600)
	if _, err := prepare(t, dir); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(ssh, "authorized_keys"))
	if string(b) != VagrantInsecureKeys {
		t.Errorf("authorized_keys %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/passwd")); strings.Count(string(b), "\nvagrant:") != 1 {
		t.Errorf("passwd:\n%s", b)
	}
	fi, err := os.Stat(filepath.Join(dir, "etc/ssh/ssh_host_ed25519_key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a box without systemd gets one host key: %v %v", fi, err)
	}
}

func TestPrepareVagrantLXCRefusesSymlinkedSSH(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root")
	}
	dir := guestTree(t, true, "vagrant:x:1005:1005::/home/vagrant:/bin/bash\n")
	os.MkdirAll(filepath.Join(dir, "root/.ssh"), 0o700)
	os.MkdirAll(filepath.Join(dir, "home/vagrant"), 0o755)
	if err := os.Symlink("/root/.ssh", filepath.Join(dir, "home/vagrant/.ssh")); err != nil {
		t.Fatal(err)
	}
	if _, err := prepare(t, dir); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("a symlinked ~vagrant/.ssh: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "root/.ssh/authorized_keys")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("wrote through the symlink: %v", err)
	}
}
