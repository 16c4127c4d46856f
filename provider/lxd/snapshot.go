package lxd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/provider"
)

// tmpSnapPrefix starts the name of a snapshot being saved to replace
// another one; a leftover of an interrupted save is deleted by the next.
const tmpSnapPrefix = "den-tmp-"

// SaveSnapshot makes an LXD snapshot of the instance. A running instance
// is frozen for it and thawed afterwards, so the copy is one point in
// time; replace saves the new one under a temporary name first, so an
// interrupted save leaves the old snapshot.
func (p *Provider) SaveSnapshot(ctx context.Context, name, snap string, replace bool) (provider.Snapshot, error) {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return provider.Snapshot{}, err
	}
	m, err := p.forName(ctx, name)
	if err != nil {
		return provider.Snapshot{}, err
	}
	if m == nil {
		return provider.Snapshot{}, fmt.Errorf("machine %q does not exist", name)
	}
	p.sweepSnapshots(ctx, m, name)
	list, err := m.is.GetInstanceSnapshots(name)
	if err != nil {
		return provider.Snapshot{}, err
	}
	exists := slices.ContainsFunc(list, func(s api.InstanceSnapshot) bool { return s.Name == snap })
	if exists && !replace {
		return provider.Snapshot{}, fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotExists)
	}
	st, _, err := m.is.GetInstanceState(name)
	if err != nil {
		return provider.Snapshot{}, err
	}
	target := snap
	if exists {
		target = tmpSnapPrefix + snap
	}
	err = p.frozen(ctx, m, name, mapState(st.StatusCode) == provider.Running, func() error {
		op, err := m.is.CreateInstanceSnapshot(name, api.InstanceSnapshotsPost{Name: target})
		return wait(ctx, op, err, fmt.Sprintf("snapshot %s of %s", snap, name))
	})
	if err != nil {
		return provider.Snapshot{}, err
	}
	if exists {
		op, err := m.is.DeleteInstanceSnapshot(name, snap)
		if err := wait(ctx, op, err, "delete the replaced snapshot "+snap); err != nil {
			return provider.Snapshot{}, err
		}
		op, err = m.is.RenameInstanceSnapshot(name, target, api.InstanceSnapshotPost{Name: snap})
		if err := wait(ctx, op, err, "rename the new snapshot to "+snap); err != nil {
			return provider.Snapshot{}, err
		}
	}
	s, _, err := m.is.GetInstanceSnapshot(name, snap)
	if err != nil {
		return provider.Snapshot{}, err
	}
	return toSnapshot(*s), nil
}

// frozen runs fn, with the instance frozen when freeze is set, and thaws
// it afterwards even when fn fails or ctx ends.
func (p *Provider) frozen(ctx context.Context, m *machine, name string, freeze bool, fn func() error) error {
	if !freeze {
		return fn()
	}
	if err := p.setState(ctx, m, name, "freeze"); err != nil {
		return err
	}
	err := fn()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if terr := p.setState(tctx, m, name, "unfreeze"); terr != nil && err == nil {
		err = terr
	}
	return err
}

// sweepSnapshots deletes what an interrupted replace left: a temporary
// snapshot whose final one exists.
func (p *Provider) sweepSnapshots(ctx context.Context, m *machine, name string) {
	list, err := m.is.GetInstanceSnapshots(name)
	if err != nil {
		return
	}
	for _, s := range list {
		if final, ok := strings.CutPrefix(s.Name, tmpSnapPrefix); ok {
			if slices.ContainsFunc(list, func(x api.InstanceSnapshot) bool { return x.Name == final }) {
				op, err := m.is.DeleteInstanceSnapshot(name, s.Name)
				wait(ctx, op, err, "delete a leftover snapshot")
			} else {
				op, err := m.is.RenameInstanceSnapshot(name, s.Name, api.InstanceSnapshotPost{Name: final})
				wait(ctx, op, err, "rename a leftover snapshot")
			}
		}
	}
}

func toSnapshot(s api.InstanceSnapshot) provider.Snapshot {
	name := s.Name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return provider.Snapshot{Name: name, Created: s.CreatedAt.UTC(), Size: max(s.Size, 0)}
}

// RestoreSnapshot restores LXD snapshot snap of the stopped instance.
func (p *Provider) RestoreSnapshot(ctx context.Context, name, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	m, err := p.forName(ctx, name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("machine %q does not exist", name)
	}
	inst, etag, err := m.is.GetInstance(name)
	if err != nil {
		return err
	}
	if st := mapState(inst.StatusCode); st != provider.Stopped {
		return fmt.Errorf("machine %q is %s: stop it before restoring a snapshot", name, st)
	}
	if _, _, err := m.is.GetInstanceSnapshot(name, snap); notFound(err) {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	} else if err != nil {
		return err
	}
	put := inst.Writable()
	put.Restore = snap
	op, err := m.is.UpdateInstance(name, put, etag)
	return wait(ctx, op, err, fmt.Sprintf("restore snapshot %s of %s", snap, name))
}

// Snapshots lists the instance's snapshots, oldest first.
func (p *Provider) Snapshots(ctx context.Context, name string) ([]provider.Snapshot, error) {
	m, err := p.forName(ctx, name)
	if err != nil || m == nil {
		return nil, err
	}
	list, err := m.is.GetInstanceSnapshots(name)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []provider.Snapshot
	for _, s := range list {
		if strings.HasPrefix(s.Name, tmpSnapPrefix) {
			continue
		}
		out = append(out, toSnapshot(s))
	}
	slices.SortStableFunc(out, func(a, b provider.Snapshot) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// DeleteSnapshot deletes LXD snapshot snap.
func (p *Provider) DeleteSnapshot(ctx context.Context, name, snap string) error {
	if err := provider.CheckSnapshotName(snap); err != nil {
		return err
	}
	m, err := p.forName(ctx, name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	}
	op, err := m.is.DeleteInstanceSnapshot(name, snap)
	if notFound(err) {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	}
	err = wait(ctx, op, err, fmt.Sprintf("delete snapshot %s of %s", snap, name))
	if err != nil && notFound(errors.Unwrap(err)) {
		return fmt.Errorf("snapshot %q of %q: %w", snap, name, provider.ErrSnapshotNotFound)
	}
	return err
}
