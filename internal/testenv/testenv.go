// Package testenv gates den's end-to-end tests: they need root, LXC, the
// bridge and a test box (DEN_TEST_BOX, which scripts/test.sh builds and
// caches). Without them a test skips, except under CI=true, where a skip
// is a failure: in CI every end-to-end test must run for real.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Reason says why end-to-end tests cannot run here, or "".
func Reason() string {
	switch {
	case os.Geteuid() != 0:
		return "not root"
	case os.Getenv("DEN_TEST_BOX") == "":
		return "DEN_TEST_BOX is not set (scripts/test.sh sets it)"
	}
	return ""
}

// Skip skips t (fails it under CI=true) with why: every test whose
// environment is missing goes through it, unit tests too.
func Skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("test cannot run in CI (CI=true: a skip is a failure): %s", why)
	}
	t.Skipf("skipped: %s", why)
}

// Box returns the test box file, or skips t (fails it in CI) when an
// end-to-end test cannot run.
func Box(t testing.TB) string {
	t.Helper()
	if why := Reason(); why != "" {
		Skip(t, why)
	}
	return os.Getenv("DEN_TEST_BOX")
}

// Btrfs makes a btrfs filesystem of size bytes (a sparse image file
// beside the test's temporary files, on a loop device) and mounts it for
// the test, or skips t (fails it in CI) when it cannot: it needs root, a
// loop device and mkfs.btrfs (btrfs-progs, which scripts/host-setup.sh
// installs). Everything is unmounted and removed when the test ends.
func Btrfs(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "btrfs: not root")
	}
	mkfs, err := exec.LookPath("mkfs.btrfs")
	if err != nil {
		if mkfs, err = exec.LookPath("/usr/sbin/mkfs.btrfs"); err != nil {
			Skip(t, "btrfs: mkfs.btrfs is not installed (apt-get install btrfs-progs)")
		}
	}
	dir, err := os.MkdirTemp("/var/tmp", "den-btrfs-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	image, mnt := filepath.Join(dir, "image"), filepath.Join(dir, "mnt")
	var loop string
	t.Cleanup(func() {
		if loop != "" {
			for i := 0; ; i++ {
				err := unix.Unmount(mnt, 0)
				if err == nil || errors.Is(err, unix.EINVAL) || i == 50 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			exec.Command("losetup", "-d", loop).Run()
		}
		os.Remove(image)
		os.Remove(mnt)
		os.Remove(dir)
	})
	f, err := os.Create(image)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", image).CombinedOutput()
	if err != nil {
		Skip(t, fmt.Sprintf("btrfs: no loop device: %v %s", err, out))
	}
	loop = strings.TrimSpace(string(out))
	if err := os.Mkdir(mnt, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(loop, mnt, "btrfs", 0, ""); err != nil {
		t.Fatalf("mount %s (btrfs) on %s: %v", loop, mnt, err)
	}
	return mnt
}

// LXDSocket is where this host's LXD answers (scripts/lxd-setup.sh
// starts it).
const LXDSocket = "/var/lib/lxd/unix.socket"

// LXDReason says why LXD tests cannot run here, or "".
func LXDReason() string {
	if why := Reason(); why != "" {
		return why
	}
	c, err := net.DialTimeout("unix", LXDSocket, time.Second)
	if err != nil {
		return "this host's LXD does not answer on " + LXDSocket + " (run scripts/lxd-setup.sh)"
	}
	c.Close()
	return ""
}

// LXD returns the test box file, or skips t (fails it in CI) when LXD
// tests cannot run: they need what Box needs and this host's LXD.
func LXD(t testing.TB) string {
	t.Helper()
	if why := LXDReason(); why != "" {
		Skip(t, why)
	}
	return os.Getenv("DEN_TEST_BOX")
}
