package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/den-dev/den/internal/testenv"
	"golang.org/x/sys/unix"
)

// hostListener listens on every address of the host and reports the
// remote address of each connection it accepts.
func hostListener(t *testing.T, network, addr string) (int, <-chan string) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return l.Addr().(*net.TCPAddr).Port, peersOf(t, l)
}

// outside makes a host "on the outside": a network namespace behind a
// veth pair, whose only route is its own /30 with the host, so a
// connection from a machine reaches it only masqueraded as the host. It
// returns the outside's address and a listener there.
func outside(t *testing.T) (netip.Addr, int, <-chan string) {
	t.Helper()
	tag := fmt.Sprintf("%05d", os.Getpid()%100000)
	ns, hostIf, nsIf := "den-e2e-out-"+tag, "den-o"+tag, "den-i"+tag
	hostAddr, nsAddr := netip.MustParseAddr("198.51.100.249"), netip.MustParseAddr("198.51.100.250")
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, _ := exec.Command("ip", "route", "get", nsAddr.String()).CombinedOutput(); !strings.Contains(string(out), "via") {
		testenv.Skip(t, fmt.Sprintf("198.51.100.248/30 is a network of this host already: %s", out))
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	sh("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns)
	sh("ip", "addr", "add", hostAddr.String()+"/30", "dev", hostIf)
	sh("ip", "link", "set", hostIf, "up")
	sh("ip", "-n", ns, "addr", "add", nsAddr.String()+"/30", "dev", nsIf)
	sh("ip", "-n", ns, "link", "set", nsIf, "up")

	// A socket made in the namespace stays there.
	var l net.Listener
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			t.Fatal(err)
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Fatal(err)
		}
		l, err = net.Listen("tcp", nsAddr.String()+":0")
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(err) // this thread must not go back to the runtime in the namespace
		}
		if err != nil {
			t.Fatal(err)
		}
	}()
	return nsAddr, l.Addr().(*net.TCPAddr).Port, peersOf(t, l)
}

// peersOf accepts l's connections until the test ends, reporting the
// remote address of each.
func peersOf(t *testing.T, l net.Listener) <-chan string {
	t.Cleanup(func() { l.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			got <- host
			c.Close()
		}
	}()
	return got
}

// connects reports whether a TCP connection from machine (in dir) to
// addr:port succeeds within 3 seconds.
func connects(t *testing.T, dir, machine, addr string, port int) bool {
	return connectsIn(t, dir, machine, addr, port, 3)
}

// blocked reports whether such a connection fails (within a second).
func blocked(t *testing.T, dir, machine, addr string, port int) bool {
	return !connectsIn(t, dir, machine, addr, port, 1)
}

func connectsIn(t *testing.T, dir, machine, addr string, port, secs int) bool {
	t.Helper()
	r := den(t, dir, "", "ssh", machine, "-c", fmt.Sprintf("timeout %d bash -c 'echo > /dev/tcp/%s/%d'", secs, addr, port))
	return r.code == 0
}

// seen waits a moment for the address a listener reports.
func seen(got <-chan string) string {
	select {
	case a := <-got:
		return a
	case <-time.After(3 * time.Second):
		return "(nothing)"
	}
}

// defaultAddress is the host's address on the interface of its default
// route (the sandbox's "outside" address).
func defaultAddress(t *testing.T) string {
	out, err := exec.Command("ip", "-4", "route", "get", "192.0.2.123").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "src" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no source address in %q", out)
	return ""
}

type netRecord struct {
	Bridge, Network, Address, Gateway string
}

