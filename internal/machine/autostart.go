package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/hostcmd"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// noteAutostart records den.hcl's autostart setting of a created machine
// in its record and index entry when it changed, so that global-status
// shows it without reading den.hcl.
func (e *Env) noteAutostart(ctx context.Context, m *Machine, rec *Record) error {
	want := autostartOf(m)
	if rec == nil || rec.AutostartSetting == want {
		return nil
	}
	rec.AutostartSetting = want
	if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
		return err
	}
	ix, err := OpenIndex(ctx, e.Home)
	if err != nil {
		return err
	}
	defer ix.Close()
	return ix.Put(rec.indexEntry())
}

// AutostartOptions tune Autostart.
type AutostartOptions struct {
	// Stop halts the autostart machines (at shutdown), the highest
	// autostart_order first, instead of bringing them up.
	Stop bool
	// Timeout bounds each clean shutdown of Stop (then the machine is
	// killed).
	Timeout time.Duration
}

// AutostartRow is one machine Autostart acted on.
type AutostartRow struct {
	Project string `json:"project"`
	Machine string `json:"machine"`
	Order   int    `json:"order"`
	Error   string `json:"error,omitempty"`
}

// autostartSleep waits d or until ctx ends (a variable for tests).
var autostartSleep = func(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// autostartJob is one machine of an autostart run, with the Env it runs
// in: its own reporter (PROJECT/MACHINE) and caller (the den.hcl's owner).
type autostartJob struct {
	m   *Machine
	env *Env
}

// Autostart brings up every machine of this DEN_HOME that its project's
// den.hcl marks autostart = true (LXC's lxc.start.auto): the projects come
// from the index, and only machines that exist are started, never made.
// Machines of one autostart_order come up in parallel, orders from the
// lowest; after each order den waits the longest autostart_delay of its
// machines. Each up is a full one (port forwarders, provisioners that
// run always, triggers). With opts.Stop it halts them instead, the highest
// order first. Host triggers run as the owner of each project's den.hcl:
// no person asked for this run, and project code never runs as root for
// someone else. One machine's failure does not stop the others; every
// failure names its project and machine.
func (e *Env) Autostart(ctx context.Context, opts AutostartOptions) ([]AutostartRow, error) {
	jobs, errs := e.autostartJobs(ctx, opts.Stop)
	groups := map[int][]autostartJob{}
	for _, j := range jobs {
		groups[j.m.Config.AutostartOrder] = append(groups[j.m.Config.AutostartOrder], j)
	}
	orders := make([]int, 0, len(groups))
	for o := range groups {
		orders = append(orders, o)
	}
	sort.Ints(orders)
	if opts.Stop {
		slices.Reverse(orders)
	}
	rows := []AutostartRow{}
	for i, order := range orders {
		group := groups[order]
		failed := make([]error, len(group))
		var wg sync.WaitGroup
		for k, j := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				failed[k] = j.env.autostartOne(ctx, j.m, opts)
			}()
		}
		wg.Wait()
		for k, j := range group {
			row := AutostartRow{Project: j.m.Project.Dir, Machine: j.m.Name(), Order: order}
			if failed[k] != nil {
				err := fmt.Errorf("%s: %w", j.m.Project.Dir, named(j.m, failed[k]))
				row.Error = err.Error()
				errs = append(errs, err)
			}
			rows = append(rows, row)
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if opts.Stop || i == len(orders)-1 {
			continue
		}
		var wait time.Duration
		var who autostartJob
		for _, j := range group {
			if d := j.m.Config.AutostartDelay; d > wait {
				wait, who = d, j
			}
		}
		if wait > 0 {
			who.env.UI.Say(who.m.Name(), "Waiting %s (autostart_delay) before the machines of the next autostart_order...", wait)
			if err := autostartSleep(ctx, wait); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	return rows, joinErrors(errs)
}

// autostartOne brings one machine up (or halts it with opts.Stop) under
// its lock, with its triggers.
func (e *Env) autostartOne(ctx context.Context, m *Machine, opts AutostartOptions) error {
	what := "den autostart"
	if opts.Stop {
		what += " --stop"
	}
	lk, err := m.lock(ctx, what)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	if !opts.Stop {
		return e.around(ctx, m, "up", func() error { return e.upLocked(ctx, m, UpOptions{}) })
	}
	halt := func() error { return e.halt(ctx, m, false, opts.Timeout) }
	if !e.inState(ctx, m, provider.Running, provider.Frozen) {
		return halt()
	}
	return e.around(ctx, m, "halt", halt)
}

// autostartJobs finds the autostart machines of the projects in the index
// that exist (their container does), and records each one's setting in
// the index as den.hcl has it now. A project whose den.hcl cannot be read
// is an error for its machines; with stop, its machines that the index
// marks autostart are halted all the same (from .den/).
func (e *Env) autostartJobs(ctx context.Context, stop bool) ([]autostartJob, []error) {
	entries, err := ReadIndex(e.Home)
	if err != nil {
		return nil, []error{err}
	}
	byProject := map[string][]IndexEntry{}
	var projects []string
	for _, ie := range entries {
		if _, ok := byProject[ie.Project]; !ok {
			projects = append(projects, ie.Project)
		}
		byProject[ie.Project] = append(byProject[ie.Project], ie)
	}
	sort.Strings(projects)
	var jobs []autostartJob
	var errs []error
	var notes []IndexEntry // entries whose setting changed
	for _, dir := range projects {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue // gone: global-status --prune says so
		}
		ms, err := autostartMachines(dir, byProject[dir], stop)
		if err != nil {
			// The den.hcl's diagnostics name it; as text, so that a front
			// end shows every failure of the run, not only this one.
			errs = append(errs, errors.New(err.Error()))
		}
		if len(ms) == 0 {
			continue
		}
		env := e.WithReporter(prefixed{e.UI, filepath.Base(dir) + "/"})
		u, uerr := hostcmd.Lookup(fileOwner(ms[0].Project.File))
		if uerr != nil {
			uerr = fmt.Errorf("the owner of %s: %w", ms[0].Project.File, uerr)
		}
		env = env.WithCaller(Caller{User: u, UserErr: uerr, NoTriggers: e.caller.NoTriggers})
		for _, m := range ms {
			rec, _, st, err := e.current(ctx, m)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", dir, named(m, err)))
				continue
			}
			if rec == nil || st == provider.NotCreated {
				continue // never made, or only an address reserved
			}
			if !m.Orphan {
				if want := autostartOf(m); rec.AutostartSetting != want {
					rec.AutostartSetting = want
					writeJSON(m.State.Record(), rec, 0o600)
					notes = append(notes, rec.indexEntry())
				}
			}
			if m.Config.Autostart {
				jobs = append(jobs, autostartJob{m: m, env: env})
			}
		}
	}
	if len(notes) > 0 {
		if ix, err := OpenIndex(ctx, e.Home); err == nil {
			for _, ie := range notes {
				ix.Put(ie)
			}
			ix.Close()
		}
	}
	return jobs, errs
}

