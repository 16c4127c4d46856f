package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/hostcmd"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// withSelf lets w's operations run host triggers as the test's own user.
func (w *world) withSelf() {
	w.t.Helper()
	u, err := hostcmd.Current()
	must(w.t, err)
	w.env = w.env.WithCaller(Caller{User: u})
}

// texts lists machine's step and output lines, in order.
func (w *world) texts(machine string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, e := range w.events {
		if e.Machine == machine && e.Kind != ui.EventProgress {
			out = append(out, e.Text)
		}
	}
	return out
}

// inOrder checks that machine reported lines containing want, in that
// order (other lines between them).
func (w *world) inOrder(machine string, want ...string) {
	w.t.Helper()
	got := w.texts(machine)
	i := 0
	for _, line := range got {
		if i < len(want) && strings.Contains(line, want[i]) {
			i++
		}
	}
	if i < len(want) {
		w.t.Errorf("%s did not report %q (after %q) in order; it reported:\n  %s", machine, want[i], want[:i], strings.Join(got, "\n  "))
	}
}

// clearEvents forgets what was reported so far.
func (w *world) clearEvents() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = nil
}

const triggersHCL = `
box = "test/box"

provision "shell" {
  inline = ["echo provisioning"]
}

trigger "before" "up" {
  name = "host before up"
  run {
    inline = ["echo \"host before up: $DEN_MACHINE $PWD $GREETING\""]
    env    = { GREETING = "hi" }
  }
}

trigger "after" "up" {
  name = "after up"
  run {
    inline = ["echo \"host after up: $DEN_MACHINE $DEN_ADDRESS $DEN_PROJECT\""]
  }
  run_remote {
    inline = ["echo guest after up"]
  }
}

trigger "before" "destroy" {
  run_remote {
    inline = ["echo guest before destroy"]
  }
}

trigger "after" "destroy" {
  run {
    inline = ["echo host after destroy: $DEN_MACHINE"]
  }
}
`

// TestTriggersRunAroundTheirCommand: before triggers run once the lock is
// held and before the command, after ones once it succeeded; run on the
// host (in the project folder, with DEN_* set), run_remote in the guest.
func TestTriggersRunAroundTheirCommand(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	p := w.project(triggersHCL)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	rec, err := ms[0].Record()
	must(t, err)
	w.inOrder("default",
		"Running trigger: host before up (before up)...",
		"on the host, as ",
		"host before up: default "+w.dir+" hi",
		"Creating machine from box",
		"Running provisioner: shell-1",
		"provisioning",
		"Running trigger: after up (after up)...",
		fmt.Sprintf("host after up: default %s %s", rec.IP(), w.dir),
		"in the guest",
		"guest after up",
	)
	w.clearEvents()
	must(t, w.env.Destroy(ctx, ms))
	w.inOrder("default",
		"Running trigger: before-destroy-1 (before destroy)...",
		"guest before destroy",
		"Destroying machine",
		"Running trigger: after-destroy-1 (after destroy)...",
		"host after destroy: default",
	)
	// A destroy that finds nothing to destroy runs no trigger.
	w.clearEvents()
	must(t, w.env.Destroy(ctx, ms))
	if w.said("default", "Running trigger") {
		t.Errorf("destroy of a machine that is not created ran triggers: %q", w.texts("default"))
	}
}