func machineRecord(t *testing.T, dir, machine string) netRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".den", machine, "machine.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r netRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestE2EProjectNetworks: two projects on networks of their own and one
// on lxcbr0. Each project's machines reach each other (by name), the
// host, and the outside through NAT; no other project's machine reaches
// them, nor a machine on lxcbr0; the last destroy removes the bridge, its
// nftables table and its dnsmasq.
func TestE2EProjectNetworks(t *testing.T) {
	needE2E(t)
	// A fixed address in a subnet the host does not have.
	fixed := "10.199.77.10"
	if out, _ := exec.Command("ip", "route", "get", fixed).CombinedOutput(); !strings.Contains(string(out), "via") {
		testenv.Skip(t, fmt.Sprintf("10.199.77.0/24 is a network of this host: %s", out))
	}
	a := newProject(t, "neta", `box = "debian/bookworm"
network = "project"
machine "web" {
  network "private" {
    ip = "`+fixed+`"
  }
}
machine "db" {}
`)
	b := newProject(t, "netb", "box = \"debian/bookworm\"\nnetwork = \"project\"\n")
	c := newProject(t, "netc", "box = \"debian/bookworm\"\n")
	mustDen(t, a, "up")
	mustDen(t, b, "up")
	mustDen(t, c, "up")
	web, db := machineRecord(t, a, "web"), machineRecord(t, a, "db")
	other, plain := machineRecord(t, b, "default"), machineRecord(t, c, "default")
	ip := func(r netRecord) string { return strings.Split(r.Address, "/")[0] }
	if ip(web) != fixed || web.Bridge != db.Bridge || web.Network != "project" || !strings.HasPrefix(web.Bridge, "den-") || len(web.Bridge) > 15 {
		t.Fatalf("web %+v, db %+v", web, db)
	}
	if !netip.MustParsePrefix("10.199.77.0/24").Contains(netip.MustParseAddr(ip(db))) || web.Gateway != "10.199.77.1" {
		t.Errorf("db %+v is not on web's network %+v", db, web)
	}
	if other.Bridge == web.Bridge || plain.Bridge != "lxcbr0" {
		t.Errorf("bridges: a %s, b %s, c %s", web.Bridge, other.Bridge, plain.Bridge)
	}
	for _, br := range []string{web.Bridge, other.Bridge} {
		if out, err := exec.Command("nft", "list", "table", "inet", br).CombinedOutput(); err != nil {
			t.Errorf("no nftables table %s: %v %s", br, err, out)
		}
	}

	// Within a project: by name, any port.
	if got := strings.TrimSpace(mustDen(t, a, "ssh", "web", "-c", "getent hosts db")); !strings.HasPrefix(got, ip(db)+" ") {
		t.Errorf("web resolves db as %q, want %s", got, ip(db))
	}
	if !connects(t, a, "web", "db", 22) || !connects(t, a, "db", "web", 22) {
		t.Error("a project's machines do not reach each other")
	}
	// Across projects, and from lxcbr0: nothing.
	if !blocked(t, b, "default", ip(web), 22) || !blocked(t, a, "web", ip(other), 22) {
		t.Error("machines of two projects reach each other")
	}
	if !blocked(t, c, "default", ip(web), 22) || !blocked(t, c, "default", ip(other), 22) {
		t.Error("a machine on lxcbr0 reaches a project network's machine")
	}
	// The host: on the gateway and on its own address outside.
	port, got := hostListener(t, "tcp", ":0")
	for _, to := range []string{web.Gateway, defaultAddress(t)} {
		if !connects(t, a, "db", to, port) || !connects(t, b, "default", to, port) {
			t.Errorf("the machines do not reach the host at %s", to)
		}
		for range 2 {
			seen(got)
		}
	}
	// The outside, masqueraded as the host.
	out, outPort, outGot := outside(t)
	if !connects(t, a, "web", out.String(), outPort) {
		t.Error("web does not reach the outside")
	} else if from := seen(outGot); from != "198.51.100.249" {
		t.Errorf("the outside saw web's connection from %s, want the host's 198.51.100.249 (NAT)", from)
	}
	if !connects(t, b, "default", out.String(), outPort) {
		t.Error("project b's machine does not reach the outside")
	}
	// DNS through the network's dnsmasq, as far as the host resolves.
	if _, err := net.LookupHost("deb.debian.org"); err == nil {
		if r := den(t, a, "", "ssh", "web", "-c", "cat /etc/resolv.conf; getent hosts deb.debian.org"); r.code != 0 || !strings.Contains(r.out, "nameserver "+web.Gateway) {
			t.Errorf("web resolves nothing through %s: %s%s", web.Gateway, r.out, r.err)
		}
	}

	// up of a running project brings back a resolver that died (as it
	// does a port forwarder).
	if pidb, err := os.ReadFile(filepath.Join("/run/den/net", other.Bridge+".dnsmasq.pid")); err != nil {
		t.Error(err)
	} else if pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb))); pid > 1 && dnsmasqOf(other.Bridge) {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && dnsmasqOf(other.Bridge); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		mustDen(t, b, "up")
		if !dnsmasqOf(other.Bridge) {
			t.Error("up of a running machine did not start its network's dnsmasq again")
		}
	}

	// The last destroy takes the network; the other project keeps its own.
	mustDen(t, a, "destroy", "-f", "web")
	if !linkUp(web.Bridge) {
		t.Errorf("bridge %s went with one of its two machines", web.Bridge)
	}
	mustDen(t, a, "destroy", "-f")
	if linkUp(web.Bridge) || nftTable(web.Bridge) || dnsmasqOf(web.Bridge) {
		t.Errorf("after the project's last destroy: bridge %v, table %v, dnsmasq %v", linkUp(web.Bridge), nftTable(web.Bridge), dnsmasqOf(web.Bridge))
	}
	if !linkUp(other.Bridge) || !connects(t, b, "default", out.String(), outPort) {
		t.Error("project b's network suffered from project a's destroy")
	}
	mustDen(t, b, "destroy", "-f")
	if linkUp(other.Bridge) || nftTable(other.Bridge) || dnsmasqOf(other.Bridge) {
		t.Errorf("after b's destroy: bridge %v, table %v, dnsmasq %v", linkUp(other.Bridge), nftTable(other.Bridge), dnsmasqOf(other.Bridge))
	}
}

// TestE2EKilledProjectNetwork kills den (SIGKILL) while it makes a
// project's network and its machine; the next destroy leaves no bridge,
// table, dnsmasq or record.
func TestE2EKilledProjectNetwork(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "netkill", "box = \"debian/bookworm\"\nnetwork = \"project\"\n")
	sum := sha256.Sum256([]byte(dir))
	br := "den-" + hex.EncodeToString(sum[:])[:11]
	for _, at := range []string{"Creating machine", "Starting machine"} {
		interrupted(t, dir, syscall.SIGKILL, at, 10*time.Millisecond, "up")
		mustDen(t, dir, "destroy", "-f")
		_, err := os.Lstat(filepath.Join("/run/den/net", br+".json"))
		if linkUp(br) || nftTable(br) || dnsmasqOf(br) || err == nil {
			t.Errorf("killed at %q, then destroyed: bridge %v, table %v, dnsmasq %v, record %v", at, linkUp(br), nftTable(br), dnsmasqOf(br), err == nil)
		}
	}
}

func linkUp(name string) bool {
	_, err := os.Lstat(filepath.Join("/sys/class/net", name))
	return err == nil
}

func nftTable(name string) bool {
	return exec.Command("nft", "list", "table", "inet", name).Run() == nil
}

// dnsmasqOf reports whether a dnsmasq for bridge br runs.
func dnsmasqOf(br string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "--interface="+br+"\x00") {
			return true
		}
	}
	return false
}
