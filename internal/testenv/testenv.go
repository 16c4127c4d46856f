// Package testenv gates den's end-to-end tests: they need root, LXC, the
// bridge and a test box (DEN_TEST_BOX, which scripts/test.sh builds and
// caches). Without them a test skips, except under CI=true, where a skip
// is a failure: in CI every end-to-end test must run for real.
package testenv

import (
	"os"
	"testing"
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
