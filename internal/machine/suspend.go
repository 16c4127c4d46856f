package machine

import (
	"context"
	"fmt"

	"github.com/den-dev/den/provider"
)

// Suspend freezes each running machine with the freezer cgroup: every
// process stops where it is and keeps its memory until Resume. A suspended
// machine refuses ssh (it could not answer) and up; halt and destroy thaw
// it first. Each machine's lock is held.
func (e *Env) Suspend(ctx context.Context, ms []*Machine) error {
	return each(ctx, ms, false, func(m *Machine) error { return e.freezer(ctx, m, true) })
}

// Resume thaws each suspended machine and waits until its sshd answers.
func (e *Env) Resume(ctx context.Context, ms []*Machine) error {
	return each(ctx, ms, false, func(m *Machine) error { return e.freezer(ctx, m, false) })
}

// freezer suspends (freeze) or resumes a machine, saying so when it is in
// no state to.
func (e *Env) freezer(ctx context.Context, m *Machine, freeze bool) error {
	verb := "den resume"
	if freeze {
		verb = "den suspend"
	}
	lk, err := m.lock(ctx, verb)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	name := m.Name()
	rec, prov, st, err := e.current(ctx, m)
	if err != nil {
		return err
	}
	switch {
	case st == provider.NotCreated:
		e.UI.Say(name, "Machine is not created.")
		return nil
	case freeze && st == provider.Frozen:
		e.UI.Say(name, "Machine is already suspended.")
		return nil
	case freeze && st != provider.Running:
		e.UI.Say(name, "Machine is %s, not running: there is nothing to suspend.", st)
		return nil
	case !freeze && st == provider.Running:
		e.UI.Say(name, "Machine is not suspended.")
		return nil
	case !freeze && st != provider.Frozen:
		e.UI.Say(name, "Machine is %s, not suspended: 'den up' starts it.", st)
		return nil
	}
	if freeze {
		return e.around(ctx, m, "suspend", func() error {
			e.UI.Say(name, "Suspending machine...")
			if err := prov.Freeze(ctx, rec.Container); err != nil {
				return err
			}
			e.UI.Say(name, "Machine suspended. 'den resume' wakes it up.")
			return nil
		})
	}
	return e.around(ctx, m, "resume", func() error {
		e.UI.Say(name, "Resuming suspended machine...")
		if err := prov.Unfreeze(ctx, rec.Container); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		client, err := e.waitSSH(ctx, m, rec, prov)
		if err != nil {
			return err
		}
		client.Close()
		e.UI.Say(name, "Machine resumed and ready!")
		return nil
	})
}
