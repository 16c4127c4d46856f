//go:build linux

package idmap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mkTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(rel, "/") {
			continue
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// layerAttrs lists every entry of a layer with its type and overlay
// attributes, sorted.
func layerAttrs(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		keys, err := listXattrs(p)
		if err != nil {
			t.Fatal(err)
		}
		var attrs []string
		for _, k := range keys {
			if strings.Contains(k, "overlay.") {
				v, _ := getXattr(p, k)
				attrs = append(attrs, fmt.Sprintf("%s=%x", k, v))
			}
		}
		sort.Strings(attrs)
		lines = append(lines, fmt.Sprintf("%s %v %s", rel, fi.Mode().Type(), strings.Join(attrs, " ")))
		return nil
	})
	return strings.Join(lines, "\n")
}

// privilegedChanges mounts a privileged overlay of lower under upper on
// the host and, in the merged view, deletes and re-creates a folder,
// deletes a file and a folder and touches a file and a symlink.
func privilegedChanges(t *testing.T, tmp, lower, upper string) {
	t.Helper()
	work, merged := filepath.Join(tmp, "work"), mountDir(t, tmp, "merged")
	os.Mkdir(work, 0o755)
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return os.RemoveAll(filepath.Join(merged, "d")) },
		func() error { return os.Mkdir(filepath.Join(merged, "d"), 0o755) },
		func() error { return os.WriteFile(filepath.Join(merged, "d", "new"), nil, 0o644) },
		func() error { return os.Remove(filepath.Join(merged, "f")) },
		func() error { return os.RemoveAll(filepath.Join(merged, "gone")) },
		func() error { return os.WriteFile(filepath.Join(merged, "keep", "x"), []byte("changed"), 0o644) },
		func() error { return os.Lchown(filepath.Join(merged, "link"), 0, 7) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(work)
}

var lowerTree = map[string]string{
	"d/a": "a", "d/b": "b", "d/sub/c": "c", "f": "f", "gone/y": "y",
	"keep/x": "x", "keep/z": "z", "link": "->f",
}

// TestConvertUpper deletes and re-creates a folder in a privileged
// overlay, converts the upper layer, and mounts it the way an
// unprivileged machine does: with userxattr, over an idmapped lower, from
// inside a user namespace. The deleted content must stay hidden.
func TestConvertUpper(t *testing.T) {
	needRoot(t)
	tmp := openTempDir(t)
	lower, layer := filepath.Join(tmp, "lower"), filepath.Join(tmp, "machine")
	upper := filepath.Join(layer, "delta0")
	mkTree(t, lower, lowerTree)
	os.MkdirAll(upper, 0o755)
	privilegedChanges(t, tmp, lower, upper)

	before := layerAttrs(t, upper)
	if !strings.Contains(before, "d d---------") && !strings.Contains(before, "trusted.overlay.opaque=79") {
		t.Fatalf("the privileged overlay made no opaque folder:\n%s", before)
	}
	n, err := ConvertUpper(upper)
	if err != nil {
		t.Fatal(err)
	}
	after := layerAttrs(t, upper)
	t.Logf("%d attributes converted; before:\n%s\nafter:\n%s", n, before, after)
	if n == 0 || strings.Contains(after, "trusted.overlay.") || !strings.Contains(after, "user.overlay.opaque=79") {
		t.Fatalf("conversion incomplete")
	}
	if n2, err := ConvertUpper(upper); err != nil || n2 != 0 || layerAttrs(t, upper) != after {
		t.Errorf("second ConvertUpper = %d, %v; want nothing to do", n2, err)
	}

	// Mount as an unprivileged machine does, and look.
	view := unprivilegedView(t, tmp, lower, layer)
	want := "d:\nnew\nroot:\nd\nkeep\nlink\nkeep:\nx\nz\nx=changed\n"
	if view != want {
		t.Errorf("unprivileged view:\n%s\nwant:\n%s", view, want)
	}
	// Unconverted, the same layer shows the deleted box files again.
	plain := filepath.Join(tmp, "plain")
	os.MkdirAll(filepath.Join(plain, "delta0"), 0o755)
	privilegedChanges(t, tmp, lower, filepath.Join(plain, "delta0"))
	if view := unprivilegedView(t, tmp, lower, plain); !strings.Contains(view, "d:\na\nb\nnew\nsub\n") {
		t.Errorf("an unconverted layer should show the deleted files again (the trap this guards); got:\n%s", view)
	}
}

