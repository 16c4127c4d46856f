//go:build linux

package idmap

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/testenv"
)

// needBoot skips (or fails under CI) unless this test can boot a real
// container: root, the LXC tools, lxcbr0 and a box file in DEN_TEST_BOX.
func needBoot(t testing.TB) string {
	t.Helper()
	needRoot(t)
	box := os.Getenv("DEN_TEST_BOX")
	reason := ""
	if box == "" {
		reason = "DEN_TEST_BOX is not set (scripts/test.sh sets it)"
	} else if _, err := exec.LookPath("lxc-start"); err != nil {
		reason = "lxc-start is not installed"
	} else if _, err := os.Stat("/sys/class/net/" + testBridge); err != nil {
		reason = "no " + testBridge + " bridge"
	}
	if reason == "" {
		return box
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot boot a container in CI: %s", reason)
	}
	testenv.Skip(t, reason)
	return ""
}

const testBridge = "lxcbr0"

// unpackRootfs unpacks the rootfs archive of a box unpacked in dir (a
// vagrant-lxc v3 box: metadata.json and rootfs.tar.*) and returns the
// rootfs folder.
func unpackRootfs(dir string) (string, error) {
	archives, _ := filepath.Glob(filepath.Join(dir, "rootfs.tar*"))
	if len(archives) != 1 {
		return "", fmt.Errorf("the box has %d rootfs archives", len(archives))
	}
	rootfs := filepath.Join(dir, "unpacked")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", archives[0], "-C", rootfs).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("unpack %s: %v: %s", archives[0], err, out)
	}
	os.Remove(archives[0])
	// vagrant-lxc boxes hold the tree in a top folder "rootfs".
	if _, err := os.Stat(filepath.Join(rootfs, "rootfs", "etc")); err == nil {
		rootfs = filepath.Join(rootfs, "rootfs")
	}
	return rootfs, nil
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// container is one test container in its own LXC path.
type container struct {
	name, lxcpath, log string
}

func (c *container) lxc(args ...string) *exec.Cmd {
	return exec.Command(args[0], append([]string{"-P", c.lxcpath, "-n", c.name}, args[1:]...)...)
}

