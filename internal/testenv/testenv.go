// Package testenv gates den's end-to-end tests: they need root, LXC, the
// bridge and a test box (DEN_TEST_BOX, which scripts/test.sh builds and
// caches). Without them a test skips, except under CI=true, where a skip
// is a failure: in CI every end-to-end test must run for real.
package testenv

import (
	"net"
	"os"
	"testing"
	"time"
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

// Skip skips t (fails it under CI=true) with why.
func Skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("end-to-end test cannot run in CI: %s", why)
	}
	t.Skipf("end-to-end test skipped: %s", why)
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
