package machine

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/provider"
)

// Select returns the machines of p that names names, in the order given,
// or all of them (in file order) when names is empty. An unknown name is
// an errdefs.NotFound error that lists the project's machines.
func Select(p *config.Project, names []string) ([]*Machine, error) {
	if len(names) == 0 {
		out := make([]*Machine, 0, len(p.Machines))
		for _, c := range p.Machines {
			out = append(out, New(p, c))
		}
		return out, nil
	}
	var out []*Machine
	for _, name := range names {
		c, ok := p.Machine(name)
		if !ok {
			return nil, errdefs.Newf(errdefs.NotFound, "no machine %q in %s (machines: %s)", name, p.File, MachineNames(p))
		}
		if !slices.ContainsFunc(out, func(m *Machine) bool { return m.Name() == name }) {
			out = append(out, New(p, c))
		}
	}
	return out, nil
}

// SelectOne returns the machine of p called name, or with name "" its
// primary (or only) one.
func SelectOne(p *config.Project, name string) (*Machine, error) {
	if name == "" {
		ms, err := Select(p, nil)
		if err != nil {
			return nil, err
		}
		return Primary(ms)
	}
	ms, err := Select(p, []string{name})
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// Primary returns the machine single-machine commands (ssh, package) act
// on when none is named: the only one, else the one den.hcl marks
// primary; an errdefs.Invalid error asks to name one.
func Primary(ms []*Machine) (*Machine, error) {
	if len(ms) == 1 {
		return ms[0], nil
	}
	var names []string
	for _, m := range ms {
		if m.Config.Primary {
			return m, nil
		}
		names = append(names, m.Name())
	}
	return nil, errdefs.Newf(errdefs.Invalid, "this project has several machines (%s): name one, or mark one primary = true in den.hcl", strings.Join(names, ", "))
}

// MachineNames lists p's machine names for messages.
func MachineNames(p *config.Project) string {
	names := make([]string, len(p.Machines))
	for i, m := range p.Machines {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}

// reserveAll gives every machine of the project of ms an address before
// any is created, so each machine's /etc/hosts can name all its peers from
// the first boot. A reservation is a record without a container.
func (e *Env) reserveAll(ctx context.Context, ms []*Machine) error {
	if len(ms) == 0 || len(ms[0].Project.Machines) < 2 {
		return nil
	}
	p := ms[0].Project
	for _, c := range p.Machines {
		if err := e.reserve(ctx, New(p, c)); err != nil {
			return named(New(p, c), err)
		}
	}
	return nil
}

// prepare checks den.hcl against this host and reserves every machine's
// address, before up or reload creates or starts anything.
func (e *Env) prepare(ctx context.Context, ms []*Machine) error {
	if len(ms) == 0 {
		return nil
	}
	if err := e.CheckHost(ctx, ms[0].Project, ms); err != nil {
		return err
	}
	return e.reserveAll(ctx, ms)
}

// Up creates the machines when missing, starts them when stopped, waits
// for their sshd and provisions them as opts say: all at once with
// opts.Parallel, after reserving an address for every machine of the
// project. Each machine's lock is held for its whole up. One machine's
// failure does not stop the others; every failure names its machine.
func (e *Env) Up(ctx context.Context, ms []*Machine, opts UpOptions) error {
	if err := e.prepare(ctx, ms); err != nil {
		return err
	}
	return each(ctx, ms, opts.Parallel, func(m *Machine) error {
		lk, err := m.lock(ctx, "den up")
		if err != nil {
			return err
		}
		defer lk.Unlock()
		return e.around(ctx, m, "up", func() error { return e.upLocked(ctx, m, opts) })
	})
}

// Reload halts each machine and brings it up again with the current
// den.hcl (memory, cpus, synced folders, forwards, lxc config), keeping
// its disk, under the machine's lock throughout.
func (e *Env) Reload(ctx context.Context, ms []*Machine, opts UpOptions, timeout time.Duration) error {
	if err := e.prepare(ctx, ms); err != nil {
		return err
	}
	return each(ctx, ms, opts.Parallel, func(m *Machine) error {
		lk, err := m.lock(ctx, "den reload")
		if err != nil {
			return err
		}
		defer lk.Unlock()
		if rec, err := m.Record(); err == nil && rec != nil && rec.Box != "" && rec.Box != m.Config.Box {
			e.UI.Warn(m.Name(), "den.hcl names box %s, but the machine was made from %s; 'den destroy' and 'den up' make it anew from the new box", m.Config.Box, rec.Box)
		}
		return e.around(ctx, m, "reload", func() error {
			if err := e.halt(ctx, m, false, timeout); err != nil {
				return err
			}
			return e.upLocked(ctx, m, opts)
		})
	})
}

// Halt stops each machine, one after the other: a clean shutdown within
// timeout, then a kill (at once when force). Its port forwarder stops too.
func (e *Env) Halt(ctx context.Context, ms []*Machine, force bool, timeout time.Duration) error {
	return each(ctx, ms, false, func(m *Machine) error {
		lk, err := m.lock(ctx, "den halt")
		if err != nil {
			return err
		}
		defer lk.Unlock()
		halt := func() error { return e.halt(ctx, m, force, timeout) }
		if !e.inState(ctx, m, provider.Running, provider.Frozen) {
			return halt() // nothing to stop: no triggers
		}
		return e.around(ctx, m, "halt", halt)
	})
}

// Destroy removes each machine (container, its own disk, record, index
// entry), one after the other. The project folder is never touched.
func (e *Env) Destroy(ctx context.Context, ms []*Machine) error {
	return each(ctx, ms, false, func(m *Machine) error {
		lk, err := m.lock(ctx, "den destroy")
		if err != nil {
			return err
		}
		defer lk.Unlock()
		destroy := func() error { return e.destroy(ctx, m) }
		if !e.inState(ctx, m, provider.Running, provider.Frozen, provider.Stopped) {
			return destroy() // no container (perhaps a reserved address): no triggers
		}
		return e.around(ctx, m, "destroy", destroy)
	})
}

// Provision runs the provisioners of each running machine again (every
// one, or those opts.Only names), one machine after the other, under its
// lock.
func (e *Env) Provision(ctx context.Context, ms []*Machine, opts ProvisionOptions) error {
	return each(ctx, ms, false, func(m *Machine) error {
		lk, err := m.lock(ctx, "den provision")
		if err != nil {
			return err
		}
		defer lk.Unlock()
		client, err := e.Connect(ctx, m)
		if err != nil {
			return err
		}
		defer client.Close()
		return e.around(ctx, m, "provision", func() error { return e.provision(ctx, m, client, opts) })
	})
}

// around runs action between m's triggers before and after command; the
// after ones run only once action succeeded. The caller holds m's lock.
func (e *Env) around(ctx context.Context, m *Machine, command string, action func() error) error {
	if err := e.fire(ctx, m, config.TriggerBefore, command); err != nil {
		return err
	}
	if err := action(); err != nil {
		return err
	}
	return e.fire(ctx, m, config.TriggerAfter, command)
}

// inState reports whether m's container is in one of states: a command's
// triggers run only when it has something to do (halt of a running
// machine, destroy of one that exists).
func (e *Env) inState(ctx context.Context, m *Machine, states ...provider.State) bool {
	_, _, st, err := e.current(ctx, m)
	return err == nil && slices.Contains(states, st)
}

// Status reads each machine's state without starting or contacting it.
func (e *Env) Status(ctx context.Context, ms []*Machine) ([]Status, error) {
	out := make([]Status, 0, len(ms))
	for _, m := range ms {
		s, err := e.status(ctx, m)
		if err != nil {
			return out, named(m, err)
		}
		out = append(out, s)
	}
	return out, nil
}