// attach runs a command in the container, without the host's environment.
func (c *container) attach(ctx context.Context, args ...string) (string, error) {
	cmd := c.lxc(append([]string{"lxc-attach", "--clear-env", "--"}, args...)...)
	out, err := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (c *container) state() string {
	out, _ := c.lxc("lxc-info", "-s", "-H").Output()
	return strings.TrimSpace(string(out))
}

// stop shuts the container down: SIGPWR to init, killed after timeout
// (at once when timeout is 0). It returns the cgroup folders LXC left
// behind for the container, which it then removes.
func (c *container) stop(t testing.TB, timeout time.Duration) []string {
	if st := c.state(); st == "RUNNING" || st == "FROZEN" || st == "STARTING" {
		args := []string{"lxc-stop", "-k"}
		if timeout > 0 {
			args = []string{"lxc-stop", "-t", fmt.Sprint(int(timeout.Seconds()))}
		}
		if out, err := c.lxc(args...).CombinedOutput(); err != nil {
			t.Errorf("lxc-stop %s: %v: %s", c.name, err, out)
		}
	}
	left := c.leftCgroups()
	// After a failed start the monitor may still be leaving its cgroup.
	waitFor(3*time.Second, func() bool {
		for _, d := range c.leftCgroups() {
			removeCgroup(d)
		}
		return len(c.leftCgroups()) == 0
	})
	return left
}

// removeCgroup removes an empty cgroup folder and its empty children.
func removeCgroup(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

// leftCgroups lists the cgroup folders still named after the container.
func (c *container) leftCgroups() []string {
	var left []string
	for _, pat := range []string{"/sys/fs/cgroup/*/lxc.*." + c.name, "/sys/fs/cgroup/lxc.*." + c.name} {
		m, _ := filepath.Glob(pat)
		left = append(left, m...)
	}
	return left
}

// pickAddress chooses a free address high in lxcbr0's subnet, below the
// top addresses den hands out first, with den's MAC for it (00:16:3e and
// the address's last three bytes): not leased by dnsmasq, not in any
// container's config that lxc-ls or den's homes (/run/den/homes) know, not
// in the neighbour table with
// another MAC, and its MAC not live on the bridge (forwarding table). An
// address a stopped test machine had is taken again: its MAC is the same,
// so no neighbour entry goes stale. It holds den's host-wide address lock
// until release is called (after the start).
func pickAddress(t testing.TB) (addr netip.Addr, mac string, release func()) {
	t.Helper()
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		t.Fatal(err)
	}
	lk, err := lock.Acquire(context.Background(), "/run/lock/den-addresses.lock", "idmap test", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	leases, _ := os.ReadFile("/var/lib/misc/dnsmasq." + testBridge + ".leases")
	for _, w := range strings.Fields(string(leases)) {
		used[w] = true
	}
	if out, err := exec.Command("lxc-ls", "-f", "-F", "IPV4").Output(); err == nil {
		for _, w := range strings.FieldsFunc(string(out), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
			used[w] = true
		}
	}
	// Addresses of den's machines, running or not, in every den home.
	homes, _ := os.ReadFile("/run/den/homes")
	for _, home := range strings.Fields(string(homes)) {
		configs, _ := filepath.Glob(filepath.Join(home, "machines", "*", "config"))
		for _, c := range configs {
			b, _ := os.ReadFile(c)
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "lxc.net.0.ipv4.address" {
					a, _, _ := strings.Cut(strings.TrimSpace(v), "/")
					used[a] = true
				}
			}
		}
	}
	neigh := map[string]string{} // address -> MAC
	arp, _ := os.ReadFile("/proc/net/arp")
	for _, l := range strings.Split(string(arp), "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			neigh[f[0]] = f[3]
		}
	}
	live := map[string]bool{}
	if data, err := os.ReadFile("/sys/class/net/" + testBridge + "/brforward"); err == nil {
		for i := 0; i+16 <= len(data); i += 16 {
			live[net.HardwareAddr(data[i:i+6]).String()] = true
		}
	}
	for n := 239; n >= 200; n-- {
		a := netip.AddrFrom4([4]byte{10, 0, 3, byte(n)})
		m := fmt.Sprintf("00:16:3e:%02x:%02x:%02x", 0, 3, n)
		if other, ok := neigh[a.String()]; ok && other != m && other != "00:00:00:00:00:00" {
			continue
		}
		if !used[a.String()] && !live[m] {
			return a, m, func() { lk.Unlock() }
		}
	}
	lk.Unlock()
	t.Fatal("no free address in 10.0.3.200-239")
	return
}

func randomSuffix() string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%08x", binary.BigEndian.Uint32(b[:]))
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func portOpen(addr netip.Addr, port int) bool {
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	// sshd answers with its banner once it really serves.
	c.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	return err == nil && strings.HasPrefix(line, "SSH-")
}

