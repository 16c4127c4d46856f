package machine

import (
	"context"
	"fmt"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/provider"
)

// BoxUses lists the box versions the machines in this DEN_HOME's index
// were made from, leaving out entries whose machine no longer exists (a
// stale entry keeps nothing).
func (e *Env) BoxUses(ctx context.Context) ([]box.Use, error) {
	entries, err := ReadIndex(e.Home)
	if err != nil {
		return nil, err
	}
	var uses []box.Use
	for _, ie := range entries {
		if ie.Box == "" {
			continue
		}
		if prov, err := e.Provider(ie.Provider); err == nil {
			if st, err := prov.State(ctx, ie.Container); err == nil && st == provider.NotCreated {
				continue
			}
		}
		uses = append(uses, box.Use{Container: ie.Container, Machine: ie.Machine, Project: ie.Project, Box: ie.Box, Version: ie.BoxVersion})
	}
	return uses, nil
}

// RemoveBox removes version of box name (every version when ""),
// refusing while a machine was made from it unless force.
func (e *Env) RemoveBox(ctx context.Context, name, version string, force bool) error {
	uses, err := e.BoxUses(ctx)
	if err != nil {
		return err
	}
	return e.Store.RemoveUnused(ctx, name, version, uses, force)
}

// PruneBoxes removes every version of each box but the newest, keeping the
// versions machines were made from unless opts.KeepActive is off. It
// returns how many versions went (or would, on a dry run).
func (e *Env) PruneBoxes(ctx context.Context, opts box.PruneOptions) (int, error) {
	entries, err := ReadIndex(e.Home)
	if err != nil {
		return 0, err
	}
	// Prune keeps what any index entry names, stale or not: an entry may
	// stand for a machine whose address is reserved.
	var uses []box.Use
	for _, ie := range entries {
		uses = append(uses, box.Use{Machine: ie.Machine, Project: ie.Project, Box: ie.Box, Version: ie.BoxVersion})
	}
	return e.Store.Prune(ctx, e.UI, uses, opts)
}

// BoxWants describes what each machine of p asks of its box, with the
// version it was made from when the index says so.
func (e *Env) BoxWants(p *config.Project) ([]box.Want, error) {
	entries, err := ReadIndex(e.Home)
	if err != nil {
		return nil, err
	}
	var wants []box.Want
	for _, c := range p.Machines {
		w := boxWant(c)
		for _, ie := range entries {
			if ie.Project == p.Dir && ie.Machine == c.Name && ie.Box == c.Box {
				w.Using = ie.BoxVersion
			}
		}
		wants = append(wants, w)
	}
	return wants, nil
}

// boxWant is what machine c asks of its box.
func boxWant(c *config.Machine) box.Want {
	w := box.Want{Label: c.Name, Name: c.Box, Constraint: c.BoxVersion, URL: c.BoxURL}
	if r := c.BoxRange; r.Filename != "" {
		w.Where = fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
	}
	return w
}
