package machine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

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
func (e *Env) snapshotter() (provider.Snapshotter, error) {
	s, ok := e.Provider.(provider.Snapshotter)
	if !ok {
		return nil, fmt.Errorf("snapshots: %w", provider.ErrNotSupported)
	}
	return s, nil
}

// createdRecord returns the record of a created machine, or an error that
// says what to run.
func (e *Env) createdRecord(ctx context.Context, m *Machine, what string) (*Record, provider.State, error) {
	rec, st, err := e.current(ctx, m)
	if err != nil {
		return nil, provider.Unknown, err
	}
	if st == provider.NotCreated {
		return nil, st, fmt.Errorf("machine %q is not created: nothing to %s (run 'den up %s' first)", m.Name(), what, m.Name())
	}
	return rec, st, nil
}

// SnapshotSave saves the machine's filesystem as snapshot snap. A running
// machine is frozen during the copy (milliseconds for a small layer) and
// keeps running; only what the machine changed on top of its box is
// copied. replace overwrites a snapshot of that name.
func (e *Env) SnapshotSave(ctx context.Context, m *Machine, snap string, replace bool) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	s, err := e.snapshotter()
	if err != nil {
		return err
	}
	lk, err := m.Lock(ctx, "den snapshot save")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	return e.saveLocked(ctx, m, s, snap, replace)
}

func (e *Env) saveLocked(ctx context.Context, m *Machine, s provider.Snapshotter, snap string, replace bool) error {
	name := m.Name()
	rec, st, err := e.createdRecord(ctx, m, "snapshot")
	if err != nil {
		return err
	}
	if !replace {
		list, err := s.Snapshots(ctx, rec.Container)
		if err != nil {
			return err
		}
		if hasSnapshot(list, snap) {
			return fmt.Errorf("machine %q already has a snapshot %q: pick another name, or pass --force to replace it", name, snap)
		}
	}
	e.UI.Say(name, "Snapshotting the machine as '%s'...", snap)
	start := time.Now()
	saved, err := s.SaveSnapshot(ctx, rec.Container, snap, replace)
	if errors.Is(err, provider.ErrSnapshotExists) {
		return fmt.Errorf("machine %q already has a snapshot %q: pick another name, or pass --force to replace it", name, snap)
	}
	if err != nil {
		return err
	}
	how := ""
	if st == provider.Running {
		how = ", the machine frozen meanwhile"
	}
	e.UI.Detail(name, "%s copied in %s%s", ui.Bytes(saved.Size), time.Since(start).Round(time.Millisecond), how)
	e.UI.Say(name, "Snapshot saved! You can restore the snapshot at any time by\nusing 'den snapshot restore'. You can delete it using\n'den snapshot delete'.")
	return nil
}

// SnapshotRestore brings the machine's filesystem back to snapshot snap. A
// running or suspended machine is stopped first (what it holds now is
// discarded, as in Vagrant); afterwards the machine is started unless
// opts.NoStart. The machine keeps its keys: the snapshot holds the keys
// den wrote into the guest when it created the machine.
func (e *Env) SnapshotRestore(ctx context.Context, m *Machine, snap string, opts RestoreOptions) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	s, err := e.snapshotter()
	if err != nil {
		return err
	}
	if err := e.restoreStep(ctx, m, s, func(context.Context) (string, error) { return snap, nil }, false); err != nil {
		return err
	}
	return e.afterRestore(ctx, m, opts)
}

// SnapshotPush saves a snapshot with a name of its own (push_...), for
// SnapshotPop to bring back.
func (e *Env) SnapshotPush(ctx context.Context, m *Machine) (string, error) {
	s, err := e.snapshotter()
	if err != nil {
		return "", err
	}
	lk, err := m.Lock(ctx, "den snapshot push")
	if err != nil {
		return "", err
	}
	defer lk.Unlock()
	snap := fmt.Sprintf("%s%d_%04d", PushPrefix, time.Now().Unix(), rand.IntN(10000))
	if err := e.saveLocked(ctx, m, s, snap, false); err != nil {
		return "", err
	}
	return snap, nil
}

// SnapshotPop restores the newest pushed snapshot, then deletes it unless
// opts.NoDelete.
func (e *Env) SnapshotPop(ctx context.Context, m *Machine, opts RestoreOptions) error {
	s, err := e.snapshotter()
	if err != nil {
		return err
	}
	pick := func(ctx context.Context) (string, error) {
		rec, err := m.Record()
		if err != nil || rec == nil {
			return "", err
		}
		list, err := s.Snapshots(ctx, rec.Container)
		if err != nil {
			return "", err
		}
		snap := newestPushed(list)
		if snap == "" {
			return "", fmt.Errorf("machine %q has no pushed snapshot: 'den snapshot push' saves one", m.Name())
		}
		return snap, nil
	}
	if err := e.restoreStep(ctx, m, s, pick, !opts.NoDelete); err != nil {
		return err
	}
	return e.afterRestore(ctx, m, opts)
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

// restoreStep stops the machine, restores the snapshot pick names, and
// deletes it when del is set, all under the machine's lock.
func (e *Env) restoreStep(ctx context.Context, m *Machine, s provider.Snapshotter, pick func(context.Context) (string, error), del bool) error {
	lk, err := m.Lock(ctx, "den snapshot restore")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	name := m.Name()
	rec, st, err := e.createdRecord(ctx, m, "restore")
	if err != nil {
		return err
	}
	snap, err := pick(ctx)
	if err != nil {
		return err
	}
	list, err := s.Snapshots(ctx, rec.Container)
	if err != nil {
		return err
	}
	if !hasSnapshot(list, snap) {
		return fmt.Errorf("machine %q has no snapshot %q (see 'den snapshot list')", name, snap)
	}
	if st == provider.Running || st == provider.Frozen {
		e.UI.Say(name, "Forcing shutdown of machine...")
		if err := e.Provider.Stop(ctx, rec.Container, true, 0); err != nil {
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
// says) unless told not to. It runs after the restore released the lock,
// since Up takes it.
func (e *Env) afterRestore(ctx context.Context, m *Machine, opts RestoreOptions) error {
	if opts.NoStart {
		e.UI.Say(m.Name(), "Machine left stopped: 'den up' starts it.")
		return nil
	}
	return e.Up(ctx, m, opts.Up)
}

// SnapshotList lists the machine's snapshots, oldest first; none when the
// machine is not created.
func (e *Env) SnapshotList(ctx context.Context, m *Machine) ([]provider.Snapshot, error) {
	s, err := e.snapshotter()
	if err != nil {
		return nil, err
	}
	rec, err := m.Record()
	if err != nil || rec == nil {
		return nil, err
	}
	return s.Snapshots(ctx, rec.Container)
}

// SnapshotDelete deletes snapshot snap of the machine.
func (e *Env) SnapshotDelete(ctx context.Context, m *Machine, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	s, err := e.snapshotter()
	if err != nil {
		return err
	}
	lk, err := m.Lock(ctx, "den snapshot delete")
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
		return fmt.Errorf("machine %q is not created: it has no snapshots", name)
	}
	list, err := s.Snapshots(ctx, rec.Container)
	if err != nil {
		return err
	}
	notFound := fmt.Errorf("machine %q has no snapshot %q (see 'den snapshot list')", name, snap)
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
}
