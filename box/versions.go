package box

// Versions of installed boxes against their catalogs (box outdated, box
// update) and the removal of old ones (box prune, box remove), as data:
// the caller says which machines use which versions.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/internal/version"
)

// Lock takes the store's lock: shared for anything that uses or adds
// boxes (an up creating a machine from one holds it until the machine
// exists), exclusive for removing them, so 'box remove' and 'box prune'
// cannot take away a box a machine is being made from.
func (s *Store) Lock(ctx context.Context, exclusive bool, what string) (*lock.Lock, error) {
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o711); err != nil {
		return nil, err
	}
	path, wait := s.dir+".lock", s.LockWait
	if wait == 0 {
		wait = 10 * time.Second
	}
	if exclusive {
		return lock.Acquire(ctx, path, what, wait)
	}
	return lock.AcquireShared(ctx, path, what, wait)
}

// Use is a machine made from a box version, as den's index records it.
type Use struct {
	Container string // the machine's container
	Machine   string // its name in its project
	Project   string // the project folder
	Box       string
	Version   string // "" when the index does not say
}

func (u Use) String() string {
	if u.Container == "" {
		return fmt.Sprintf("machine %s of %s", u.Machine, u.Project)
	}
	return fmt.Sprintf("%s (machine %s of %s)", u.Container, u.Machine, u.Project)
}

// Statuses of an OutdatedRow.
const (
	StatusOutdated     = "outdated"
	StatusUpToDate     = "up to date"
	StatusNotInstalled = "not installed"
	StatusNoCatalog    = "no catalog"
	StatusError        = "error"
)

// OutdatedRow is one line of 'den box outdated' (and of its --json).
type OutdatedRow struct {
	Machine    string `json:"machine,omitempty"`     // in a project
	Box        string `json:"box"`                   // the box's name
	Constraint string `json:"box_version,omitempty"` // den.hcl's box_version
	Current    string `json:"current,omitempty"`     // the version the machine uses (or would), or the newest installed
	Latest     string `json:"latest,omitempty"`      // the newest allowed version in the catalog
	Catalog    string `json:"catalog,omitempty"`
	Status     string `json:"status"` // outdated, up to date, not installed, no catalog, error
	Message    string `json:"message"`
}

// Outdated checks, for each machine's want, the version it was made from
// (Want.Using) or the one up would pick, against the newest its catalog
// allows.
func (s *Store) Outdated(ctx context.Context, wants []Want) ([]OutdatedRow, error) {
	cache := catalogCache{}
	var rows []OutdatedRow
	for _, w := range wants {
		row := OutdatedRow{Machine: w.Label, Box: w.Name, Constraint: w.Constraint}
		cs, err := version.ParseConstraints(w.Constraint)
		if err != nil {
			return nil, w.missing(err)
		}
		inUse := w.Using != ""
		if inUse {
			row.Current = w.Using
		} else if b, err := s.Newest(w.Name, cs); err != nil {
			return nil, err
		} else if b != nil {
			row.Current = b.Version
		}
		rows = append(rows, s.checkRow(ctx, cache, row, cs, inUse, func() (string, string, error) {
			return s.wantCatalog(ctx, cache, w)
		}))
	}
	return rows, nil
}

// OutdatedInstalled checks the newest installed version of every box
// against its catalog.
func (s *Store) OutdatedInstalled(ctx context.Context) ([]OutdatedRow, error) {
	boxes, err := s.List()
	if err != nil {
		return nil, err
	}
	cache := catalogCache{}
	var rows []OutdatedRow
	for _, name := range boxNames(boxes) {
		catalog, newest, err := s.catalogOf(name)
		if err != nil {
			return nil, err
		}
		row := OutdatedRow{Box: name, Current: newest.Version}
		rows = append(rows, s.checkRow(ctx, cache, row, nil, false, func() (string, string, error) {
			if catalog == "" {
				return "", noCatalog(newest), nil
			}
			return catalog, "", nil
		}))
	}
	return rows, nil
}

// boxNames lists the distinct names of boxes, in order.
func boxNames(boxes []*Box) []string {
	var names []string
	for _, b := range boxes {
		if !slices.Contains(names, b.Name) {
			names = append(names, b.Name)
		}
	}
	return names
}

