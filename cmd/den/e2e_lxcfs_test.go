package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/testenv"
)

// lxcfsRuns reports whether the host's lxcfs is mounted and answering.
func lxcfsRuns() bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil || !strings.Contains(string(b), " /var/lib/lxcfs ") || !strings.Contains(string(b), " - fuse.lxcfs ") {
		return false
	}
	_, err = os.Stat("/var/lib/lxcfs/proc/meminfo")
	return err == nil
}

// TestE2ELXCFS checks that a machine sees its own limits through lxcfs, as
// in LXD: free shows its memory limit, /proc/cpuinfo and nproc its CPUs,
// and den says nothing about lxcfs when it runs.
func TestE2ELXCFS(t *testing.T) {
	needE2E(t)
	if !lxcfsRuns() {
		testenv.Skip(t, "lxcfs does not run on this host (scripts/host-setup.sh starts it)")
	}
	dir := newProject(t, "test-lxcfs", `box = "debian/bookworm"
memory = "512M"
cpus = 1
`)
	r := den(t, dir, "", "up")
	if r.code != 0 {
		t.Fatalf("up failed: %s", r.err)
	}
	if strings.Contains(r.err, "lxcfs") {
		t.Errorf("up warns about lxcfs while it runs:\n%s", r.err)
	}
	hostUp := uptime(t, mustRead(t, "/proc/uptime"))
	out := mustDen(t, dir, "ssh", "-c", `free -m | awk '/^Mem:/ { print $2 }'; nproc; grep -c ^processor /proc/cpuinfo; findmnt -n -o FSTYPE /proc/meminfo; cat /proc/uptime`)
	// free rounds MemTotal (kB) down to MiB: 512 for a 512M limit.
	got := strings.SplitAfterN(out, "\n", 5)
	if want := "512\n1\n1\nfuse.lxcfs\n"; len(got) != 5 || strings.Join(got[:4], "") != want {
		t.Fatalf("in a machine with memory = 512M and cpus = 1: free's total, nproc, cpuinfo's processors, /proc/meminfo's filesystem =\n%q, want\n%q", out, want)
	}
	// The uptime is the machine's, read after the host's: without lxcfs it
	// would be the host's, and larger.
	if guestUp := uptime(t, got[4]); guestUp >= hostUp {
		t.Errorf("uptime in the machine %.2f s, the host's %.2f s read before it: not the machine's own", guestUp, hostUp)
	}
	// up of the running machine: still nothing to say.
	if r := den(t, dir, "", "up"); r.code != 0 || strings.Contains(r.err, "lxcfs") {
		t.Errorf("up of the running machine: %d\n%s", r.code, r.err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// uptime parses the first number of a /proc/uptime line.
func uptime(t *testing.T, line string) float64 {
	t.Helper()
	f := strings.Fields(line)
	if len(f) == 0 {
		t.Fatalf("uptime line %q", line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("uptime line %q: %v", line, err)
	}
	return v
}
