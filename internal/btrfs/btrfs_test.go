package btrfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/idmap"
	"github.com/den-dev/den/internal/testenv"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

func gone(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, os.ErrNotExist)
}

func TestSubvolumes(t *testing.T) {
	mnt := testenv.Btrfs(t, 1<<30)
	if ok, err := Is(mnt); !ok || err != nil {
		t.Fatalf("Is(%s) = %v, %v", mnt, ok, err)
	}
	if ok, _ := Is("/proc"); ok {
		t.Error("/proc is btrfs?")
	}
	box := filepath.Join(mnt, "box")
	if err := Create(box); err != nil {
		t.Fatal(err)
	}
	if !IsSubvolume(box) || IsSubvolume(mnt+"/nothing") {
		t.Fatal("IsSubvolume")
	}
	write(t, filepath.Join(box, "etc/os-release"), "box\n")
	if err := SetReadOnly(box, true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(box, "x"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("a write into a read-only subvolume: %v", err)
	}
	// A machine: a writable snapshot of the read-only box.
	m := filepath.Join(mnt, "machine")
	if err := os.Mkdir(m, 0o700); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(m, "rootfs")
	if err := Snapshot(box, root, false); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "etc/os-release"), "machine\n")
	if read(t, filepath.Join(box, "etc/os-release")) != "box\n" {
		t.Error("the machine's write reached the box")
	}
	// A read-only snapshot of the machine, which then changes on.
	snap := filepath.Join(m, "snap")
	if err := Snapshot(root, snap, true); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "etc/os-release"), "later\n")
	if read(t, filepath.Join(snap, "etc/os-release")) != "machine\n" {
		t.Error("the snapshot changed with the machine")
	}
	// A guest makes subvolumes of its own in its root; a snapshot shows
	// an empty folder in their place; all of it goes.
	if err := Create(filepath.Join(root, "var/lib/docker")); err == nil {
		t.Error("Create below a missing folder succeeded")
	}
	os.MkdirAll(filepath.Join(root, "var/lib"), 0o755)
	for _, p := range []string{"var/lib/docker", "var/lib/docker/inner", "srv"} {
		if err := Create(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(root, p, "data"), p)
	}
	if err := Snapshot(root, filepath.Join(m, "snap2"), true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(m, "snap2/srv")); err != nil || !fi.IsDir() || !gone(filepath.Join(m, "snap2/srv/data")) {
		t.Errorf("a nested subvolume in a snapshot: %v %v", fi, err)
	}
	// The machine's folder goes whole: subvolumes, nested ones, read-only
	// snapshots and plain files.
	write(t, filepath.Join(m, "config"), "lxc.uts.name = x\n")
	if err := fsutil.RemoveTree(m); err == nil {
		t.Fatal("RemoveTree without RemoveAt crossed into a subvolume")
	}
	if err := fsutil.RemoveTreeWith(m, RemoveAt); err != nil {
		t.Fatal(err)
	}
	if !gone(m) {
		t.Error("the machine's folder is still there")
	}
	// Delete takes a subvolume by its path; the box is kept by the rest.
	if err := Delete(box); err != nil || !gone(box) {
		t.Errorf("Delete(box): %v", err)
	}
	// A mount point is never crossed.
	other := filepath.Join(mnt, "withmount")
	os.MkdirAll(filepath.Join(other, "m"), 0o755)
	if err := unix.Mount("tmpfs", filepath.Join(other, "m"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(other, "m"), 0)
	if err := fsutil.RemoveTreeWith(other, RemoveAt); !errors.Is(err, fsutil.ErrMounted) {
		t.Errorf("RemoveTreeWith across a mount: %v", err)
	}
	fd, _ := unix.Open(other, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer unix.Close(fd)
	if err := RemoveAt(fd, "m", filepath.Join(other, "m")); !errors.Is(err, ErrNotSubvolume) {
		t.Errorf("RemoveAt of a tmpfs mount point: %v", err)
	}
}

// An unprivileged machine reaches its subvolume through an idmapped mount
// (0 -> base): the files keep the box's ids on disk.
func TestIdmappedSubvolume(t *testing.T) {
	mnt := testenv.Btrfs(t, 1<<30)
	root := filepath.Join(mnt, "rootfs")
	if err := Create(root); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "home/den/file"), "x")
	os.Chown(filepath.Join(root, "home/den/file"), 1000, 1000)
	const base = 0x7fff0000
	ns, err := idmap.NewUserNS(idmap.RangeMap(base))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	at := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(at, 0o700)
	if err := idmap.Mount(root, at, ns, false); err != nil {
		t.Fatalf("idmapped mount of a btrfs subvolume: %v", err)
	}
	defer idmap.Unmount(at)
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(at, "home/den/file"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != base+1000 || st.Gid != base+1000 {
		t.Errorf("through the mount: %d:%d, want %d:%d", st.Uid, st.Gid, base+1000, base+1000)
	}
	// What the mapped root writes lands as root on disk.
	if err := os.WriteFile(filepath.Join(at, "new"), nil, 0o644); err == nil {
		t.Error("host root (unmapped) wrote through the idmapped mount")
	}
}
