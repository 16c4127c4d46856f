package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// denAs runs the den binary in dir with the test DEN_HOME and env added
// to den's environment.
func denAs(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := denCmd(dir, args...)
	cmd.Env = append(cmd.Env, env...)
	return runCmd(t, cmd, strings.Join(env, " ")+" ")
}

// lines reports whether out holds each of want, in order, each on a line
// of its own (prefixed as den prints a machine's output).
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("output lacks %q (in this order: %q):\n%s", w, want, out)
			return
		}
		rest = rest[i+len(w):]
	}
}

const triggersE2E = `box = "debian/bookworm"

trigger "before" "up" {
  name = "host before up"
  run {
    inline = ["echo \"host-before-up uid=$(id -u) gid=$(id -g) machine=$DEN_MACHINE dir=$PWD home=$HOME secret=$${DEN_E2E_SECRET:-none}\""]
  }
}

trigger "after" "up" {
  name = "after up"
  run {
    inline = ["echo \"host-after-up address=$DEN_ADDRESS project=$DEN_PROJECT\""]
  }
  run_remote {
    inline = ["echo \"guest-after-up uid=$(id -u) hostname=$(hostname) greeting=$GREETING\"", "touch /var/tmp/den-trigger-ran"]
    env    = { GREETING = "hello" }
  }
}

trigger "before" "destroy" {
  name = "guest before destroy"
  run_remote {
    inline = ["test -e /var/tmp/den-trigger-ran && echo guest-before-destroy found-the-mark"]
  }
}

trigger "after" "destroy" {
  name = "host after destroy"
  run {
    inline = ["echo host-after-destroy $DEN_MACHINE"]
  }
}
`

// TestE2ETriggers: triggers before and after up and destroy, on the host
// (as the user who ran sudo, with a clean environment) and in the guest;
// a failing trigger stops its command with its exit status; --no-triggers
// skips them; a host script the machine can write is refused.
func TestE2ETriggers(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-triggers", triggersE2E)
	t.Cleanup(func() { denAs(t, dir, nil, "destroy", "-f", "--no-triggers") })
	// The host triggers run as nobody, who must reach the project folder.
	for d := dir; d != "/" && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	sudo := []string{"SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody", "DEN_E2E_SECRET=leaked"}

	r := denAs(t, dir, sudo, "up")
	if r.code != 0 {
		t.Fatalf("up: %d\n%s", r.code, r.err)
	}
	st := status(t, dir)
	inOrder(t, r.out,
		"==> default: Running trigger: host before up (before up)...",
		"    default: on the host, as nobody (uid 65534)",
		fmt.Sprintf("    default: host-before-up uid=65534 gid=65534 machine=default dir=%s home=/nonexistent secret=none\n", dir),
		"==> default: Creating machine from box",
		"==> default: Machine booted and ready!",
		"==> default: Running trigger: after up (after up)...",
		fmt.Sprintf("    default: host-after-up address=%s project=%s\n", st[0].Address, dir),
		"    default: in the guest",
		"    default: guest-after-up uid=0 hostname=test-triggers greeting=hello\n",
	)

	// --no-triggers: none runs, and den says so.
	r = denAs(t, dir, sudo, "up", "--no-triggers")
	if r.code != 0 || strings.Contains(r.out, "host-before-up") || strings.Contains(r.out, "guest-after-up") ||
		!strings.Contains(r.out, "Skipping trigger host before up (before up): triggers are off.") {
		t.Errorf("up --no-triggers: %d\n%s", r.code, r.out)
	}

	// A failing trigger stops halt, with its name and exit status.
	failing := triggersE2E + `
trigger "before" "halt" {
  name = "refuse"
  run {
    inline = ["echo refusing >&2", "exit 7"]
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}
	r = denAs(t, dir, sudo, "halt")
	if r.code != 7 || !strings.Contains(r.err, `machine "default": trigger "refuse" (before halt, on the host) failed with exit status 7`) || !strings.Contains(r.err, "    default: refusing") {
		t.Errorf("halt with a failing trigger: %d\n%s", r.code, r.err)
	}
	if st := status(t, dir); st[0].State != "running" {
		t.Errorf("the machine is %s after its before-halt trigger failed", st[0].State)
	}

	// A host script in the project, which the machine mounts read-write.
	if err := os.WriteFile(filepath.Join(dir, "notify.sh"), []byte("#!/bin/sh\necho notified\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	writable := triggersE2E + `
trigger "after" "provision" {
  run {
    path = "notify.sh"
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(writable), 0o644); err != nil {
		t.Fatal(err)
	}
	r = denAs(t, dir, sudo, "provision")
	if r.code != 1 || !strings.Contains(r.err, "den.hcl:37:12: error: Script a machine can write") || !strings.Contains(r.err, `"notify.sh" lies in the synced folder ".", which machine "default" mounts read-write at /den`) || strings.Contains(r.out, "notified") {
		t.Errorf("provision with a host script the machine can write: %d\n%s%s", r.code, r.out, r.err)
	}

	// Destroy: the guest trigger before, the host one after.
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(triggersE2E), 0o644); err != nil {
		t.Fatal(err)
	}
	r = denAs(t, dir, sudo, "destroy", "-f")
	if r.code != 0 {
		t.Fatalf("destroy: %d\n%s", r.code, r.err)
	}
	inOrder(t, r.out,
		"==> default: Running trigger: guest before destroy (before destroy)...",
		"    default: guest-before-destroy found-the-mark\n",
		"==> default: Destroying machine and its disk...",
		"==> default: Running trigger: host after destroy (after destroy)...",
		"    default: host-after-destroy default\n",
	)
	if st := status(t, dir); st[0].State != "not created" {
		t.Errorf("after destroy: %+v", st)
	}
}