// autostartMachines lists the machines of the project in dir that the
// index names: from its den.hcl, or, when that cannot be read and stop is
// set, from .den/ with the index's autostart setting.
func autostartMachines(dir string, entries []IndexEntry, stop bool) ([]*Machine, error) {
	p, err := config.Load(filepath.Join(dir, config.FileName))
	if err == nil {
		var out []*Machine
		for _, c := range p.Machines {
			if slices.ContainsFunc(entries, func(ie IndexEntry) bool { return ie.Machine == c.Name && ie.Container == ContainerName(dir, c.Name) }) {
				out = append(out, New(p, c))
			}
		}
		return out, nil
	}
	if !stop {
		return nil, err
	}
	orphans, oerr := Orphans(&config.Project{File: filepath.Join(dir, config.FileName), Dir: dir})
	if oerr != nil {
		return nil, errors.Join(err, oerr)
	}
	var out []*Machine
	for _, m := range orphans {
		if slices.ContainsFunc(entries, func(ie IndexEntry) bool { return ie.Container == m.Container() && ie.Autostart }) {
			m.Config.Autostart = true
			out = append(out, m)
		}
	}
	return out, err
}

// fileOwner returns the uid and gid owning path (0, 0 when unknown).
func fileOwner(path string) (uint32, uint32) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return st.Uid, st.Gid
}

// prefixed is a Reporter that puts prefix before every machine name, so
// that machines of several projects (all "default") tell apart.
type prefixed struct {
	ui.Reporter
	prefix string
}

func (p prefixed) name(machine string) string {
	if machine == "" {
		return ""
	}
	return p.prefix + machine
}

func (p prefixed) Say(machine, format string, args ...any) {
	p.Reporter.Say(p.name(machine), format, args...)
}

func (p prefixed) Detail(machine, format string, args ...any) {
	p.Reporter.Detail(p.name(machine), format, args...)
}

func (p prefixed) Warn(machine, format string, args ...any) {
	p.Reporter.Warn(p.name(machine), format, args...)
}

func (p prefixed) Output(machine string, stderr bool) io.WriteCloser {
	return p.Reporter.Output(p.name(machine), stderr)
}

func (p prefixed) Progress(machine, what string, total int64) ui.Bar {
	return p.Reporter.Progress(p.name(machine), what, total)
}