// checkRow fills in row's catalog, latest version, status and message.
// inUse says row.Current is the version a machine was made from.
func (s *Store) checkRow(ctx context.Context, cache catalogCache, row OutdatedRow, cs version.Constraints, inUse bool, catalogOf func() (string, string, error)) OutdatedRow {
	fail := func(err error) OutdatedRow {
		row.Status, row.Message = StatusError, fmt.Sprintf("box %s: %v", row.Box, err)
		return row
	}
	catalog, why, err := catalogOf()
	if err != nil {
		return fail(err)
	}
	if catalog == "" {
		row.Status = StatusNoCatalog
		row.Message = fmt.Sprintf("box %s %s: %s.", row.Box, orNone(row.Current), why)
		if row.Current == "" {
			row.Status = StatusNotInstalled
		}
		return row
	}
	row.Catalog = catalog
	cat, err := cache.get(ctx, catalog)
	if err == nil && cat == nil {
		err = fmt.Errorf("%s is a box file, not a catalog", catalog)
	}
	if err != nil {
		return fail(err)
	}
	cv, _, err := cat.Select(FormatProvider, cs)
	if err != nil {
		return fail(err)
	}
	row.Latest = cv.Version
	matching := MatchingNote(cs)
	switch {
	case row.Current == "":
		row.Status = StatusNotInstalled
		row.Message = fmt.Sprintf("box %s is not installed; the newest version%s is %s ('den up' or 'den box update' adds it).", row.Box, matching, cv.Version)
	case version.Newer(cv.Version, row.Current):
		row.Status = StatusOutdated
		if _, err := s.Get(row.Box, cv.Version); err == nil && inUse {
			row.Message = fmt.Sprintf("box %s: the machine was made from version %s; %s is installed, and the machine keeps %s until 'den destroy' and 'den up'.", row.Box, row.Current, cv.Version, row.Current)
		} else {
			have := "installed: " + row.Current
			switch {
			case inUse:
				have = "the machine was made from " + row.Current
			case row.Machine != "":
				have = "'den up' would use " + row.Current
			}
			row.Message = fmt.Sprintf("box %s is outdated: version %s%s is available (%s); run 'den box update' to add it.", row.Box, cv.Version, matching, have)
		}
	default:
		row.Status = StatusUpToDate
		row.Message = fmt.Sprintf("box %s %s is up to date (the newest version%s).", row.Box, row.Current, matching)
	}
	return row
}

// orNone is v, or "(not installed)".
func orNone(v string) string {
	if v == "" {
		return "(not installed)"
	}
	return v
}

// Update adds the newest version of the installed box name from the
// catalog it came from.
func (s *Store) Update(ctx context.Context, u ui.Reporter, name string) (*Box, error) {
	if err := CheckName(name); err != nil {
		return nil, errdefs.With(errdefs.Invalid, err)
	}
	catalog, newest, err := s.catalogOf(name)
	if err != nil {
		return nil, err
	}
	if newest == nil {
		_, err := s.Get(name, "")
		return nil, err
	}
	if catalog == "" {
		return nil, errdefs.Newf(errdefs.NotFound, "box %q has no catalog to update from (%s); add a newer version with 'den box add'", name, strings.TrimPrefix(noCatalog(newest), "no catalog: "))
	}
	u.Say(name, "Checking catalog %s for a newer version...", catalog)
	before := s.installedSet(name)
	b, err := s.Acquire(ctx, u, Request{Name: name, Source: catalog, Reuse: true})
	if err != nil {
		return nil, err
	}
	if before[b.Version] {
		u.Say(name, "Box %s %s, the newest version in its catalog, is installed; nothing to update.", name, b.Version)
	}
	return b, nil
}