// unprivilegedView mounts an overlay of lower under layer/delta0 from a
// process in a user namespace mapped 0 -> testBase (as LXC does for a
// machine), over idmapped mounts of both, and lists the merged view.
func unprivilegedView(t *testing.T, tmp, lower, layer string) string {
	t.Helper()
	ns, err := NewUserNS(RangeMap(testBase))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	mnt := mountDir(t, tmp, "mnt-"+filepath.Base(layer))
	box, machine := mountDir(t, mnt, "box"), mountDir(t, mnt, "machine")
	if err := Mount(lower, box, ns, true); err != nil {
		t.Fatal(err)
	}
	defer Unmount(box)
	if err := Mount(layer, machine, ns, false); err != nil {
		t.Fatal(err)
	}
	defer Unmount(machine)
	merged := mountDir(t, mnt, "merged")
	script := fmt.Sprintf(`set -e
mkdir -p %[2]s/work
mount -t overlay overlay -o lowerdir=%[1]s,upperdir=%[2]s/delta0,workdir=%[2]s/work,userxattr %[3]s
cd %[3]s
echo d:; ls d; echo root:; ls; echo keep:; ls keep; echo x=$(cat keep/x)`, box, machine, merged)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: procMap(RangeMap(testBase).UIDs),
		GidMappings: procMap(RangeMap(testBase).GIDs),
		// Become the namespace's root (host id testBase), as a
		// container's init is; without it the process keeps host uid 0,
		// which the namespace does not map.
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged overlay: %v\n%s", err, out)
	}
	return string(out)
}

// TestConvertUpperKilled kills a conversion at many points and runs it
// again: the layer must end as one converted in one go.
func TestConvertUpperKilled(t *testing.T) {
	needRoot(t)
	// On a tmpfs of its own: a disk makes the copies slow, not the test.
	tmp := mountDir(t, t.TempDir(), "tmpfs")
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "size=256m"); err != nil {
		t.Fatal(err)
	}
	// A synthetic privileged layer: many opaque folders with origins.
	src := filepath.Join(tmp, "src")
	for i := range 1500 {
		d := filepath.Join(src, fmt.Sprintf("d%04d", i))
		os.MkdirAll(filepath.Join(d, "sub"), 0o755)
		os.WriteFile(filepath.Join(d, "f"), nil, 0o644)
		for p, kv := range map[string][2]string{
			d:                       {"trusted.overlay.opaque", "y"},
			filepath.Join(d, "f"):   {"trusted.overlay.origin", "\x00\xfb\x21\x00\x01"},
			filepath.Join(d, "sub"): {"trusted.overlay.impure", "y"},
		} {
			if err := unix.Lsetxattr(p, kv[0], []byte(kv[1]), 0); err != nil {
				t.Fatal(err)
			}
		}
		unix.Mknod(filepath.Join(d, "wh"), unix.S_IFCHR, 0)
	}
	ref := filepath.Join(tmp, "ref")
	run(t, "cp", "-a", src, ref)
	began := time.Now()
	if _, err := ConvertUpper(ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("one conversion: %v", time.Since(began))
	want := layerAttrs(t, ref)
	killed := 0
	for round := range 8 {
		layer := filepath.Join(tmp, fmt.Sprint("layer", round))
		run(t, "cp", "-a", src, layer)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), convertEnv+"="+layer)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(3+round*4) * time.Millisecond)
		cmd.Process.Signal(unix.SIGKILL)
		if cmd.Wait() != nil {
			if a := layerAttrs(t, layer); strings.Contains(a, "trusted.overlay.") && strings.Contains(a, "user.overlay.") {
				killed++
			}
		}
		if _, err := ConvertUpper(layer); err != nil {
			t.Fatal(err)
		}
		if got := layerAttrs(t, layer); got != want {
			t.Fatalf("round %d: killed and converted again differs from one conversion", round)
		}
		os.RemoveAll(layer)
	}
	t.Logf("%d of 8 conversions were killed half way", killed)
	if killed == 0 {
		t.Error("no conversion was killed half way: the test proved nothing")
	}
}

// convertEnv makes the test binary a conversion process for
// TestConvertUpperKilled (see TestMain).
const convertEnv = "DEN_IDMAP_TEST_CONVERT"
