package machine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// PushPrefix starts the names of the snapshots `den snapshot push` makes
// (push_<unix time>_<4 digits>, as Vagrant names them); pop takes the
// newest of them.
const PushPrefix = "push_"

// RestoreOptions tune SnapshotRestore and SnapshotPop.
type RestoreOptions struct {
	NoStart  bool      // leave the machine stopped after the restore
	NoDelete bool      // pop only: keep the snapshot after restoring it
	Up       UpOptions // how the machine is started again (provisioning)
}

// snapshotter returns the provider's snapshot ability, or ErrNotSupported.
func snapshotter(prov provider.Provider) (provider.Snapshotter, error) {
	s, ok := prov.(provider.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("snapshots on provider %s: %w", prov.Name(), provider.ErrNotSupported)
	}
	return s, nil
}

// snapshotCall runs fn for each machine under its lock, with the record,
// provider, state and snapshot ability of a created machine.
func (e *Env) snapshotCall(ctx context.Context, ms []*Machine, verb, what string, fn func(m *Machine, rec *Record, prov provider.Provider, s provider.Snapshotter, st provider.State) error) error {
	return each(ctx, ms, false, func(m *Machine) error {
		lk, err := m.lock(ctx, verb)
		if err != nil {
			return err
		}
		defer lk.Unlock()
		rec, prov, st, err := e.created(ctx, m, what)
		if err != nil {
			return err
		}
		s, err := snapshotter(prov)
		if err != nil {
			return err
		}
		return e.around(ctx, m, "snapshot", func() error { return fn(m, rec, prov, s, st) })
	})
}

// SnapshotSave saves each machine's filesystem as snapshot snap. A
// running machine is frozen during the copy (milliseconds for a small
// layer) and keeps running; only what the machine changed on top of its
// box is copied. replace overwrites a snapshot of that name.
func (e *Env) SnapshotSave(ctx context.Context, ms []*Machine, snap string, replace bool) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	return e.snapshotCall(ctx, ms, "den snapshot save", "snapshot", func(m *Machine, rec *Record, _ provider.Provider, s provider.Snapshotter, st provider.State) error {
		return e.save(ctx, m, rec, s, st, snap, replace)
	})
}

// SnapshotPush saves, for each machine, a snapshot with a name of its own
// (push_...) for SnapshotPop to bring back.
func (e *Env) SnapshotPush(ctx context.Context, ms []*Machine) error {
	return e.snapshotCall(ctx, ms, "den snapshot push", "snapshot", func(m *Machine, rec *Record, _ provider.Provider, s provider.Snapshotter, st provider.State) error {
		snap := fmt.Sprintf("%s%d_%04d", PushPrefix, time.Now().Unix(), rand.IntN(10000))
		return e.save(ctx, m, rec, s, st, snap, false)
	})
}

func (e *Env) save(ctx context.Context, m *Machine, rec *Record, s provider.Snapshotter, st provider.State, snap string, replace bool) error {
	name := m.Name()
	exists := errdefs.Machinef(errdefs.Exists, name, "machine %q already has a snapshot %q: pick another name, or pass --force to replace it", name, snap)
	if !replace {
		list, err := s.Snapshots(ctx, rec.Container)
		if err != nil {
			return err
		}
		if hasSnapshot(list, snap) {
			return exists
		}
	}
	e.UI.Say(name, "Snapshotting the machine as '%s'...", snap)
	start := time.Now()
	saved, err := s.SaveSnapshot(ctx, rec.Container, snap, replace)
	if errors.Is(err, provider.ErrSnapshotExists) {
		return exists
	}
	if err != nil {
		return err
	}
	how := ""
	if st == provider.Running {
		how = ", the machine frozen meanwhile"
	}
	if saved.Shared {
		e.UI.Detail(name, "a copy-on-write snapshot, nothing copied, in %s%s", time.Since(start).Round(time.Millisecond), how)
	} else if saved.Size > 0 {
		e.UI.Detail(name, "%s copied in %s%s", ui.Bytes(saved.Size), time.Since(start).Round(time.Millisecond), how)
	} else {
		e.UI.Detail(name, "saved in %s%s", time.Since(start).Round(time.Millisecond), how)
	}
	e.UI.Say(name, "Snapshot saved! You can restore the snapshot at any time by\nusing 'den snapshot restore'. You can delete it using\n'den snapshot delete'.")
	return nil
}

// SnapshotRestore brings each machine's filesystem back to snapshot snap.
// A running or suspended machine is stopped first (what it holds now is
// discarded, as in Vagrant); afterwards the machine is started unless
// opts.NoStart. The machine's lock is held from the stop to the end of the
// start. The machine keeps its keys: the snapshot holds the keys den wrote
// into the guest when it created the machine.
func (e *Env) SnapshotRestore(ctx context.Context, ms []*Machine, snap string, opts RestoreOptions) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	return e.snapshotCall(ctx, ms, "den snapshot restore", "restore", func(m *Machine, rec *Record, prov provider.Provider, s provider.Snapshotter, st provider.State) error {
		if err := e.restore(ctx, m, rec, prov, s, st, snap, false); err != nil {
			return err
		}
		return e.afterRestore(ctx, m, opts)
	})
}

