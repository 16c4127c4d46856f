package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// vagrantTemplate does with a box what vagrant-lxc 1.4's own template
// (scripts/lxc-template, run by lxc-create) does: unpack rootfs.tar.gz into
// the container's rootfs with 'tar xfz --strip-components=2 --xattrs
// --xattrs-include=*', require bin/true, and append the box's lxc-config
// to the container's config (written by lxc-create from
// /etc/lxc/default.conf). Unlike vagrant-lxc's, it stops at a tar error.
const vagrantTemplate = `#!/bin/sh
set -eu
path= rootfs= tarball= config=
while [ $# -gt 0 ]; do
	case "$1" in
	--path) path=$2; shift 2 ;;
	--rootfs) rootfs=$2; shift 2 ;;
	--tarball) tarball=$2; shift 2 ;;
	--config) config=$2; shift 2 ;;
	--path=*) path=${1#*=}; shift ;;
	--rootfs=*) rootfs=${1#*=}; shift ;;
	--name|--mapped-uid|--mapped-gid) shift 2 ;;
	*) shift ;;
	esac
done
mkdir -p "$rootfs"
(cd "$rootfs" && tar xfz "$tarball" --strip-components=2 --xattrs --xattrs-include='*')
[ -f "$rootfs/bin/true" ]
cat "$config" >> "$path/config"
`

