//go:build linux

package idmap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPin(t *testing.T) {
	needRoot(t)
	tmp := openTempDir(t)
	pin := filepath.Join(tmp, "pin")
	t.Cleanup(func() { Unpin(pin) })
	for range 2 { // pinning again replaces the pin, never stacks mounts
		if err := Pin(mustOwnerMap(t, testBase, 1000, 1001), pin); err != nil {
			t.Fatal(err)
		}
	}
	if !Pinned(pin) {
		t.Fatal("Pinned() = false after Pin")
	}
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(mountinfo), " "+pin+" "); n != 1 {
		t.Errorf("%d mounts on the pin, want 1", n)
	}
	ns, err := os.Open(pin)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if typ, err := unix.IoctlRetInt(int(ns.Fd()), unix.NS_GET_NSTYPE); err != nil || typ != unix.CLONE_NEWUSER {
		t.Fatalf("NS_GET_NSTYPE on the pin = %x, %v", typ, err)
	}
	uidMap, gidMap := nsMaps(t, ns)
	if uidMap != "1000 16778216 1\n" || gidMap != "1001 16778217 1\n" {
		t.Errorf("pinned maps: %q %q", uidMap, gidMap)
	}

	// The pinned namespace gives a mount the owner's narrow map: the
	// owner's files show as BASE+owner, everyone else's as overflow ids.
	src := filepath.Join(tmp, "project")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "mine"), nil, 0o644)
	os.WriteFile(filepath.Join(src, "roots"), nil, 0o644)
	os.Chown(filepath.Join(src, "mine"), 1000, 1001)
	target := mountDir(t, tmp, "den")
	if err := Mount(src, target, ns, false); err != nil {
		t.Fatal(err)
	}
	defer Unmount(target)
	if u, g := owner(t, filepath.Join(target, "mine")); u != testBase+1000 || g != testBase+1001 {
		t.Errorf("owner's file shows as %d:%d", u, g)
	}
	if u, g := owner(t, filepath.Join(target, "roots")); u != 65534 || g != 65534 {
		t.Errorf("root's file shows as %d:%d, want the overflow ids", u, g)
	}

	if err := Unpin(pin); err != nil {
		t.Fatal(err)
	}
	if Pinned(pin) {
		t.Error("still pinned after Unpin")
	}
	if _, err := os.Lstat(pin); !os.IsNotExist(err) {
		t.Errorf("pin file left: %v", err)
	}
	if err := Unpin(pin); err != nil {
		t.Errorf("Unpin of nothing: %v", err)
	}
	os.WriteFile(pin, []byte("data"), 0o644)
	if err := Unpin(pin); err == nil {
		t.Error("Unpin removed a file that is no pin")
	}
	if err := Pin(mustOwnerMap(t, testBase, 1000, 1000), "relative/pin"); err == nil {
		t.Error("Pin took a relative path")
	}
}

func TestLXCMountOption(t *testing.T) {
	for path, want := range map[string]string{
		"/run/den/idmap/den-app-default-1a2b3c": "idmap=/run/den/idmap/den-app-default-1a2b3c",
		"/run/den/idmap/app-optional-x":         "",
		"/run/den/relative/x":                   "",
		"/run/den/idmap/a,ro":                   "",
		"/run/den/idmap/a b":                    "",
		"run/den/x":                             "",
		"/run/den/../x":                         "",
		"container":                             "",
	} {
		got, err := LXCMountOption(path)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("LXCMountOption(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
}
