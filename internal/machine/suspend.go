package machine

import (
	"context"

	"github.com/den-dev/den/provider"
)

// Suspend freezes a running machine with the freezer cgroup: every process
// stops where it is and keeps its memory until Resume. A suspended machine
// refuses ssh (it could not answer) and up; halt and destroy thaw it first.
// Suspend holds the machine's lock.
func (e *Env) Suspend(ctx context.Context, m *Machine) error {
	lk, err := m.Lock(ctx, "den suspend")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	name := m.Name()
	rec, err := m.Record()
	if err != nil {
		return err
	}
	if rec == nil {
		e.UI.Say(name, "Machine is not created.")
		return nil
	}
	st, err := e.Provider.State(ctx, rec.Container)
	if err != nil {
		return err
	}
	switch st {
	case provider.Frozen:
		e.UI.Say(name, "Machine is already suspended.")
		return nil
	case provider.Running:
	case provider.NotCreated:
		e.UI.Say(name, "Machine is not created.")
		return nil
	default:
		e.UI.Say(name, "Machine is %s, not running: there is nothing to suspend.", st)
		return nil
	}
	e.UI.Say(name, "Suspending machine...")
	if err := e.Provider.Freeze(ctx, rec.Container); err != nil {
		return err
	}
	e.UI.Say(name, "Machine suspended. 'den resume' wakes it up.")
	return nil
}

// Resume thaws a suspended machine and waits until its sshd answers.
// Resume holds the machine's lock.
func (e *Env) Resume(ctx context.Context, m *Machine) error {
	lk, err := m.Lock(ctx, "den resume")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	name := m.Name()
	rec, err := m.Record()
	if err != nil {
		return err
	}
	if rec == nil {
		e.UI.Say(name, "Machine is not created.")
		return nil
	}
	st, err := e.Provider.State(ctx, rec.Container)
	if err != nil {
		return err
	}
	switch st {
	case provider.Frozen:
	case provider.Running:
		e.UI.Say(name, "Machine is not suspended.")
		return nil
	case provider.NotCreated:
		e.UI.Say(name, "Machine is not created.")
		return nil
	default:
		e.UI.Say(name, "Machine is %s, not suspended: 'den up' starts it.", st)
		return nil
	}
	e.UI.Say(name, "Resuming suspended machine...")
	if err := e.Provider.Unfreeze(ctx, rec.Container); err != nil {
		return err
	}
	client, err := e.waitSSH(ctx, m, rec)
	if err != nil {
		return err
	}
	client.Close()
	e.UI.Say(name, "Machine resumed and ready!")
	return nil
}