// TestEveryCommandFiresItsTriggers: halt, reload, provision, suspend,
// resume and the snapshot commands run their triggers; halt of a stopped
// machine has nothing to do and runs none.
func TestEveryCommandFiresItsTriggers(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	var hcl strings.Builder
	hcl.WriteString("box = \"test/box\"\n")
	for _, cmd := range []string{"halt", "reload", "provision", "suspend", "resume", "snapshot"} {
		for _, when := range []string{"before", "after"} {
			fmt.Fprintf(&hcl, "trigger %q %q {\n  run {\n    inline = [\"echo fired %s %s\"]\n  }\n}\n", when, cmd, when, cmd)
		}
	}
	p := w.project(hcl.String())
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	steps := []struct {
		cmd string
		run func() error
	}{
		{"provision", func() error { return w.env.Provision(ctx, ms, ProvisionOptions{Force: true}) }},
		{"reload", func() error { return w.env.Reload(ctx, ms, UpOptions{}, time.Second) }},
		{"suspend", func() error { return w.env.Suspend(ctx, ms) }},
		{"resume", func() error { return w.env.Resume(ctx, ms) }},
		{"snapshot", func() error { return w.env.SnapshotSave(ctx, ms, "s", false) }},
		{"snapshot", func() error { return w.env.SnapshotRestore(ctx, ms, "s", RestoreOptions{}) }},
		{"snapshot", func() error { return w.env.SnapshotDelete(ctx, ms, "s") }},
		{"halt", func() error { return w.env.Halt(ctx, ms, false, time.Second) }},
	}
	for _, s := range steps {
		w.clearEvents()
		must(t, s.run())
		w.inOrder("default", "fired before "+s.cmd, "fired after "+s.cmd)
		for _, line := range w.texts("default") {
			if strings.HasPrefix(line, "fired ") && !strings.HasSuffix(line, " "+s.cmd) {
				t.Errorf("%s ran another command's trigger: %q", s.cmd, line)
			}
		}
	}
	// Nothing to do: no triggers.
	w.clearEvents()
	must(t, w.env.Halt(ctx, ms, false, time.Second))
	must(t, w.env.Suspend(ctx, ms))
	must(t, w.env.Resume(ctx, ms))
	if w.said("default", "Running trigger") {
		t.Errorf("commands with nothing to do ran triggers: %q", w.texts("default"))
	}
}

// TestFailingTrigger: a failing trigger stops its command with a typed
// error naming it and its exit status, unless on_error = "continue"; a
// failing after trigger leaves what the command did.
func TestFailingTrigger(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	p := w.project(`
box = "test/box"
trigger "before" "up" {
  name = "vpn"
  run {
    inline = ["echo checking", "exit 3", "echo never"]
  }
}
`)
	ctx := context.Background()
	ms := w.machines(p)
	err := w.env.Up(ctx, ms, UpOptions{})
	var te *TriggerError
	if !errors.As(err, &te) || te.Status != 3 || te.Trigger != "vpn" || te.Guest || errdefs.KindOf(err) != errdefs.TriggerFailed || errdefs.MachineOf(err) != "default" {
		t.Fatalf("up with a failing trigger: %v (kind %q)", err, errdefs.KindOf(err))
	}
	if want := `machine "default": trigger "vpn" (before up, on the host) failed with exit status 3`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if w.state(ms[0]) != provider.NotCreated {
		t.Error("the machine was made although its before trigger failed")
	}
	if w.said("default", "never") {
		t.Error("inline commands went on after a failing one (sh -e)")
	}

	// on_error = "continue": reported, and up goes on.
	p = w.project(`
box = "test/box"
trigger "before" "up" {
  name     = "vpn"
  on_error = "continue"
  run {
    inline = ["exit 4"]
  }
}
trigger "after" "up" {
  name = "guest check"
  run_remote {
    inline = ["exit 5"]
  }
}
`)
	ms = w.machines(p)
	err = w.env.Up(ctx, ms, UpOptions{})
	if !errors.As(err, &te) || te.Status != 5 || !te.Guest || te.Trigger != "guest check" {
		t.Fatalf("up with a failing guest trigger: %v", err)
	}
	if !w.said("default", `trigger "vpn" (before up, on the host) failed with exit status 4; going on (on_error = "continue")`) {
		t.Errorf("the continued failure was not reported: %q", w.texts("default"))
	}
	if w.state(ms[0]) != provider.Running {
		t.Error("a failing after trigger undid the up")
	}
}

// TestGuestTriggerNeedsARunningMachine: run_remote on a machine that is
// not running is an error naming its state, or a warning with on_error =
// "continue".
func TestGuestTriggerNeedsARunningMachine(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	hcl := `
box = "test/box"
trigger "before" "up" {
  name = "warm cache"
  run_remote {
    inline = ["echo warm"]
  }
  %s
}
`
	ctx := context.Background()
	ms := w.machines(w.project(fmt.Sprintf(hcl, "")))
	err := w.env.Up(ctx, ms, UpOptions{})
	if errdefs.KindOf(err) != errdefs.NotRunning || !strings.Contains(err.Error(), `trigger "warm cache" runs in the guest, but machine "default" is not created`) {
		t.Fatalf("before up in the guest of a machine not made: %v", err)
	}
	ms = w.machines(w.project(fmt.Sprintf(hcl, `on_error = "continue"`)))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	// Running now: the guest part runs.
	w.clearEvents()
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	w.inOrder("default", "Running trigger: warm cache", "warm", "Machine is already running.")
}

