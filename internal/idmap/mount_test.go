//go:build linux

package idmap

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// asIDs runs fn on a thread whose filesystem ids are uid and gid (and no
// capabilities), as an unprivileged process would run it.
func asIDs(t *testing.T, uid, gid uint32, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread's ids are changed and never put back: it ends with
		// this goroutine (no UnlockOSThread), so no other code runs on it.
		runtime.LockOSThread()
		unix.Setfsgid(int(gid))
		unix.Setfsuid(int(uid))
		if got, _ := unix.SetfsuidRetUid(-1); got != int(uid) {
			errc <- errors.New("setfsuid did not take")
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func TestMount(t *testing.T) {
	needRoot(t)
	tmp := openTempDir(t)
	src := filepath.Join(tmp, "src")
	for _, d := range []string{src, filepath.Join(src, "home")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "rootfile"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(src, "home"), 1000, 1001); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(src, "rootfile"), 0, 5); err != nil {
		t.Fatal(err)
	}
	ns, err := NewUserNS(RangeMap(testBase))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()

	rw, ro := mountDir(t, tmp, "rw"), mountDir(t, tmp, "ro")
	if err := Mount(src, rw, ns, false); err != nil {
		t.Fatal(err)
	}
	if err := Mount(src, ro, ns, true); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][2]uint32{
		rw:                            {testBase, testBase},
		filepath.Join(rw, "rootfile"): {testBase, testBase + 5},
		filepath.Join(rw, "home"):     {testBase + 1000, testBase + 1001},
		filepath.Join(ro, "home"):     {testBase + 1000, testBase + 1001},
	} {
		if u, g := owner(t, path); u != want[0] || g != want[1] {
			t.Errorf("%s is owned by %d:%d, want %d:%d", path, u, g, want[0], want[1])
		}
	}

	// A write through the mapped mount as BASE+1000 lands on disk as 1000.
	err = asIDs(t, testBase+1000, testBase+1001, func() error {
		return os.WriteFile(filepath.Join(rw, "home", "new"), []byte("hi"), 0o644)
	})
	if err != nil {
		t.Fatalf("write as %d through the mount: %v", testBase+1000, err)
	}
	if u, g := owner(t, filepath.Join(src, "home", "new")); u != 1000 || g != 1001 {
		t.Errorf("file written as %d:%d through the mount is %d:%d on disk, want 1000:1001", testBase+1000, testBase+1001, u, g)
	}
	// An id outside the map cannot write (EOVERFLOW), even where it may.
	os.Chmod(filepath.Join(src, "home"), 0o777)
	err = asIDs(t, 4242, 4242, func() error {
		return os.WriteFile(filepath.Join(rw, "home", "unmapped"), nil, 0o644)
	})
	if !errors.Is(err, unix.EOVERFLOW) {
		t.Errorf("write by an unmapped id: %v, want EOVERFLOW", err)
	}
	// The host's root writes as the map's 0, so it cannot write either.
	if err := os.WriteFile(filepath.Join(rw, "byroot"), nil, 0o644); !errors.Is(err, unix.EOVERFLOW) {
		t.Errorf("write by host root: %v, want EOVERFLOW", err)
	}
	// Read-only is read-only, for root too.
	if err := os.WriteFile(filepath.Join(ro, "home", "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into the read-only mount: %v, want EROFS", err)
	}
	if err := os.Chown(filepath.Join(ro, "rootfile"), testBase, testBase); !errors.Is(err, unix.EROFS) {
		t.Errorf("chown in the read-only mount: %v, want EROFS", err)
	}

	if err := Unmount(rw); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(ro); err != nil {
		t.Fatal(err)
	}
	if u, _ := owner(t, filepath.Join(rw)); u != 0 {
		t.Errorf("after Unmount %s is still owned by %d", rw, u)
	}
	if err := Unmount(rw); err != nil {
		t.Errorf("Unmount of a folder that is no mount point: %v", err)
	}
	if err := Mount(filepath.Join(tmp, "missing"), rw, ns, true); err == nil {
		t.Error("Mount of a missing folder succeeded")
	}
}

// TestBindReadOnly lays a read-only file and an empty read-only folder
// over an idmapped tree, as den does over a project's den.hcl and .den.
func TestBindReadOnly(t *testing.T) {
	needRoot(t)
	tmp := openTempDir(t)
	project, empty := filepath.Join(tmp, "project"), filepath.Join(tmp, "empty")
	mkTree(t, project, map[string]string{"den.hcl": "box", ".den/key": "secret"})
	os.Mkdir(empty, 0o755)
	for _, p := range []string{filepath.Join(project, "den.hcl"), filepath.Join(project, ".den", "key")} {
		os.Chown(p, 1000, 1000)
	}
	ns, err := NewUserNS(RangeMap(testBase))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	tree := mountDir(t, tmp, "tree")
	if err := Mount(project, tree, ns, false); err != nil {
		t.Fatal(err)
	}
	hcl, dot := filepath.Join(tree, "den.hcl"), filepath.Join(tree, ".den")
	if err := BindReadOnly(hcl, hcl); err != nil {
		t.Fatal(err)
	}
	if err := BindReadOnly(empty, dot); err != nil {
		t.Fatal(err)
	}
	if u, _ := owner(t, hcl); u != testBase+1000 {
		t.Errorf("den.hcl over itself shows as owned by %d, want the tree's idmap (%d)", u, testBase+1000)
	}
	err = asIDs(t, testBase+1000, testBase+1000, func() error {
		return os.WriteFile(hcl, []byte("changed"), 0o644)
	})
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing the read-only den.hcl: %v, want EROFS", err)
	}
	if ents, err := os.ReadDir(dot); err != nil || len(ents) != 0 {
		t.Errorf(".den under the empty folder shows %v, %v", ents, err)
	}
	if err := os.WriteFile(filepath.Join(dot, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing into the hiding folder: %v, want EROFS", err)
	}
	// One Unmount takes the tree with what lies on it.
	if err := Unmount(tree); err != nil {
		t.Fatal(err)
	}
	if left := mountsUnder(tmp); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
	if got := read(t, filepath.Join(project, "den.hcl")); got != "box" {
		t.Errorf("den.hcl is now %q", got)
	}
}
