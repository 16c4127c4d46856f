package machine

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/layout"
)

// LookupOptions say which machines a command may act on.
type LookupOptions struct {
	// Orphans includes machines .den/ records that den.hcl no longer
	// names: in the machines a command acts on without names, and among
	// the names it takes.
	Orphans bool
	// FromState lets the command work from .den/ alone when den.hcl does
	// not parse (or is gone): every recorded machine, as an orphan.
	FromState bool
}

// LoadProject finds the project of dir (den.hcl in dir or its nearest
// parent) and decodes it. With fromState, a den.hcl that does not parse
// (or a .den/ without den.hcl) gives a project made from .den/ alone,
// and warn is told why.
func LoadProject(dir string, fromState bool, warn func(error)) (*config.Project, error) {
	path, err := config.Find(dir)
	if err != nil {
		if fromState {
			if p := stateProject(dir); p != nil {
				warn(err)
				return p, nil
			}
		}
		return nil, err
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			path = rel
		}
	}
	p, err := config.Load(path)
	if err != nil && fromState {
		var diag *config.DiagError
		if abs, aerr := filepath.Abs(path); errors.As(err, &diag) && aerr == nil {
			warn(err)
			return &config.Project{File: abs, Dir: filepath.Dir(abs)}, nil
		}
	}
	return p, err
}

// stateProject is the project of the nearest folder from dir that has a
// .den/, with no machines of its own (all of them come from .den/), or nil.
func stateProject(dir string) *config.Project {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	for d := abs; ; d = filepath.Dir(d) {
		if fi, err := os.Lstat(filepath.Join(d, layout.StateDirName)); err == nil && fi.IsDir() {
			return &config.Project{File: filepath.Join(d, config.FileName), Dir: d}
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// Orphans returns the machines .den/ records that p does not name.
func Orphans(p *config.Project) ([]*Machine, error) {
	entries, err := os.ReadDir(layout.ProjectState(p.Dir).Path())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Machine
	for _, en := range entries {
		name := en.Name()
		if !en.IsDir() || !machineNameRE.MatchString(name) {
			continue
		}
		if _, ok := p.Machine(name); ok {
			continue
		}
		st := layout.ProjectState(p.Dir).Machine(name)
		rec, err := readRecord(st, p.Dir, name)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			continue
		}
		c := &config.Machine{Name: name, Box: rec.Box, Bridge: rec.Bridge, Network: config.NetworkBridge, Hostname: name,
			Autostart: rec.Autostart, AutostartOrder: rec.AutostartOrder, AutostartDelay: time.Duration(rec.AutostartDelay) * time.Second}
		if rec.Network == config.NetworkProject {
			c.Network = config.NetworkProject
		}
		out = append(out, &Machine{Project: p, Config: c, State: st, Orphan: true})
	}
	return out, nil
}

var (
	machineNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	globalIDRE    = regexp.MustCompile(`^[0-9a-f]{7}$`)
)

// Lookup returns the machines a command run in dir acts on: with no
// names, the project's machines (and its orphans, with opts.Orphans); else
// each name, a machine of the project or a global-status id of any
// machine of this DEN_HOME (as in Vagrant, from anywhere). An unknown name
// is an errdefs.NotFound error listing the project's machines.
func (e *Env) Lookup(dir string, names []string, opts LookupOptions) ([]*Machine, error) {
	warn := func(err error) {
		e.UI.Warn("", "%v\nworking from the machines recorded in .den/ (status, halt and destroy work; fix den.hcl for the rest)", firstLine(err))
	}
	p, perr := LoadProject(dir, opts.FromState, warn)
	if len(names) == 0 {
		if perr != nil {
			return nil, perr
		}
		return projectMachines(p, opts.Orphans)
	}
	var out []*Machine
	add := func(m *Machine) {
		if !slices.ContainsFunc(out, func(x *Machine) bool { return x.State == m.State }) {
			out = append(out, m)
		}
	}
	for _, name := range names {
		if p != nil {
			all, err := projectMachines(p, true)
			if err != nil {
				return nil, err
			}
			if i := slices.IndexFunc(all, func(m *Machine) bool { return m.Name() == name }); i >= 0 {
				m := all[i]
				if m.Orphan && !opts.Orphans {
					return nil, orphaned(m)
				}
				add(m)
				continue
			}
		}
		if globalIDRE.MatchString(name) {
			m, err := e.byGlobalID(name, opts, warn)
			if err != nil {
				return nil, err
			}
			if m != nil {
				add(m)
				continue
			}
		}
		if perr != nil {
			return nil, perr
		}
		return nil, errdefs.Newf(errdefs.NotFound, "no machine %q in %s (machines: %s; or a global-status id)", name, p.File, MachineNames(p))
	}
	return out, nil
}

// byGlobalID finds the machine whose global-status id is id, or nil.
func (e *Env) byGlobalID(id string, opts LookupOptions, warn func(error)) (*Machine, error) {
	entries, err := ReadIndex(e.Home)
	if err != nil {
		return nil, err
	}
	for _, ie := range entries {
		if GlobalID(ie.Container) != id {
			continue
		}
		p, err := LoadProject(ie.Project, opts.FromState, warn)
		if err != nil {
			return nil, err
		}
		all, err := projectMachines(p, true)
		if err != nil {
			return nil, err
		}
		for _, m := range all {
			if m.Name() == ie.Machine {
				if m.Orphan && !opts.Orphans {
					return nil, orphaned(m)
				}
				return m, nil
			}
		}
		return nil, errdefs.Newf(errdefs.NotFound, "global-status id %s is machine %q of %s, which has no record of it any more ('den global-status --prune' drops it)", id, ie.Machine, ie.Project)
	}
	return nil, nil
}

// projectMachines lists p's machines, then its orphans when orphans is set.
func projectMachines(p *config.Project, orphans bool) ([]*Machine, error) {
	out, err := Select(p, nil)
	if err != nil || !orphans {
		return out, err
	}
	os, err := Orphans(p)
	return append(out, os...), err
}

// firstLine is err's message up to its first line break.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}
