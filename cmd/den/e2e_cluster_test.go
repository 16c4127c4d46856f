package main

import (
	"strings"
	"testing"

	"github.com/den-dev/den/provider/lxd/lxdtest"
)

// TestE2ELXDCluster runs the LXD scenario on a cluster of two LXD daemons
// on this machine, each in its own network namespace (scripts/
// lxd-cluster.sh), with one machine on each member: den status names the
// members, and the machines reach each other by name across them. A
// target that is not a member is an error at its den.hcl line.
func TestE2ELXDCluster(t *testing.T) {
	needLXD(t)
	c := lxdtest.StartCluster(t)
	token, err := lxdtest.Token(c.Socket, "den-e2e")
	if err != nil {
		t.Fatal(err)
	}
	mustDen(t, t.TempDir(), "remote", "add", "cl", c.URL, "--token", token)
	t.Cleanup(func() { den(t, t.TempDir(), "", "remote", "remove", "cl") })

	t.Run("target not a member", func(t *testing.T) {
		dir := newProject(t, "test-bad-member", "box = \"debian/bookworm\"\nprovider = \"lxd\"\n\nlxd {\n  remote = \"cl\"\n  target = \"node9\"\n}\n")
		r := den(t, dir, "", "up")
		if r.code != 1 || !strings.Contains(r.err, "den.hcl:6:12: error: Unknown cluster member") || !strings.Contains(r.err, "node1, node2") {
			t.Errorf("up with target node9: exit %d, %q", r.code, r.err)
		}
	})

	t.Run("scenario", func(t *testing.T) {
		lxdScenario(t, lxdBackend{
			lxd:     `remote = "cl"`,
			targets: map[string]string{"web": `target = "node1"`, "db": `target = "node2"`},
			remote:  true,
			where:   "cl/",
			socket:  c.Socket,
		})
	})
}