// TestE2EPackageVagrantLXC packages a machine for vagrant-lxc, makes a
// container from the box the way vagrant-lxc does (lxc-create with its
// template's steps, DHCP on lxcbr0), logs in as vagrant with a key and
// runs sudo, as Vagrant would; then adds the same box to den and boots it.
func TestE2EPackageVagrantLXC(t *testing.T) {
	needE2E(t)
	src := newProject(t, "test-vagrant-src", "box = \"debian/bookworm\"\n")
	mustDen(t, src, "up")
	mustDen(t, src, "ssh", "-c", "sudo sh -c 'echo packaged > /etc/den-package-marker'")
	output := filepath.Join(t.TempDir(), "vagrant.box")
	if r := den(t, src, "", "package", "--format", "vagrant-lxc", "--compression", "zstd", "--output", output); r.code != 2 {
		t.Errorf("--format vagrant-lxc --compression zstd: exit %d, want a usage error", r.code)
	}
	out, took := mustDenTimed(t, src, "package", "--format", "vagrant-lxc", "--output", output)
	if !strings.Contains(out, "Added for vagrant-lxc: ") {
		t.Errorf("package output does not say what it added:\n%s", out)
	}
	fi, err := os.Stat(output)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: package --format vagrant-lxc took %s, box file %d bytes", took, fi.Size())

	// What Vagrant does with a box file: unpack it into the box folder.
	boxDir := t.TempDir()
	if b, err := exec.Command("tar", "xzf", output, "-C", boxDir).CombinedOutput(); err != nil {
		t.Fatalf("unpack the box file: %v\n%s", err, b)
	}
	// vagrant-lxc runs lxc-update-config on the box's lxc-config.
	if b, err := exec.Command("lxc-update-config", "-c", filepath.Join(boxDir, "lxc-config")).CombinedOutput(); err != nil {
		t.Fatalf("lxc-update-config: %v\n%s", err, b)
	}
	template := filepath.Join(t.TempDir(), "vagrant-lxc-template")
	if err := os.WriteFile(template, []byte(vagrantTemplate), 0o755); err != nil {
		t.Fatal(err)
	}
	lxcpath := filepath.Join(e2e.home, "vagrant-lxc")
	if err := os.MkdirAll(lxcpath, 0o700); err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	name := "den-test-vagrant-" + hex.EncodeToString(suffix)
	lxc := func(args ...string) (string, error) {
		b, err := exec.Command(args[0], append([]string{"-P", lxcpath, "-n", name}, args[1:]...)...).CombinedOutput()
		return string(b), err
	}
	t.Cleanup(func() {
		lxc("lxc-stop", "-k")
		if out, err := lxc("lxc-destroy"); err != nil {
			t.Errorf("lxc-destroy %s: %v\n%s", name, err, out)
		}
	})
	if out, err := lxc("lxc-create", "-B", "dir", "-t", template, "--", "--tarball", filepath.Join(boxDir, "rootfs.tar.gz"), "--config", filepath.Join(boxDir, "lxc-config")); err != nil {
		t.Fatalf("lxc-create as vagrant-lxc runs it: %v\n%s", err, out)
	}
	if out, err := lxc("lxc-start"); err != nil {
		t.Fatalf("lxc-start: %v\n%s", err, out)
	}

	// Vagrant logs in as vagrant with its insecure key, which the box
	// holds; this test holds a key of its own, added beside it.
	keys, err := lxc("lxc-attach", "--clear-env", "--", "cat", "/home/vagrant/.ssh/authorized_keys")
	if err != nil || strings.Count(keys, "vagrant insecure public key") != 2 {
		t.Fatalf("vagrant's authorized_keys: %v\n%s", err, keys)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	signer, _ := ssh.NewSignerFromKey(priv)
	add := exec.Command("lxc-attach", "-P", lxcpath, "-n", name, "--clear-env", "--", "sh", "-c", "cat >> /home/vagrant/.ssh/authorized_keys")
	add.Stdin = bytes.NewReader(ssh.MarshalAuthorizedKey(sshPub))
	if b, err := add.CombinedOutput(); err != nil {
		t.Fatalf("add the test key: %v\n%s", err, b)
	}

	// The machine takes an address by DHCP (vagrant-lxc sets none) and
	// makes its own host key on first boot; pin that one.
	var addr, hostPub string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := lxc("lxc-info", "-iH")
		if ip := strings.TrimSpace(strings.Split(out, "\n")[0]); net.ParseIP(ip) != nil {
			addr = ip
		}
		hostPub, _ = lxc("lxc-attach", "--clear-env", "--", "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
		if addr != "" && strings.HasPrefix(hostPub, "ssh-ed25519 ") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if addr == "" || !strings.HasPrefix(hostPub, "ssh-ed25519 ") {
		t.Fatalf("no address (%q) or no host key made at first boot (%q) within 60 s (the address comes from lxc-net's dnsmasq on lxcbr0: scripts/host-setup.sh starts it)", addr, hostPub)
	}
	// systemd breaks an ordering cycle by dropping a job at random: the
	// host key unit once formed one with ssh.socket, and the key was made
	// on some boots only.
	if out, _ := lxc("lxc-attach", "--clear-env", "--", "journalctl", "-b", "--no-pager", "-g", "ordering cycle"); strings.Contains(out, "cycle") {
		t.Errorf("systemd found an ordering cycle at boot:\n%s", out)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostPub))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ClientConfig{
		User:              "vagrant",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(hostKey),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           5 * time.Second,
	}
	var client *ssh.Client
	for time.Now().Before(deadline) {
		if client, err = ssh.Dial("tcp", net.JoinHostPort(addr, "22"), cfg); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if client == nil {
		t.Fatalf("ssh vagrant@%s: %v", addr, err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	got, err := sess.CombinedOutput("whoami; sudo -n cat /etc/den-package-marker; test -e /home/den/.ssh/authorized_keys || echo no-den-key")
	if want := "vagrant\npackaged\nno-den-key\n"; err != nil || string(got) != want {
		t.Errorf("as Vagrant would, over ssh: %q %v, want %q", got, err, want)
	}

	// den takes the same box: it logs in as vagrant with its own key, and
	// the insecure keys are gone from the machine.
	mustDen(t, t.TempDir(), "box", "add", "test/vagrant-pkg", output)
	t.Cleanup(func() { den(t, t.TempDir(), "", "box", "remove", "test/vagrant-pkg") }) // after dst's destroy
	dst := newProject(t, "test-vagrant-dst", "box = \"test/vagrant-pkg\"\n")
	mustDen(t, dst, "up")
	if got := mustDen(t, dst, "ssh", "-c", "whoami; cat /etc/den-package-marker; grep -c 'vagrant insecure' ~/.ssh/authorized_keys || true"); got != "vagrant\npackaged\n0\n" {
		t.Errorf("machine made by den from the vagrant-lxc box: %q", got)
	}
}