// TestNoTriggers: a caller that turns triggers off runs none, and says so.
func TestNoTriggers(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	p := w.project(triggersHCL)
	ctx := context.Background()
	ms := w.machines(p)
	off := w.env.WithCaller(Caller{NoTriggers: true})
	must(t, off.Up(ctx, ms, UpOptions{}))
	if w.said("default", "Running trigger") || w.said("default", "host before up:") {
		t.Errorf("triggers ran with triggers off: %q", w.texts("default"))
	}
	if !w.said("default", "Skipping trigger host before up (before up): triggers are off.") {
		t.Errorf("up did not say it skipped the triggers: %q", w.texts("default"))
	}
	must(t, off.Destroy(ctx, ms))
}

// TestHostTriggerNeedsACaller: an operation whose caller names no user
// runs no project code on the host.
func TestHostTriggerNeedsACaller(t *testing.T) {
	w := newWorld(t)
	p := w.project(triggersHCL)
	err := w.env.Up(context.Background(), w.machines(p), UpOptions{})
	if errdefs.KindOf(err) != errdefs.Invalid || !strings.Contains(err.Error(), "names no host user") {
		t.Errorf("up without a caller: %v", err)
	}
	// A user that could not be looked up is the error of the host trigger
	// alone, with its reason.
	lost := w.env.WithCaller(Caller{UserErr: errors.New("no account with uid 4242")})
	err = lost.Up(context.Background(), w.machines(p), UpOptions{})
	if errdefs.KindOf(err) != errdefs.Invalid || !strings.Contains(err.Error(), `trigger "host before up" runs on the host, but den cannot tell as whom: no account with uid 4242`) {
		t.Errorf("up with a user den could not look up: %v", err)
	}
	q := w.project("box = \"test/box\"\n")
	must(t, lost.Up(context.Background(), w.machines(q), UpOptions{}))
}

// TestTriggerMachines: a top-level trigger with machines runs for those
// only, and each machine's triggers see its own name.
func TestTriggerMachines(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	p := w.project(`
box = "test/box"
trigger "after" "up" {
  run {
    inline = ["echo all: $DEN_MACHINE"]
  }
}
trigger "after" "up" {
  run {
    inline = ["echo db only: $DEN_MACHINE"]
  }
  machines = ["db"]
}
machine "web" {}
machine "db" {}
`)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{Parallel: true}))
	w.inOrder("web", "all: web")
	w.inOrder("db", "all: db", "db only: db")
	if w.said("web", "db only") {
		t.Error("a trigger for db ran for web")
	}
	must(t, w.env.Destroy(ctx, ms))
}

// TestHostScriptCheckedAgain: a host script den.hcl named safely is
// refused when, by the time it runs, it is reached through a folder a
// machine can write.
func TestHostScriptCheckedAgain(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	safe := filepath.Join(t.TempDir(), "bin")
	writeFile(t, filepath.Join(safe, "notify.sh"), "#!/bin/sh\necho notified \"$1\"\n", 0o644)
	p := w.project(fmt.Sprintf(`
box = "test/box"
trigger "after" "up" {
  run {
    path = %q
    args = ["up"]
  }
}
`, filepath.Join(safe, "notify.sh")))
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if !w.said("default", "notified up") {
		t.Fatalf("the script did not run: %q", w.texts("default"))
	}
	// The folder becomes a link into the project, which the machine mounts
	// read-write.
	writeFile(t, filepath.Join(w.dir, "scripts", "notify.sh"), "#!/bin/sh\necho pwned\n", 0o644)
	must(t, os.RemoveAll(safe))
	must(t, os.Symlink(filepath.Join(w.dir, "scripts"), safe))
	err := w.env.Up(ctx, ms, UpOptions{})
	if errdefs.KindOf(err) != errdefs.Invalid || !strings.Contains(err.Error(), "den.hcl:5:12") || !strings.Contains(err.Error(), "leads through the symlink") {
		t.Errorf("up with the script now writable by the machine: %v", err)
	}
	if w.said("default", "pwned") {
		t.Error("den ran a script the machine could write")
	}
}