// mkdirLike creates each missing folder of rel below root with the mode
// and owner the same path has in like (the box), as den does in an upper
// layer so the overlay keeps the box's attributes.
func mkdirLike(t testing.TB, root, like, rel string) {
	t.Helper()
	cur, src := root, like
	for _, part := range strings.Split(rel, "/") {
		cur, src = filepath.Join(cur, part), filepath.Join(src, part)
		if _, err := os.Lstat(cur); err == nil {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(src, &st); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(cur, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(cur, int(st.Uid), int(st.Gid))
		os.Chmod(cur, os.FileMode(st.Mode&0o7777))
	}
}

// testMachine is a machine laid out as den lays it out: the LXC folder
// (config, log, delta0) is the machine's folder, mode 0700, root-owned, and
// its upper layer keeps the box's ids on disk.
type testMachine struct {
	container
	addr         netip.Addr
	mac          string
	base         uint32 // 0: privileged
	box, dir     string // the box rootfs and the machine's folder
	mnt          string // where the idmapped mounts go (unprivileged)
	pin          string // the project folder's namespace pin
	project      string // mounted at /den when set
	mounts       []string
	extraEntries []string // more lxc.mount.entry values
}

// newTestMachine lays out a machine of box under root (a 0755 folder),
// with its own address. base 0 makes it privileged.
func newTestMachine(t testing.TB, root, box string, base uint32, project string) *testMachine {
	t.Helper()
	name := "den-test-idmap-" + randomSuffix()
	m := &testMachine{
		container: container{name: name, lxcpath: filepath.Join(root, "lxc")},
		base:      base, box: box, project: project,
	}
	m.dir = filepath.Join(m.lxcpath, name)
	m.log = filepath.Join(m.dir, "lxc.log")
	if err := os.MkdirAll(m.lxcpath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The upper's root takes the box root's mode and owner.
	var st unix.Stat_t
	if err := unix.Stat(box, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.upper(), os.FileMode(st.Mode&0o777)); err != nil {
		t.Fatal(err)
	}
	os.Chown(m.upper(), int(st.Uid), int(st.Gid))
	t.Cleanup(func() { m.destroy(t) })
	return m
}

// upper is the machine's overlay upper layer on disk.
func (m *testMachine) upper() string { return filepath.Join(m.dir, "delta0") }

// prepare writes what den writes before a first boot: an ssh host key
// (the box has none) and the hostname.
func (m *testMachine) prepare(t testing.TB) {
	t.Helper()
	mkdirLike(t, m.upper(), m.box, "etc/ssh")
	key := filepath.Join(m.upper(), "etc/ssh/ssh_host_ed25519_key")
	if _, err := os.Stat(key); err != nil {
		run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", m.name, "-f", key)
	}
	if err := os.WriteFile(filepath.Join(m.upper(), "etc/hostname"), []byte("idmaptest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mountLayers makes the idmapped mounts an unprivileged machine boots
// from: the box read-only and the machine's folder read-write, both mapped
// 0 -> base, in a folder only the machine's root may enter.
func (m *testMachine) mountLayers(t testing.TB, mntRoot string) {
	t.Helper()
	if m.base == 0 {
		return
	}
	m.mnt = filepath.Join(mntRoot, m.name)
	if err := os.MkdirAll(mntRoot, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.mnt, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if err := os.Chown(m.mnt, int(m.base), int(m.base)); err != nil {
		t.Fatal(err)
	}
	ns, err := NewUserNS(RangeMap(m.base))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for _, l := range []struct {
		src, name string
		ro        bool
	}{{m.box, "box", true}, {m.dir, "machine", false}} {
		target := filepath.Join(m.mnt, l.name)
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
		if err := Mount(l.src, target, ns, l.ro); err != nil {
			t.Fatal(err)
		}
		m.mounts = append(m.mounts, target)
	}
}

func (m *testMachine) unmountLayers(t testing.TB) {
	for _, target := range m.mounts {
		if err := Unmount(target); err != nil {
			t.Error(err)
		}
	}
	m.mounts = nil
}

// config writes the machine's LXC config.
func (m *testMachine) config(t testing.TB) {
	t.Helper()
	kv := [][2]string{
		{"lxc.include", "/usr/share/lxc/config/common.conf"},
		{"lxc.uts.name", "idmaptest"},
		{"lxc.log.file", m.log},
		{"lxc.log.level", "WARN"},
		{"lxc.apparmor.profile", "unconfined"},
		{"lxc.net.0.type", "veth"},
		{"lxc.net.0.link", testBridge},
		{"lxc.net.0.flags", "up"},
		{"lxc.net.0.name", "eth0"},
		{"lxc.net.0.hwaddr", m.mac},
		{"lxc.net.0.ipv4.address", m.addr.String() + "/24 10.0.3.255"},
		{"lxc.net.0.ipv4.gateway", "10.0.3.1"},
	}
	if m.base == 0 {
		kv = append(kv, [2]string{"lxc.rootfs.path", "overlay:" + m.box + ":" + m.upper()})
	} else {
		kv = append(kv,
			[2]string{"lxc.rootfs.path", "overlay:" + filepath.Join(m.mnt, "box") + ":" + filepath.Join(m.mnt, "machine", "delta0")},
			[2]string{"lxc.rootfs.options", "userxattr"},
			[2]string{"lxc.idmap", fmt.Sprintf("u 0 %d %d", m.base, RangeSize)},
			[2]string{"lxc.idmap", fmt.Sprintf("g 0 %d %d", m.base, RangeSize)},
		)
	}
	if m.project != "" {
		opts := "bind,create=dir"
		if m.pin != "" {
			o, err := LXCMountOption(m.pin)
			if err != nil {
				t.Fatal(err)
			}
			opts += "," + o
		}
		kv = append(kv, [2]string{"lxc.mount.entry", m.project + " den none " + opts + " 0 0"})
	}
	for _, e := range m.extraEntries {
		kv = append(kv, [2]string{"lxc.mount.entry", e})
	}
	var b strings.Builder
	for _, e := range kv {
		fmt.Fprintf(&b, "%s = %s\n", e[0], e[1])
	}
	if err := os.WriteFile(filepath.Join(m.dir, "config"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start picks an address, writes the config and starts the container,
// returning when LXC reports it running.
func (m *testMachine) start(t testing.TB) time.Time {
	t.Helper()
	var release func()
	m.addr, m.mac, release = pickAddress(t)
	defer release()
	m.config(t)
	began := time.Now()
	if out, err := m.lxc("lxc-start", "-o", m.log).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(m.log)
		t.Fatalf("lxc-start %s: %v: %s\n%s", m.name, err, out, log)
	}
	if !waitFor(10*time.Second, func() bool { return m.state() == "RUNNING" }) {
		log, _ := os.ReadFile(m.log)
		t.Fatalf("%s is %s after lxc-start\n%s", m.name, m.state(), log)
	}
	return began
}

// destroy stops the machine, removes its cgroups, mounts and pin; its
// folders go with the test's temporary folder.
func (m *testMachine) destroy(t testing.TB) {
	m.stop(t, 0)
	m.unmountLayers(t)
	if m.pin != "" {
		if err := Unpin(m.pin); err != nil {
			t.Error(err)
		}
	}
	if m.mnt != "" {
		// Folders only: never a recursive delete where a mount may be left.
		for _, d := range []string{filepath.Join(m.mnt, "box"), filepath.Join(m.mnt, "machine"), m.mnt} {
			os.Remove(d)
		}
	}
	if left := m.leftCgroups(); len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
}

// The box is unpacked once for all the tests that boot it (read-only for
// them all) into a folder TestMain removes.
var shared struct {
	once        sync.Once
	dir, rootfs string
	err         error
}

// sharedBox returns the unpacked rootfs of the box file in DEN_TEST_BOX.
func sharedBox(t testing.TB, boxFile string) string {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "den-idmap-box-")
		if shared.err != nil {
			return
		}
		os.Chmod(shared.dir, 0o755)
		out, err := exec.Command("tar", "-xf", boxFile, "-C", shared.dir).CombinedOutput()
		if err != nil {
			shared.err = fmt.Errorf("unpack %s: %v: %s", boxFile, err, out)
			return
		}
		shared.rootfs, shared.err = unpackRootfs(shared.dir)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.rootfs
}

// reserveBlock reserves den's block in the host's files for a test, and
// releases it afterwards unless it was reserved before.
func reserveBlock(t testing.TB) Block {
	t.Helper()
	_, had, err := SystemFiles.Current()
	if err != nil {
		t.Fatal(err)
	}
	b, err := SystemFiles.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	if !had {
		t.Cleanup(func() {
			if err := SystemFiles.Release(); err != nil {
				t.Error(err)
			}
		})
	}
	return b
}

// projectOwner owns the test project on the host; the box's login user
// (den, 1000:1000) is to see its files as its own.
var projectOwner = Owner{UID: 1234, GID: 1235, GuestUID: 1000, GuestGID: 1000}

// newProject makes a project folder owned by projectOwner with a private
// file of the owner and a file of the host's root.
func newProject(t testing.TB, parent string) string {
	t.Helper()
	dir := filepath.Join(parent, "project")
	mkTreeTB(t, dir, map[string]string{"owners": "mine", "roots": "host root's"})
	for _, p := range []string{dir, filepath.Join(dir, "owners")} {
		if err := os.Chown(p, int(projectOwner.UID), int(projectOwner.GID)); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "owners"), 0o600)
	return dir
}

func mkTreeTB(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// waitRunning waits until systemd in the guest reports running (or
// degraded: booted, with a failed unit) and returns its last answer.
func (c *container) waitRunning(d time.Duration) (string, bool) {
	var state string
	ok := waitFor(d, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		state, _ = c.attach(ctx, "systemctl", "is-system-running")
		return state == "running" || state == "degraded"
	})
	return state, ok
}

// hostUIDs reads the Uid line of a host process: real, effective, saved
// and filesystem uids.
func hostUIDs(t testing.TB, pid string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			return strings.Join(strings.Fields(rest), " ")
		}
	}
	return ""
}

// TestBootUnprivileged boots the box unprivileged, laid out as den lays
// machines out, and checks what the guest's root is on the host, where
// its files land and what it may do in the project folder.
func TestBootUnprivileged(t *testing.T) {
	boxFile := needBoot(t)
	rootfs := sharedBox(t, boxFile)
	block := reserveBlock(t)
	tmp := openTempDir(t)
	project := newProject(t, tmp)
	m := newTestMachine(t, tmp, rootfs, 0, project)
	base, err := block.Pick(nil, m.name)
	if err != nil {
		t.Fatal(err)
	}
	m.base = base
	pins := filepath.Join(tmp, "pins")
	if err := os.Mkdir(pins, 0o711); err != nil {
		t.Fatal(err)
	}
	m.pin = filepath.Join(pins, m.name)
	ownerMap, err := OwnerMap(base, projectOwner)
	if err != nil {
		t.Fatal(err)
	}
	if err := Pin(ownerMap, m.pin); err != nil {
		t.Fatal(err)
	}
	m.prepare(t)
	m.mountLayers(t, filepath.Join(tmp, "mnt"))
	began := m.start(t)
	if !waitFor(30*time.Second, func() bool { return portOpen(m.addr, 22) }) {
		t.Fatalf("sshd did not answer on %s within 30 s", m.addr)
	}
	toSSH := time.Since(began)
	state, ok := m.waitRunning(60 * time.Second)
	t.Logf("base %d, %s: sshd after %v, systemd %q after %v", base, m.addr, toSSH, state, time.Since(began))
	if !ok {
		t.Errorf("systemd in the guest is %q", state)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	guest := func(script string) string {
		t.Helper()
		out, err := m.attach(ctx, "sh", "-c", script)
		if err != nil {
			t.Fatalf("in the guest: %s: %v\n%s", script, err, out)
		}
		return out
	}
	// Guest root is uid 0 in the guest and the range's first id outside.
	if got := guest("id -u; id -g"); got != "0\n0" {
		t.Errorf("guest root's ids: %q", got)
	}
	wantMap := fmt.Sprintf("0 %d %d", base, RangeSize)
	for _, f := range []string{"uid_map", "gid_map"} {
		if got := strings.Join(strings.Fields(guest("cat /proc/self/"+f)), " "); got != wantMap {
			t.Errorf("/proc/self/%s in the guest: %q, want %q", f, got, wantMap)
		}
	}
	out, err := m.lxc("lxc-info", "-p", "-H").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hostUIDs(t, strings.TrimSpace(string(out))), strings.Repeat(fmt.Sprint(base)+" ", 4); got+" " != want {
		t.Errorf("the guest's init runs on the host as uids %q, want %q", got, want)
	}

	// A file guest root makes in / lands in the machine's own layer. On
	// disk it keeps the box's ids (0), as den reaches the layer only
	// through the idmapped mount, where it is owned by BASE.
	guest("echo made > /made-by-root && mkdir -p /etc/made-by-root && chown den:den /etc/made-by-root")
	for _, c := range []struct {
		path     string
		uid, gid uint32
	}{
		{filepath.Join(m.upper(), "made-by-root"), 0, 0},
		{filepath.Join(m.upper(), "etc/made-by-root"), 1000, 1000},
		{filepath.Join(m.mnt, "machine/delta0/made-by-root"), base, base},
		{filepath.Join(m.mnt, "machine/delta0/etc/made-by-root"), base + 1000, base + 1000},
	} {
		if u, g := owner(t, c.path); u != c.uid || g != c.gid {
			t.Errorf("%s is owned by %d:%d, want %d:%d", c.path, u, g, c.uid, c.gid)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "made-by-root")); err == nil {
		t.Error("guest root wrote into the box")
	}
	// Set-id programs work (the layers' nosuid is not the overlay's).
	if got := guest("su den -c 'sudo -n id -u' 2>/dev/null"); got != "0" {
		t.Errorf("sudo as the login user: %q", got)
	}

	// /den: the login user (1000) sees the owner's (1234) files as its
	// own and writes as the owner; guest root can create nothing; host
	// root's files show as nobody.
	if got := guest("su den -c 'cat /den/owners; echo by-login > /den/by-login'"); got != "mine" {
		t.Errorf("the owner's private file read by the login user: %q", got)
	}
	if u, g := owner(t, filepath.Join(project, "by-login")); u != projectOwner.UID || g != projectOwner.GID {
		t.Errorf("a file the login user wrote in /den is %d:%d on the host, want the owner's %d:%d", u, g, projectOwner.UID, projectOwner.GID)
	}
	if out, err := m.attach(ctx, "touch", "/den/by-root"); err == nil || !strings.Contains(out, "Value too large") {
		t.Errorf("guest root creating a file in /den: %v %q, want EOVERFLOW", err, out)
	}
	if _, err := os.Lstat(filepath.Join(project, "by-root")); err == nil {
		t.Error("guest root created a file in the project")
	}
	if got := guest("stat -c %u:%g /den/roots /den/owners"); got != "65534:65534\n1000:1000" {
		t.Errorf("owners of /den files in the guest: %q", got)
	}

	// common.conf's devices cgroup holds for an unprivileged machine
	// started by root (userns.conf would open it).
	if devices, err := os.ReadFile("/sys/fs/cgroup/devices/lxc.payload." + m.name + "/devices.list"); err == nil {
		if !strings.Contains(string(devices), "c 1:3 rwm") || strings.Contains(string(devices), "a *:* rwm") {
			t.Errorf("the machine's devices cgroup is not common.conf's:\n%s", devices)
		}
	} else if !errors.Is(err, os.ErrNotExist) || host.CgroupLayout() != host.CgroupV2 {
		t.Errorf("read the machine's devices cgroup: %v", err)
	}

	// A reboot in the guest mounts the rootfs again from the config's
	// paths: it works while den's layer mounts stay.
	if out, err := m.attach(ctx, "systemctl", "reboot"); err != nil {
		t.Logf("systemctl reboot: %v %s", err, out)
	}
	if !waitFor(30*time.Second, func() bool { return !portOpen(m.addr, 22) }) {
		t.Fatal("the guest did not go down on reboot")
	}
	rebooted := time.Now()
	if !waitFor(30*time.Second, func() bool { return portOpen(m.addr, 22) }) {
		t.Fatalf("the guest did not come back from a reboot (state %s)", m.state())
	}
	t.Logf("sshd back %v after the guest went down for a reboot", time.Since(rebooted))
	if got := strings.Join(strings.Fields(guest("cat /proc/self/uid_map")), " "); got != wantMap {
		t.Errorf("uid_map after the reboot: %q", got)
	}

	stopped := time.Now()
	left := m.stop(t, 10*time.Second)
	t.Logf("stopped in %v; cgroups LXC left behind (now removed): %v", time.Since(stopped), left)
	if st := m.state(); st != "STOPPED" {
		t.Fatalf("state after stop: %s", st)
	}
	m.unmountLayers(t)
	if err := Unpin(m.pin); err != nil {
		t.Fatal(err)
	}
	if left := mountsUnder(tmp); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
	if left := m.leftCgroups(); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// TestBootConvertedMachine makes a machine privileged, deletes and
// re-creates a box folder in it, converts its layer and boots it
// unprivileged: the deleted files must stay deleted.
func TestBootConvertedMachine(t *testing.T) {
	boxFile := needBoot(t)
	rootfs := sharedBox(t, boxFile)
	tmp := openTempDir(t)
	m := newTestMachine(t, tmp, rootfs, 0, "")
	m.prepare(t)
	m.start(t)
	if !waitFor(30*time.Second, func() bool { return portOpen(m.addr, 22) }) {
		t.Fatal("the privileged machine's sshd did not answer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	change := "rm -rf /usr/share/doc/apt && mkdir /usr/share/doc/apt && echo new > /usr/share/doc/apt/new && rm /etc/motd && chown -R den /usr/share/doc/apt"
	if out, err := m.attach(ctx, "sh", "-c", change); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	m.stop(t, 10*time.Second)
	opaque, err := getXattr(filepath.Join(m.upper(), "usr/share/doc/apt"), "trusted.overlay.opaque")
	if err != nil || string(opaque) != "y" {
		t.Fatalf("the privileged machine left no opaque folder: %q, %v", opaque, err)
	}

	n, err := ConvertUpper(m.upper())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d attributes converted", n)
	block := reserveBlock(t)
	if m.base, err = block.Pick(nil, m.name); err != nil {
		t.Fatal(err)
	}
	m.mountLayers(t, filepath.Join(tmp, "mnt"))
	m.start(t)
	if !waitFor(30*time.Second, func() bool { return portOpen(m.addr, 22) }) {
		t.Fatal("the converted machine's sshd did not answer")
	}
	out, err := m.attach(ctx, "sh", "-c", "ls -A /usr/share/doc/apt; stat -c %U /usr/share/doc/apt/new; test -e /etc/motd && echo motd is back; cat /proc/self/uid_map")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 3 || lines[0] != "new" || lines[1] != "den" || !strings.HasPrefix(strings.Join(strings.Fields(lines[2]), " "), fmt.Sprintf("0 %d ", m.base)) {
		t.Errorf("the converted machine shows:\n%s\nwant only new (owned by den), no motd, and its own id range", out)
	}
	m.stop(t, 10*time.Second)
}

// TestBootProjectGuards checks the guards over a project (den.hcl
// read-only over itself, .den hidden under an empty read-only folder)
// against guest root, in the two ways of mounting it:
//
//   - den lays the tree out on the host (the project idmapped to the
//     owner's map, the guards on it) and LXC binds it with rbind: mounts
//     made before the container's namespaces exist are locked there, so
//     guest root can neither unmount nor remount the guards;
//   - LXC mounts project and guards itself with idmap=<pin> entries: those
//     mounts are the container's own, guest root unmounts the read-only
//     den.hcl and writes the real one; and LXC mounts idmap= entries after
//     all plain ones, so a plain guard under /den ends up hidden beneath it.
func TestBootProjectGuards(t *testing.T) {
	boxFile := needBoot(t)
	rootfs := sharedBox(t, boxFile)
	block := reserveBlock(t)
	tmp := openTempDir(t)
	project := newProject(t, tmp)
	mkTreeTB(t, project, map[string]string{"den.hcl": "box = \"debian/bookworm\"\n", ".den/default/id_ed25519": "private key"})
	for _, p := range []string{"den.hcl", ".den", ".den/default", ".den/default/id_ed25519"} {
		os.Chown(filepath.Join(project, p), int(projectOwner.UID), int(projectOwner.GID))
	}
	empty := filepath.Join(tmp, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join(tmp, "pins")
	os.Mkdir(pins, 0o711)
	attack := `umount /den/den.hcl && echo den.hcl unmounted
umount /den/.den && echo .den unmounted
mount -o remount,bind,rw /den/den.hcl 2>/dev/null && echo den.hcl remounted
echo '# from the guest' >> /den/den.hcl && echo den.hcl written
ls -A /den/.den | sed 's/^/.den holds /'
true`

	for _, hostTree := range []bool{true, false} {
		m := newTestMachine(t, tmp, rootfs, 0, "")
		base, err := block.Pick(nil, m.name)
		if err != nil {
			t.Fatal(err)
		}
		m.base = base
		ownerMap, err := OwnerMap(base, projectOwner)
		if err != nil {
			t.Fatal(err)
		}
		m.prepare(t)
		m.mountLayers(t, filepath.Join(tmp, "mnt"))
		if hostTree {
			ns, err := NewUserNS(ownerMap)
			if err != nil {
				t.Fatal(err)
			}
			tree := filepath.Join(m.mnt, "den")
			os.Mkdir(tree, 0o700)
			err = Mount(project, tree, ns, false)
			ns.Close()
			if err != nil {
				t.Fatal(err)
			}
			m.mounts = append([]string{tree}, m.mounts...)
			if err := BindReadOnly(filepath.Join(tree, "den.hcl"), filepath.Join(tree, "den.hcl")); err != nil {
				t.Fatal(err)
			}
			if err := BindReadOnly(empty, filepath.Join(tree, ".den")); err != nil {
				t.Fatal(err)
			}
			m.extraEntries = []string{tree + " den none rbind,create=dir 0 0"}
		} else {
			m.pin = filepath.Join(pins, m.name)
			if err := Pin(ownerMap, m.pin); err != nil {
				t.Fatal(err)
			}
			opt, err := LXCMountOption(m.pin)
			if err != nil {
				t.Fatal(err)
			}
			m.extraEntries = []string{
				project + " den none bind,create=dir," + opt + " 0 0",
				filepath.Join(project, "den.hcl") + " den/den.hcl none bind,ro,create=file," + opt + " 0 0",
				empty + " den/.den none bind,ro,create=dir 0 0",
			}
		}
		m.start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := m.attach(ctx, "sh", "-c", attack)
		cancel()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Logf("host tree %v: guest root's attempts:\n%s", hostTree, out)
		hcl := read(t, filepath.Join(project, "den.hcl"))
		if hostTree {
			if strings.Contains(out, "unmounted") || strings.Contains(out, "remounted") || strings.Contains(out, "written") || strings.Contains(out, ".den holds") || strings.Contains(hcl, "from the guest") {
				t.Errorf("guest root got through the guards of a host-made tree:\n%s", out)
			}
		} else if !strings.Contains(out, "den.hcl unmounted") || !strings.Contains(hcl, "from the guest") || !strings.Contains(out, ".den holds default") {
			t.Errorf("LXC's idmap= entries held against guest root; LXC changed, and the notes need updating:\n%s", out)
		}
		os.WriteFile(filepath.Join(project, "den.hcl"), []byte("box = \"debian/bookworm\"\n"), 0o644)
		m.stop(t, 0)
		m.unmountLayers(t)
		if left := mountsUnder(m.mnt); len(left) > 0 {
			t.Errorf("mounts left: %v", left)
		}
	}
}
