//go:build linux

package idmap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestMain also makes the test binary a conversion process when
// TestConvertUpperKilled starts it, and removes the box the boot tests
// unpacked.
func TestMain(m *testing.M) {
	if dir := os.Getenv(convertEnv); dir != "" {
		if _, err := ConvertUpper(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// needRoot skips a test that needs root, except under CI=true, where it
// must run.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root; CI=true does not allow skipping")
	}
	testenv.Skip(t, "needs root")
}

// testBase is a host id far from any range a real machine of this host
// uses (den's block starts higher), so tests never touch a machine's ids.
const testBase = 1 << 24

// openFDs lists this process's open file descriptors.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fds[e.Name()] = target
	}
	return fds
}

// children lists the pids of this process's children (of every thread).
func children(t *testing.T) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
	}
	return pids
}

// mountDir makes a folder for a test mount and unmounts whatever is on it
// when the test ends, before t.TempDir's removal runs.
func mountDir(t *testing.T, parent, name string) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 4 {
			if unix.Unmount(dir, unix.MNT_DETACH) != nil {
				break
			}
		}
	})
	return dir
}

func owner(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// runInNS runs a shell script in the user namespace ns (through nsenter,
// which joins it as fd 3) and returns its combined output.
func runInNS(ns *os.File, script string) (string, error) {
	cmd := exec.Command("nsenter", "--user=/proc/self/fd/3", "--preserve-credentials", "--", "sh", "-c", script)
	cmd.ExtraFiles = []*os.File{ns}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// openTempDir is t.TempDir, made traversable for other users (t.TempDir's
// folders are 0700), as the mapped ids a test acts as must reach it.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mustOwnerMap maps uid:gid on disk to the same ids in the guest.
func mustOwnerMap(t testing.TB, base, uid, gid uint32) Map {
	t.Helper()
	m, err := OwnerMap(base, Owner{UID: uid, GID: gid, GuestUID: uid, GuestGID: gid})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
