package machine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/provider"
)

func TestStaleReason(t *testing.T) {
	const c = "den-app-default-abc123"
	tests := []struct {
		name            string
		projectExists   bool
		state           provider.State
		recordContainer string
		want            string
	}{
		{"running machine", true, provider.Running, c, ""},
		{"stopped machine", true, provider.Stopped, c, ""},
		{"frozen machine", true, provider.Frozen, c, ""},
		{"reservation held by the project's record", true, provider.NotCreated, c, ""},
		{"container gone, record gone", true, provider.NotCreated, "", "container is gone"},
		{"container gone, record names another container", true, provider.NotCreated, "den-app-default-ffffff", "container is gone"},
		{"project folder gone, container gone", false, provider.NotCreated, "", "project folder is gone"},
		{"project folder gone, container still running", false, provider.Running, "", "project folder is gone"},
		{"container exists without a record", true, provider.Stopped, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleReason(tc.projectExists, tc.state, tc.recordContainer, c); got != tc.want {
				t.Errorf("staleReason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGlobalID(t *testing.T) {
	a, b := GlobalID("den-a-default-111111"), GlobalID("den-a-web-111111")
	if len(a) != 7 || a == b || a != GlobalID("den-a-default-111111") {
		t.Errorf("ids %q and %q: want 7 stable, distinct hex digits", a, b)
	}
}

func TestNewestPushed(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	snap := func(name string, minutes int) provider.Snapshot {
		return provider.Snapshot{Name: name, Created: t0.Add(time.Duration(minutes) * time.Minute)}
	}
	tests := []struct {
		name string
		list []provider.Snapshot
		want string
	}{
		{"none", nil, ""},
		{"only saved ones", []provider.Snapshot{snap("clean", 1), snap("before-upgrade", 2)}, ""},
		{"newest pushed, not newest saved", []provider.Snapshot{snap("push_1_0001", 1), snap("push_2_0002", 2), snap("later", 3)}, "push_2_0002"},
		{"by time, not by name", []provider.Snapshot{snap("push_9_0000", 1), snap("push_1_0000", 5)}, "push_1_0000"},
		{"same time: by name", []provider.Snapshot{snap("push_5_0001", 1), snap("push_5_0002", 1)}, "push_5_0002"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := newestPushed(tc.list); got != tc.want {
				t.Errorf("newestPushed = %q, want %q", got, tc.want)
			}
		})
	}
}

// machineRootfs is a machine's merged filesystem as den leaves it after
// create: its keys and identity on top of a box.
func machineRootfs(t *testing.T) string {
	dir := fakeRootfs(t)
	os.Remove(filepath.Join(dir, "etc/ssh/ssh_host_rsa_key"))
	os.Remove(filepath.Join(dir, "etc/ssh/ssh_host_rsa_key.pub"))
	files := map[string]string{
		"etc/ssh/ssh_host_ed25519_key":      "machine host key",
		"etc/ssh/ssh_host_ed25519_key.pub":  "machine host key pub",
		"etc/ssh/sshd_config.d/den.conf":    sshdDropIn,
		"home/den/.ssh/authorized_keys":     "ssh-ed25519 AAAA den default\n",
		"home/den/notes.txt":                "the user's work\n",
		"etc/machine-id":                    "0123456789abcdef0123456789abcdef\n",
		"etc/hostname":                      "web\n",
		"var/lib/dbus/machine-id":           "0123456789abcdef0123456789abcdef\n",
		"var/lib/systemd/random-seed":       "seed",
		"var/lib/dhcp/dhclient.eth0.leases": "lease {}\n",
		"etc/den-marker":                    "kept\n",
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data, 0o644)
	}
	return dir
}

func TestPackageScrub(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	dir := machineRootfs(t)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	removed, err := packageScrub(provider.RootFS(root), "den")
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{
		"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub",
		"home/den/.ssh/authorized_keys", "etc/hostname", "var/lib/dbus/machine-id",
		"var/lib/systemd/random-seed", "var/lib/dhcp/dhclient.eth0.leases",
	} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("/%s is still there (%v)", gone, err)
		}
		if !slices.Contains(removed, "/"+gone) {
			t.Errorf("/%s not reported as removed: %v", gone, removed)
		}
	}
	for _, kept := range []string{"etc/ssh/sshd_config.d/den.conf", "home/den/notes.txt", "etc/den-marker", "home/den/.ssh", "var/lib/dhcp", "etc/passwd"} {
		if _, err := os.Lstat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("/%s was removed: %v", kept, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "etc/machine-id"))
	if err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o444 {
		t.Errorf("/etc/machine-id should be empty, 0444: %v %v", fi, err)
	}
	// Twice is fine: nothing left to remove but the machine id.
	if _, err := packageScrub(provider.RootFS(root), "den"); err != nil {
		t.Errorf("second scrub: %v", err)
	}
}

func TestPackageScrubStaysInsideRootfs(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	dir := machineRootfs(t)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "authorized_keys"), "the host's own key\n", 0o600)
	os.RemoveAll(filepath.Join(dir, "home/den/.ssh"))
	if err := os.Symlink(outside, filepath.Join(dir, "home/den/.ssh")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = packageScrub(provider.RootFS(root), "den")
	if err == nil || !strings.Contains(err.Error(), "authorized_keys") {
		t.Errorf("scrub through a symlink out of the rootfs: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "authorized_keys")); err != nil || string(b) != "the host's own key\n" {
		t.Fatalf("a host file was touched: %q %v", b, err)
	}
}

func TestPackageScrubUnknownUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	root, err := os.OpenRoot(machineRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := packageScrub(provider.RootFS(root), "vagrant"); err == nil || !strings.Contains(err.Error(), `"vagrant"`) {
		t.Errorf("scrub for a missing user: %v", err)
	}
}