// SnapshotPop restores each machine's newest pushed snapshot, then
// deletes it unless opts.NoDelete.
func (e *Env) SnapshotPop(ctx context.Context, ms []*Machine, opts RestoreOptions) error {
	return e.snapshotCall(ctx, ms, "den snapshot pop", "restore", func(m *Machine, rec *Record, prov provider.Provider, s provider.Snapshotter, st provider.State) error {
		list, err := s.Snapshots(ctx, rec.Container)
		if err != nil {
			return err
		}
		snap := newestPushed(list)
		if snap == "" {
			return errdefs.Machinef(errdefs.NotFound, m.Name(), "machine %q has no pushed snapshot: 'den snapshot push' saves one", m.Name())
		}
		if err := e.restore(ctx, m, rec, prov, s, st, snap, !opts.NoDelete); err != nil {
			return err
		}
		return e.afterRestore(ctx, m, opts)
	})
}

func hasSnapshot(list []provider.Snapshot, snap string) bool {
	return slices.ContainsFunc(list, func(x provider.Snapshot) bool { return x.Name == snap })
}

// newestPushed names the newest snapshot that push made, or "".
func newestPushed(list []provider.Snapshot) string {
	var pushed []provider.Snapshot
	for _, s := range list {
		if strings.HasPrefix(s.Name, PushPrefix) {
			pushed = append(pushed, s)
		}
	}
	if len(pushed) == 0 {
		return ""
	}
	newest := slices.MaxFunc(pushed, func(a, b provider.Snapshot) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return newest.Name
}

// restore stops the machine (through the one stop path, so its forwarder
// ends too), restores snapshot snap and deletes it when del is set.
func (e *Env) restore(ctx context.Context, m *Machine, rec *Record, prov provider.Provider, s provider.Snapshotter, st provider.State, snap string, del bool) error {
	name := m.Name()
	list, err := s.Snapshots(ctx, rec.Container)
	if err != nil {
		return err
	}
	if !hasSnapshot(list, snap) {
		return errdefs.Machinef(errdefs.NotFound, name, "machine %q has no snapshot %q (see 'den snapshot list')", name, snap)
	}
	if st == provider.Running || st == provider.Frozen {
		e.UI.Say(name, "Forcing shutdown of machine...")
		if err := e.stop(ctx, m, rec, prov, true, 0); err != nil {
			return err
		}
	}
	e.UI.Say(name, "Restoring the snapshot '%s'...", snap)
	start := time.Now()
	if err := s.RestoreSnapshot(ctx, rec.Container, snap); err != nil {
		return err
	}
	e.UI.Detail(name, "restored in %s", time.Since(start).Round(time.Millisecond))
	if del {
		e.UI.Say(name, "Deleting the snapshot '%s'...", snap)
		if err := s.DeleteSnapshot(ctx, rec.Container, snap); err != nil {
			return err
		}
		e.UI.Say(name, "Snapshot deleted!")
	}
	return nil
}

// afterRestore starts the machine again (den up, provisioning as opts.Up
// says) unless told not to. The caller holds the machine's lock.
func (e *Env) afterRestore(ctx context.Context, m *Machine, opts RestoreOptions) error {
	if opts.NoStart {
		e.UI.Say(m.Name(), "Machine left stopped: 'den up' starts it.")
		return nil
	}
	return e.upLocked(ctx, m, opts.Up)
}

// SnapshotRow is one snapshot of one machine.
type SnapshotRow struct {
	Machine string `json:"machine"`
	provider.Snapshot
}

// SnapshotList lists each machine's snapshots, oldest first; a machine
// that is not created has none.
func (e *Env) SnapshotList(ctx context.Context, ms []*Machine) ([]SnapshotRow, error) {
	rows := []SnapshotRow{}
	for _, m := range ms {
		rec, prov, _, err := e.current(ctx, m)
		if err != nil {
			return rows, named(m, err)
		}
		if rec == nil {
			continue
		}
		s, err := snapshotter(prov)
		if err != nil {
			return rows, named(m, err)
		}
		list, err := s.Snapshots(ctx, rec.Container)
		if err != nil {
			return rows, named(m, err)
		}
		for _, snap := range list {
			rows = append(rows, SnapshotRow{Machine: m.Name(), Snapshot: snap})
		}
	}
	return rows, nil
}

// SnapshotDelete deletes snapshot snap of each machine.
func (e *Env) SnapshotDelete(ctx context.Context, ms []*Machine, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	return e.snapshotCall(ctx, ms, "den snapshot delete", "delete", func(m *Machine, rec *Record, _ provider.Provider, s provider.Snapshotter, _ provider.State) error {
		name := m.Name()
		notFound := errdefs.Machinef(errdefs.NotFound, name, "machine %q has no snapshot %q (see 'den snapshot list')", name, snap)
		list, err := s.Snapshots(ctx, rec.Container)
		if err != nil {
			return err
		}
		if !hasSnapshot(list, snap) {
			return notFound
		}
		e.UI.Say(name, "Deleting the snapshot '%s'...", snap)
		err = s.DeleteSnapshot(ctx, rec.Container, snap)
		if errors.Is(err, provider.ErrSnapshotNotFound) {
			return notFound
		}
		if err != nil {
			return err
		}
		e.UI.Say(name, "Snapshot deleted!")
		return nil
	})
}
