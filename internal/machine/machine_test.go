package machine

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/provider"
)

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func owner(t *testing.T, path string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// fakeRootfs is a tiny box rootfs with a den user (1000) and box host keys.
func fakeRootfs(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nden:x:1000:1000::/home/den:/bin/bash\n", 0o644)
	writeFile(t, filepath.Join(dir, "etc/group"), "root:x:0:\nsudo:x:27:den\nden:x:1000:\n", 0o644)
	writeFile(t, filepath.Join(dir, "etc/ssh/ssh_host_rsa_key"), "box key", 0o600)
	writeFile(t, filepath.Join(dir, "etc/ssh/ssh_host_rsa_key.pub"), "box key", 0o644)
	writeFile(t, filepath.Join(dir, "home/den/.bashrc"), "# rc\n", 0o644)
	if err := os.Symlink("/run/systemd/resolve/stub-resolv.conf", filepath.Join(dir, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"home/den", "home/den/.bashrc"} {
		os.Chown(filepath.Join(dir, p), 1000, 1000)
	}
	return dir
}

func TestPrepareGuest(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	dir := fakeRootfs(t)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var warnings []string
	_, err = prepareGuest(provider.RootFS(root), guestSetup{
		Hostname: "web", User: "den", UID: 1234, GID: 1234,
		Authorized: []byte("ssh-ed25519 AAAA den web\n"),
		HostKey:    []byte("PRIVATE"), HostPub: []byte("ssh-ed25519 BBBB\n"),
		Nameserver: "10.0.3.1",
	}, func(f string, a ...any) { warnings = append(warnings, f) })
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("etc/hostname"); got != "web\n" {
		t.Errorf("hostname %q", got)
	}
	if got := read("etc/resolv.conf"); !strings.Contains(got, "nameserver 10.0.3.1") {
		t.Errorf("resolv.conf %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "etc/resolv.conf")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("resolv.conf is still a symlink")
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/ssh/ssh_host_rsa_key")); !os.IsNotExist(err) {
		t.Errorf("box host key survived: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc/ssh/ssh_host_ed25519_key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("host key: %v %v", fi, err)
	}
	if got := read("etc/passwd"); !strings.Contains(got, "den:x:1234:1234::/home/den:/bin/bash") {
		t.Errorf("passwd not remapped:\n%s", got)
	}
	if got := read("etc/group"); !strings.Contains(got, "den:x:1234:") {
		t.Errorf("group not remapped:\n%s", got)
	}
	if u, g := owner(t, filepath.Join(dir, "home/den/.bashrc")); u != 1234 || g != 1234 {
		t.Errorf(".bashrc owned by %d:%d", u, g)
	}
	ak := filepath.Join(dir, "home/den/.ssh/authorized_keys")
	if u, _ := owner(t, ak); u != 1234 {
		t.Errorf("authorized_keys owned by %d", u)
	}
	if fi, err := os.Stat(filepath.Join(dir, "home/den/.ssh")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf(".ssh mode %v", fi.Mode())
	}
	if len(read("etc/machine-id")) != 33 {
		t.Errorf("machine-id %q", read("etc/machine-id"))
	}
}

func TestPrepareGuestKeepsIdsForRootOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	dir := fakeRootfs(t)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = prepareGuest(provider.RootFS(root), guestSetup{Hostname: "h", User: "den", Authorized: []byte("k\n"), HostKey: []byte("k"), HostPub: []byte("k"), Nameserver: "10.0.3.1"}, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := owner(t, filepath.Join(dir, "home/den/.ssh/authorized_keys")); u != 1000 {
		t.Errorf("authorized_keys owned by %d, want the box's 1000", u)
	}
}

func TestPrepareGuestMissingUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	dir := fakeRootfs(t)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = prepareGuest(provider.RootFS(root), guestSetup{Hostname: "h", User: "vagrant", Authorized: []byte("k\n"), HostKey: []byte("k"), HostPub: []byte("k")}, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), `"vagrant"`) {
		t.Fatalf("want an error naming the user, got %v", err)
	}
}

func TestPrepareGuestStaysInsideRootfs(t *testing.T) {
	dir := fakeRootfs(t)
	outside := t.TempDir()
	// A malicious box points its home at the host.
	os.RemoveAll(filepath.Join(dir, "home/den"))
	if err := os.Symlink(outside, filepath.Join(dir, "home/den")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = prepareGuest(provider.RootFS(root), guestSetup{Hostname: "h", User: "den", Authorized: []byte("k\n"), HostKey: []byte("k"), HostPub: []byte("k"), Nameserver: "10.0.3.1"}, func(string, ...any) {})
	if err == nil {
		t.Fatal("writing through a symlink out of the rootfs succeeded")
	}
	if entries, err := os.ReadDir(outside); err != nil || len(entries) != 0 {
		t.Fatalf("den wrote outside the rootfs: %v", entries)
	}
}

func TestContainerName(t *testing.T) {
	a := ContainerName("/home/ann/My Project!", "web")
	if !strings.HasPrefix(a, "den-my-project-web-") || len(a) != len("den-my-project-web-")+6 {
		t.Errorf("name %q", a)
	}
	if b := ContainerName("/srv/My Project!", "web"); a == b {
		t.Errorf("two folders share a container name %q", a)
	}
}

// TestPrepareGuestVagrantBox: a vagrant-lxc box's vagrant user is the login
// user, and its authorized_keys (Vagrant's insecure key) is replaced by the
// machine's own key before the first boot; a symlinked .ssh cannot lead
// den's write elsewhere.
func TestPrepareGuestVagrantBox(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	const insecure = "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr vagrant insecure public key\n"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"insecure key replaced", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "home/vagrant/.ssh/authorized_keys"), insecure, 0o600)
		}},
		{".ssh is a symlink to root's", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "root/.ssh/authorized_keys"), "root's own\n", 0o600)
			os.MkdirAll(filepath.Join(dir, "home/vagrant"), 0o755)
			if err := os.Symlink("/root/.ssh", filepath.Join(dir, "home/vagrant/.ssh")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nvagrant:x:1000:1000::/home/vagrant:/bin/bash\n", 0o644)
			writeFile(t, filepath.Join(dir, "etc/group"), "root:x:0:\nvagrant:x:1000:\n", 0o644)
			writeFile(t, filepath.Join(dir, "etc/ssh/ssh_host_rsa_key"), "box key", 0o600)
			tc.setup(t, dir)
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			_, err = prepareGuest(provider.RootFS(root), guestSetup{Hostname: "h", User: "vagrant", Authorized: []byte("ssh-ed25519 AAAA den default\n"),
				HostKey: []byte("k"), HostPub: []byte("k"), Nameserver: "10.0.3.1"}, func(string, ...any) {})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "home/vagrant/.ssh/authorized_keys"))
			if err != nil || string(b) != "ssh-ed25519 AAAA den default\n" {
				t.Errorf("vagrant's authorized_keys: %q %v", b, err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "root/.ssh/authorized_keys")); err == nil && string(b) != "root's own\n" {
				t.Errorf("root's authorized_keys was changed through a symlink: %q", b)
			}
		})
	}
}
