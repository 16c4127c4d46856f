package machine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// otherProject writes den.hcl into a second project folder of w and
// loads it.
func (w *world) otherProject(name, hcl string) *config.Project {
	w.t.Helper()
	dir := filepath.Join(w.t.TempDir(), name)
	must(w.t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, config.FileName)
	must(w.t, os.WriteFile(path, []byte(hcl), 0o644))
	p, err := config.Load(path)
	must(w.t, err)
	return p
}

// firstIndex is the position of the first event of machine containing
// text, or -1.
func (w *world) firstIndex(machine, text string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.IndexFunc(w.events, func(e ui.Event) bool { return e.Machine == machine && strings.Contains(e.Text, text) })
}

// sleeps records autostart's waits instead of waiting.
func recordSleeps(t *testing.T) *[]time.Duration {
	var mu sync.Mutex
	var got []time.Duration
	old := autostartSleep
	autostartSleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, d)
		return nil
	}
	t.Cleanup(func() { autostartSleep = old })
	return &got
}

const autostartApp = `
box = "test/box"
machine "db" {
  autostart       = true
  autostart_delay = 2
}
machine "web" {
  autostart       = true
  autostart_order = 1
  trigger "after" "up" {
    run {
      inline = ["echo web is up as $(id -u)"]
    }
  }
}
machine "tool" {}
machine "fresh" {
  autostart = true
}
`

// TestAutostart: every existing autostart machine of the home comes up,
// orders from the lowest, one order in parallel, the delay between
// orders; the others stay as they are and none is made. Stop halts them,
// the highest order first.
func TestAutostart(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	sleeps := recordSleeps(t)
	ctx := context.Background()
	app := w.project(autostartApp)
	other := w.otherProject("other", "box = \"test/box\"\nautostart = true\n")
	appMs := w.machines(app, "db", "web", "tool")
	otherMs := w.machines(other)
	must(t, w.env.Up(ctx, appMs, UpOptions{Parallel: true}))
	must(t, w.env.Up(ctx, otherMs, UpOptions{}))
	// The index knows which machines autostart, for global-status.
	all, err := w.env.GlobalStatus(ctx)
	must(t, err)
	autos := map[string]bool{}
	for _, g := range all {
		autos[filepath.Base(g.Directory)+"/"+g.Name] = g.Autostart
	}
	if !autos["app/db"] || !autos["app/web"] || autos["app/tool"] || !autos["other/default"] || autos["app/fresh"] {
		t.Errorf("global-status autostart flags: %v", autos)
	}
	// A host reboot: everything stops.
	must(t, w.env.Halt(ctx, append(slices.Clone(appMs), otherMs...), true, 0))
	w.clearEvents()

	rows, err := w.env.Autostart(ctx, AutostartOptions{})
	must(t, err)
	var got []string
	for _, r := range rows {
		got = append(got, filepath.Base(r.Project)+"/"+r.Machine)
	}
	if strings.Join(got, " ") != "app/db other/default app/web" {
		t.Errorf("autostart acted on %v", got)
	}
	for _, m := range []*Machine{appMs[0], appMs[1], otherMs[0]} {
		if w.state(m) != provider.Running {
			t.Errorf("%s is %s after autostart", m.Name(), w.state(m))
		}
	}
	if w.state(appMs[2]) != provider.Stopped {
		t.Error("autostart started a machine not marked autostart")
	}
	if fresh := New(app, app.Machines[3]); w.state(fresh) != provider.NotCreated {
		t.Error("autostart made a machine that did not exist")
	}
	// Order 0 (db, other's default) is up before order 1 (web) starts,
	// after db's autostart_delay.
	webStart := w.firstIndex("app/web", "Starting machine...")
	for _, m := range []string{"app/db", "other/default"} {
		if i := w.firstIndex(m, "Machine booted and ready!"); i < 0 || webStart < 0 || i > webStart {
			t.Errorf("%s was ready at event %d, web started at %d", m, i, webStart)
		}
	}
	if i := w.firstIndex("app/db", "Waiting 2s (autostart_delay)"); i < 0 || i > webStart {
		t.Errorf("no wait before the next order: %q", w.texts("app/db"))
	}
	if len(*sleeps) != 1 || (*sleeps)[0] != 2*time.Second {
		t.Errorf("autostart waited %v, want [2s]", *sleeps)
	}
	// Triggers run, as the den.hcl's owner.
	if !w.said("app/web", "web is up as "+strconv.Itoa(os.Geteuid())) {
		t.Errorf("web's after-up trigger: %q", w.texts("app/web"))
	}

	// At shutdown: the highest order first.
	must(t, w.env.Up(ctx, appMs[2:], UpOptions{})) // tool runs, by hand
	w.clearEvents()
	_, err = w.env.Autostart(ctx, AutostartOptions{Stop: true, Timeout: time.Second})
	must(t, err)
	for _, m := range []*Machine{appMs[0], appMs[1], otherMs[0]} {
		if w.state(m) != provider.Stopped {
			t.Errorf("%s is %s after autostart --stop", m.Name(), w.state(m))
		}
	}
	if w.state(appMs[2]) != provider.Running {
		t.Error("autostart --stop halted a machine not marked autostart")
	}
	if web, db := w.firstIndex("app/web", "shutdown"), w.firstIndex("app/db", "shutdown"); web < 0 || db < 0 || web > db {
		t.Errorf("stop order: web at %d, db at %d", web, db)
	}
}

// TestAutostartFailures: one machine's failure and a project whose den.hcl
// does not parse are reported with their project and machine; the other
// machines come up, the later orders too.
func TestAutostartFailures(t *testing.T) {
	w := newWorld(t)
	w.withSelf()
	recordSleeps(t)
	ctx := context.Background()
	app := w.project(autostartApp)
	broken := w.otherProject("broken", "box = \"test/box\"\nautostart = true\n")
	appMs := w.machines(app, "db", "web")
	must(t, w.env.Up(ctx, appMs, UpOptions{Parallel: true}))
	must(t, w.env.Up(ctx, w.machines(broken), UpOptions{}))
	must(t, w.env.Halt(ctx, appMs, true, 0))
	must(t, os.WriteFile(broken.File, []byte("box = \n"), 0o644))
	w.prov.Fail = map[string]error{"Start": errors.New("no memory left")}

	rows, err := w.env.Autostart(ctx, AutostartOptions{})
	if err == nil {
		t.Fatal("autostart with a failing machine and a broken den.hcl succeeded")
	}
	for _, want := range []string{w.dir + `: machine "db": no memory left`, broken.File + ":1:7: Invalid expression"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if w.state(appMs[1]) != provider.Running {
		t.Error("web (a later order) did not come up after db failed")
	}
	if len(rows) != 2 || rows[0].Machine != "db" || rows[0].Error == "" || rows[1].Machine != "web" || rows[1].Error != "" {
		t.Errorf("rows: %+v", rows)
	}
	// At shutdown the broken project's machine is halted from .den/.
	_, err = w.env.Autostart(ctx, AutostartOptions{Stop: true})
	if err == nil || errdefs.KindOf(err) == errdefs.Canceled {
		t.Errorf("stop with a broken den.hcl: %v", err)
	}
	if st := w.state(w.machines(broken)[0]); st != provider.Stopped {
		t.Errorf("the broken project's autostart machine is %s after --stop", st)
	}
}