// UpdateWants adds, for each want, the newest version of its box that its
// box_version allows, and says which machines keep an older one.
func (s *Store) UpdateWants(ctx context.Context, u ui.Reporter, wants []Want) error {
	cache := catalogCache{}
	failed := 0
	for _, w := range wants {
		cs, err := version.ParseConstraints(w.Constraint)
		if err != nil {
			return w.missing(err)
		}
		catalog, why, err := s.wantCatalog(ctx, cache, w)
		if err != nil {
			u.Warn(w.Label, "box %s: %v", w.Name, err)
			failed++
			continue
		}
		if catalog == "" {
			u.Say(w.Label, "Box %s: %s; nothing to update.", w.Name, why)
			continue
		}
		before := s.installedSet(w.Name)
		b, err := s.Acquire(ctx, u, Request{Name: w.Name, Source: catalog, Constraints: cs, Reuse: true})
		if err != nil {
			u.Warn(w.Label, "box %s: %v", w.Name, err)
			failed++
			continue
		}
		if before[b.Version] {
			u.Say(w.Label, "Box %s %s is the newest version%s; up to date.", b.Name, b.Version, MatchingNote(cs))
		}
		if w.Using != "" && w.Using != b.Version {
			u.Say(w.Label, "The machine was made from %s %s and keeps using it until 'den destroy' and 'den up' (as in Vagrant); 'den box prune' removes versions no machine uses.", w.Name, w.Using)
		}
	}
	if failed > 0 {
		return fmt.Errorf("could not update %d of %d machines' boxes (see above)", failed, len(wants))
	}
	return nil
}

// PruneOptions tune Prune.
type PruneOptions struct {
	Name       string // only this box; "" = every box
	DryRun     bool
	KeepActive bool // keep the versions machines were made from
}

// Prune removes every version of each box but the newest, keeping the
// versions in uses (with KeepActive) and every version of a box a use
// names without a version. It holds the store's exclusive lock and
// returns how many versions it removed (or would, on a dry run).
func (s *Store) Prune(ctx context.Context, u ui.Reporter, uses []Use, opts PruneOptions) (int, error) {
	lk, err := s.Lock(ctx, true, "den box prune")
	if err != nil {
		return 0, err
	}
	defer lk.Unlock()
	var names []string
	if opts.Name != "" {
		if _, err := s.Get(opts.Name, ""); err != nil {
			return 0, err
		}
		names = []string{opts.Name}
	} else {
		boxes, err := s.List()
		if err != nil {
			return 0, err
		}
		names = boxNames(boxes)
	}
	removed := 0
	for _, name := range names {
		versions, err := s.Versions(name)
		if err != nil {
			return removed, err
		}
		users := map[string][]string{} // version -> machines
		var unknown []string           // machines whose version the index does not say
		for _, e := range uses {
			if e.Box != name {
				continue
			}
			if e.Version == "" {
				unknown = append(unknown, e.String())
			} else {
				users[e.Version] = append(users[e.Version], e.String())
			}
		}
		for i, b := range versions {
			switch {
			case i == len(versions)-1:
				u.Say(name, "Keeping %s (the newest).", b.Version)
				continue
			case opts.KeepActive && len(users[b.Version]) > 0:
				u.Say(name, "Keeping %s (in use by %s).", b.Version, strings.Join(users[b.Version], ", "))
				continue
			case opts.KeepActive && len(unknown) > 0:
				u.Say(name, "Keeping %s (%s uses this box and the index does not say which version).", b.Version, strings.Join(unknown, ", "))
				continue
			}
			if opts.DryRun {
				u.Say(name, "Would remove %s (dry run).", b.Version)
				removed++
				continue
			}
			if err := s.Remove(name, b.Version); err != nil {
				return removed, err
			}
			u.Say(name, "Removed %s.", b.Version)
			removed++
		}
	}
	return removed, nil
}

// RemoveUnused removes version of box name (every version when ""),
// refusing while uses names a machine made from it unless force. It holds
// the store's exclusive lock.
func (s *Store) RemoveUnused(ctx context.Context, name, ver string, uses []Use, force bool) error {
	lk, err := s.Lock(ctx, true, "den box remove")
	if err != nil {
		return err
	}
	defer lk.Unlock()
	if _, err := s.Get(name, ver); err != nil {
		return err
	}
	var users []string
	for _, e := range uses {
		if e.Box == name && (ver == "" || e.Version == ver || e.Version == "") {
			users = append(users, e.String())
		}
	}
	if len(users) > 0 && !force {
		return errdefs.Newf(errdefs.Exists, "box %q is used by %s; destroy those machines first, or pass --force", name, strings.Join(users, ", "))
	}
	return s.Remove(name, ver)
}
