package provider

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/den-dev/den/internal/errdefs"
)

// Snapshot is a saved copy of a machine's own filesystem: what the machine
// changed on top of its box, never the box itself.
type Snapshot struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"` // bytes on disk
	// Shared is set for a copy-on-write snapshot (a btrfs one), which
	// shares its blocks with the machine: it copied nothing, and what it
	// holds alone is not known (Size is 0).
	Shared bool `json:"shared,omitempty"`
}

// Snapshotter is the optional ability to save a machine's filesystem and
// bring it back. A provider without it makes den report ErrNotSupported.
// Names must pass CheckSnapshotName; every method returns an error for one
// that does not.
type Snapshotter interface {
	// SaveSnapshot copies the machine's filesystem as snapshot snap. A
	// running machine is frozen for the copy and thawed afterwards, so the
	// copy is one point in time (as after a power cut) and the machine keeps
	// running; a frozen one stays frozen; a stopped one is copied as it is.
	// A name that exists returns ErrSnapshotExists unless replace is set.
	// An interrupted save leaves no snapshot and the machine unchanged.
	SaveSnapshot(ctx context.Context, name, snap string, replace bool) (Snapshot, error)
	// RestoreSnapshot replaces the filesystem of a stopped machine with
	// snapshot snap (the snapshot stays). A machine that is not stopped
	// returns an error. An interrupted restore leaves the machine as it was
	// before or as the snapshot, never in between.
	RestoreSnapshot(ctx context.Context, name, snap string) error
	// Snapshots lists the machine's snapshots, oldest first. A machine that
	// does not exist has none.
	Snapshots(ctx context.Context, name string) ([]Snapshot, error)
	// DeleteSnapshot removes snapshot snap; ErrSnapshotNotFound when there
	// is no such snapshot.
	DeleteSnapshot(ctx context.Context, name, snap string) error
}

// ErrSnapshotNotFound is returned for a snapshot name a machine lacks.
var ErrSnapshotNotFound = errdefs.With(errdefs.NotFound, errors.New("no such snapshot"))

// ErrSnapshotExists is returned when saving over a snapshot without replace.
var ErrSnapshotExists = errdefs.With(errdefs.Exists, errors.New("snapshot exists"))

var snapshotNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckSnapshotName validates a snapshot name: 1 to 64 letters, digits,
// '.', '_' and '-', starting with a letter or digit (it names a folder).
func CheckSnapshotName(name string) error {
	if !snapshotNameRE.MatchString(name) {
		return errdefs.Newf(errdefs.Invalid, "invalid snapshot name %q: use 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// Exporter is the optional ability to show a stopped machine's whole
// filesystem (its box with the machine's changes on top) as a folder on the
// host, for packaging it as a box.
type Exporter interface {
	// ExportRootfs presents the merged filesystem of the stopped machine
	// name at a host folder and calls fn with its path. fn may change what
	// it sees: every change goes to a scratch layer that is thrown away, and
	// the machine is never touched. Everything ExportRootfs mounts is
	// unmounted before it returns, whether fn fails or not. A machine that
	// is not stopped returns an error.
	ExportRootfs(ctx context.Context, name string, fn func(rootfs string) error) error
}
