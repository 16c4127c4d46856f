package fsutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/den-dev/den/internal/testenv"
	"golang.org/x/sys/unix"
)

// needRoot skips a test that needs root (device nodes, trusted.* extended
// attributes, chown), except under CI=true, where it must run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root; CI=true does not allow skipping")
	}
	testenv.Skip(t, "needs root")
}

// describe lists every entry below dir with all that CopyTree must keep:
// type, mode, owner, device number, size, content hash, symlink target,
// modification time, extended attributes, and which entries share an inode.
func describe(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	first := map[[2]uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "mode=%#o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		typ := st.Mode & unix.S_IFMT
		if typ != unix.S_IFDIR {
			fmt.Fprintf(&b, " mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		switch typ {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			fmt.Fprintf(&b, " size=%d sha=%s", st.Size, hex.EncodeToString(sum[:8]))
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " target=%q", target)
		case unix.S_IFCHR, unix.S_IFBLK:
			fmt.Fprintf(&b, " dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if typ != unix.S_IFDIR && st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if f, ok := first[key]; ok {
				fmt.Fprintf(&b, " linkof=%s", f)
			} else {
				first[key] = rel
			}
		}
		names, err := XattrNames(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			v, err := Xattr(p, n)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " xattr:%s=%x", n, v)
		}
		out[rel] = b.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffTrees reports every difference between two descriptions.
func diffTrees(t *testing.T, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s:\n  want %s\n  got  %s", k, want[k], got[k])
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// capNetRaw is a version 2 security.capability value: cap_net_raw=ep.
var capNetRaw = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// makeTree fills dir with one of every kind of entry an overlay upper layer
// can hold.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	p := func(rel string) string { return filepath.Join(dir, rel) }
	must(t, os.MkdirAll(p("etc/ssh"), 0o755))
	must(t, os.WriteFile(p("etc/ssh/ssh_host_ed25519_key"), []byte("secret"), 0o600))
	must(t, os.WriteFile(p("etc/empty"), nil, 0o644))
	must(t, os.MkdirAll(p("home/den/.ssh"), 0o700))
	must(t, os.WriteFile(p("home/den/.ssh/authorized_keys"), []byte("ssh-ed25519 AAAA den\n"), 0o600))
	must(t, os.Lchown(p("home/den/.ssh"), 1234, 1234))
	must(t, os.Lchown(p("home/den/.ssh/authorized_keys"), 1234, 1234))
	// setuid after chown (chown clears it), a file capability.
	must(t, os.MkdirAll(p("usr/bin"), 0o755))
	must(t, os.WriteFile(p("usr/bin/sudo"), []byte("#!sudo"), 0o755))
	must(t, os.Chmod(p("usr/bin/sudo"), 0o4755))
	must(t, os.WriteFile(p("usr/bin/ping"), []byte("#!ping"), 0o755))
	must(t, unix.Lsetxattr(p("usr/bin/ping"), "security.capability", capNetRaw, 0))
	must(t, unix.Lsetxattr(p("usr/bin/ping"), "user.note", []byte("a note"), 0))
	// Hard links, three names for one file, and a big file.
	must(t, os.WriteFile(p("usr/bin/perl"), []byte("#!perl"), 0o755))
	must(t, os.Link(p("usr/bin/perl"), p("usr/bin/perl5.36")))
	must(t, os.Link(p("usr/bin/perl"), p("etc/perl-link")))
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(t, os.WriteFile(p("usr/big.bin"), big, 0o644))
	// Symlinks: absolute (pointing at the host's /etc, never followed),
	// relative, dangling.
	must(t, os.Symlink("/etc/passwd", p("etc/abs-link")))
	must(t, os.Symlink("../usr/bin/sudo", p("etc/rel-link")))
	must(t, os.Symlink("nowhere", p("etc/dangling")))
	must(t, unix.Fchownat(unix.AT_FDCWD, p("etc/rel-link"), 1234, 4321, unix.AT_SYMLINK_NOFOLLOW))
	// Overlay whiteouts: 0:0 character devices, two sharing an inode as the
	// kernel makes them; an opaque folder.
	must(t, unix.Mknod(p("etc/deleted"), unix.S_IFCHR, 0))
	must(t, unix.Link(p("etc/deleted"), p("usr/deleted-too")))
	must(t, os.MkdirAll(p("opt/replaced"), 0o755))
	must(t, unix.Lsetxattr(p("opt/replaced"), "trusted.overlay.opaque", []byte("y"), 0))
	must(t, os.WriteFile(p("opt/replaced/new"), []byte("new"), 0o644))
	// Other nodes: /dev/null's twin, a block device, a fifo, a socket.
	must(t, os.MkdirAll(p("dev"), 0o755))
	must(t, unix.Mknod(p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(p("dev/loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(t, unix.Mkfifo(p("dev/fifo"), 0o620))
	must(t, unix.Mknod(p("dev/sock"), unix.S_IFSOCK|0o755, 0))
	// A read-only folder with content, a sticky one, an empty one.
	must(t, os.MkdirAll(p("ro/inner"), 0o755))
	must(t, os.WriteFile(p("ro/inner/file"), []byte("x"), 0o444))
	must(t, os.Chmod(p("ro/inner"), 0o555))
	must(t, os.Chmod(p("ro"), 0o500))
	must(t, os.MkdirAll(p("tmp"), 0o755))
	must(t, os.Chmod(p("tmp"), 0o1777))
	must(t, os.MkdirAll(p("empty"), 0o710))
	must(t, os.Lchown(p("empty"), 5, 6))
	// Times to the nanosecond, on a file and on a symlink.
	when := time.Date(2024, 2, 29, 12, 34, 56, 123456789, time.UTC)
	must(t, os.Chtimes(p("etc/empty"), when, when))
	ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p("etc/abs-link"), ts, unix.AT_SYMLINK_NOFOLLOW))
	must(t, os.Chmod(dir, 0o755))
}

func TestCopyTreeExact(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	must(t, os.Mkdir(src, 0o755))
	makeTree(t, src)
	size, err := CopyTree(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	diffTrees(t, describe(t, src), describe(t, dst))
	if size < 3<<20 {
		t.Errorf("size = %d, want at least the big file's 3 MiB", size)
	}
	// The absolute symlink was copied as a link, not followed.
	if fi, err := os.Lstat(filepath.Join(dst, "etc/abs-link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("etc/abs-link is not a symlink in the copy: %v", err)
	}
}

func TestCopyTreeRefusals(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, os.MkdirAll(filepath.Join(src, "a"), 0o755))
	must(t, os.Symlink(src, filepath.Join(base, "link")))
	must(t, os.WriteFile(filepath.Join(base, "file"), nil, 0o644))
	tests := []struct {
		name     string
		src, dst string
		want     string
	}{
		{"dst exists", src, filepath.Join(src, "a"), "exists"},
		{"src is a symlink", filepath.Join(base, "link"), filepath.Join(base, "d1"), "not a folder"},
		{"src is a file", filepath.Join(base, "file"), filepath.Join(base, "d2"), "not a folder"},
		{"src missing", filepath.Join(base, "nope"), filepath.Join(base, "d3"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CopyTree(context.Background(), tc.src, tc.dst)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestCopyTreeRefusesMountPoint(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, os.MkdirAll(filepath.Join(src, "mnt"), 0o755))
	must(t, unix.Mount("tmpfs", filepath.Join(src, "mnt"), "tmpfs", 0, "size=1m"))
	defer unix.Unmount(filepath.Join(src, "mnt"), unix.MNT_DETACH)
	_, err := CopyTree(context.Background(), src, filepath.Join(base, "dst"))
	if err == nil || !strings.Contains(err.Error(), "another filesystem") {
		t.Fatalf("got %v, want a refusal to cross the mount", err)
	}
}

func TestCopyTreeStopsOnCancel(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	write(t, filepath.Join(src, "a", "b"), "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CopyTree(ctx, src, filepath.Join(base, "dst")); err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// mountOverlay mounts an overlay of lower with upper at merged.
func mountOverlay(t *testing.T, lower, upper, work, merged string) {
	t.Helper()
	for _, d := range []string{upper, work, merged} {
		must(t, os.MkdirAll(d, 0o755))
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		testenv.Skip(t, fmt.Sprintf("cannot mount an overlay here: %v", err))
	}
}

// TestCopyTreeOverlayUpper makes an overlay upper layer the way a machine
// does (deletions, a folder replaced, copy-ups, hard links), copies it, and
// checks that the copy over the same lower layer shows the same tree.
func TestCopyTreeOverlayUpper(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	lower := filepath.Join(base, "lower")
	write(t, filepath.Join(lower, "etc/keep"), "keep")
	write(t, filepath.Join(lower, "etc/gone"), "gone")
	write(t, filepath.Join(lower, "opt/tool/old1"), "old1")
	write(t, filepath.Join(lower, "opt/tool/old2"), "old2")
	write(t, filepath.Join(lower, "usr/bin/chmodded"), "c")
	merged := filepath.Join(base, "merged")
	upper := filepath.Join(base, "upper")
	mountOverlay(t, lower, upper, filepath.Join(base, "work"), merged)
	m := func(rel string) string { return filepath.Join(merged, rel) }
	must(t, os.Remove(m("etc/gone")))
	must(t, os.RemoveAll(m("opt/tool")))
	write(t, m("opt/tool/new"), "new")
	must(t, os.Chmod(m("usr/bin/chmodded"), 0o4711))
	write(t, m("home/den/file"), "data")
	must(t, os.Link(m("home/den/file"), m("home/den/link")))
	must(t, os.Symlink("/etc/keep", m("etc/link")))
	for _, cmd := range [][]string{{"rm", "-f", m("etc/keep")}, {"sh", "-c", "echo again > " + m("etc/keep")}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	want := describe(t, merged)
	must(t, unix.Unmount(merged, 0))

	upperCopy := filepath.Join(base, "upper-copy")
	if _, err := CopyTree(context.Background(), upper, upperCopy); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, describe(t, upper), describe(t, upperCopy))
	merged2 := filepath.Join(base, "merged2")
	mountOverlay(t, lower, upperCopy, filepath.Join(base, "work2"), merged2)
	defer unix.Unmount(merged2, unix.MNT_DETACH)
	got := describe(t, merged2)
	diffTrees(t, want, got)
	if _, ok := got["etc/gone"]; ok {
		t.Error("a deleted file came back: the whiteout was not copied")
	}
	if _, ok := got["opt/tool/old1"]; ok {
		t.Error("a replaced folder shows its old content: the opaque mark was not copied")
	}
}
