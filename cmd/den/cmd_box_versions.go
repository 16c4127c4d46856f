package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/fetch"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
)

var boxOutdatedCommand = &cli.Command{
	Name:  "outdated",
	Usage: "say whether the project's boxes have newer versions in their catalogs",
	Description: "In a project, checks each machine's box against its catalog (the one it was added from, else den.hcl's\n" +
		"box_url) for a newer version that box_version allows. With --global, checks every installed box that has a catalog.",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "global", Usage: "check every installed box, not the project's"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 0); err != nil {
			return err
		}
		var (
			rows []outdatedRow
			err  error
		)
		if cliCtx.Bool("global") {
			rows, err = outdatedGlobal(cliCtx.Context, store(), catalogCache{})
		} else {
			p, perr := loadProject()
			if perr != nil {
				return fmt.Errorf("%w (or check every installed box with 'den box outdated --global')", perr)
			}
			rows, err = outdatedProject(cliCtx.Context, store(), layout.DefaultHome(), p, catalogCache{})
		}
		if err != nil {
			return err
		}
		if cliCtx.Bool("json") {
			if err := printJSON(rows); err != nil {
				return err
			}
		} else {
			u := ui.New()
			if len(rows) == 0 {
				fmt.Println("There are no installed boxes.")
			}
			for _, r := range rows {
				label := r.Machine
				if label == "" {
					label = r.Box
				}
				u.Say(label, "%s", r.Message)
			}
		}
		failed := 0
		for _, r := range rows {
			if r.Status == statusError {
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("could not check %d of %d boxes (see above)", failed, len(rows))
		}
		return nil
	},
}

// Statuses of an outdatedRow.
const (
	statusOutdated     = "outdated"
	statusUpToDate     = "up to date"
	statusNotInstalled = "not installed"
	statusNoCatalog    = "no catalog"
	statusError        = "error"
)

// outdatedRow is one line of box outdated (and of its --json).
type outdatedRow struct {
	Machine    string `json:"machine,omitempty"`     // in a project
	Box        string `json:"box"`                   // the box's name
	Constraint string `json:"box_version,omitempty"` // den.hcl's box_version
	Current    string `json:"current,omitempty"`     // the version the machine uses (or would), or the newest installed
	Latest     string `json:"latest,omitempty"`      // the newest allowed version in the catalog
	Catalog    string `json:"catalog,omitempty"`
	Status     string `json:"status"` // outdated, up to date, not installed, no catalog, error
	Message    string `json:"message"`
}

// indexUse maps "project\x00machine" to the machine's index entry.
func indexUse(home layout.Home) (map[string]machine.IndexEntry, error) {
	entries, err := machine.ReadIndex(home)
	if err != nil {
		return nil, err
	}
	out := map[string]machine.IndexEntry{}
	for _, e := range entries {
		out[e.Project+"\x00"+e.Machine] = e
	}
	return out, nil
}

// outdatedProject checks each machine of p: the version it was made from
// (or the one up would pick) against the newest its catalog allows.
func outdatedProject(ctx context.Context, s *box.Store, home layout.Home, p *config.Project, cache catalogCache) ([]outdatedRow, error) {
	used, err := indexUse(home)
	if err != nil {
		return nil, err
	}
	var rows []outdatedRow
	for _, m := range p.Machines {
		row := outdatedRow{Machine: m.Name, Box: m.Box, Constraint: m.BoxVersion}
		cs, _ := fetch.ParseConstraints(m.BoxVersion) // checked when den.hcl was loaded
		e, inUse := used[p.Dir+"\x00"+m.Name]
		inUse = inUse && e.Box == m.Box && e.BoxVersion != ""
		if inUse {
			row.Current = e.BoxVersion
		} else if b, err := newestInstalled(s, m.Box, cs); err != nil {
			return nil, err
		} else if b != nil {
			row.Current = b.Version
		}
		rows = append(rows, checkRow(ctx, s, cache, row, cs, inUse, func() (string, string, error) {
			return machineCatalog(ctx, s, cache, m)
		}))
	}
	return rows, nil
}

// outdatedGlobal checks the newest installed version of every box against
// its catalog.
func outdatedGlobal(ctx context.Context, s *box.Store, cache catalogCache) ([]outdatedRow, error) {
	boxes, err := s.List()
	if err != nil {
		return nil, err
	}
	var rows []outdatedRow
	for _, name := range boxNames(boxes) {
		catalog, newest, err := boxCatalog(s, name)
		if err != nil {
			return nil, err
		}
		row := outdatedRow{Box: name, Current: newest.Version}
		rows = append(rows, checkRow(ctx, s, cache, row, nil, false, func() (string, string, error) {
			if catalog == "" {
				return "", noCatalog(newest), nil
			}
			return catalog, "", nil
		}))
	}
	return rows, nil
}

// boxNames lists the distinct names of boxes, in order.
func boxNames(boxes []*box.Box) []string {
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
func checkRow(ctx context.Context, s *box.Store, cache catalogCache, row outdatedRow, cs fetch.Constraints, inUse bool, catalogOf func() (string, string, error)) outdatedRow {
	fail := func(err error) outdatedRow {
		row.Status, row.Message = statusError, fmt.Sprintf("box %s: %v", row.Box, err)
		return row
	}
	catalog, why, err := catalogOf()
	if err != nil {
		return fail(err)
	}
	if catalog == "" {
		row.Status = statusNoCatalog
		row.Message = fmt.Sprintf("box %s %s: %s.", row.Box, orNone(row.Current), why)
		if row.Current == "" {
			row.Status = statusNotInstalled
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
	cv, _, err := cat.Select(boxProvider, cs)
	if err != nil {
		return fail(err)
	}
	row.Latest = cv.Version
	matching := ""
	if len(cs) > 0 {
		matching = fmt.Sprintf(" matching %q", cs.String())
	}
	switch {
	case row.Current == "":
		row.Status = statusNotInstalled
		row.Message = fmt.Sprintf("box %s is not installed; the newest version%s is %s ('den up' or 'den box update' adds it).", row.Box, matching, cv.Version)
	case newerThan(cv.Version, row.Current):
		row.Status = statusOutdated
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
		row.Status = statusUpToDate
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

// newerThan reports whether the catalog version v is newer than the
// installed version installed. As in the store's order, a version fetch
// cannot parse is older than any it can.
func newerThan(v, installed string) bool {
	a, err := fetch.ParseVersion(v)
	if err != nil {
		return false
	}
	b, err := fetch.ParseVersion(installed)
	return err != nil || fetch.Compare(a, b) > 0
}

var boxUpdateCommand = &cli.Command{
	Name:  "update",
	Usage: "add the newest allowed version of the project's boxes (or of one box) from their catalogs",
	Description: "In a project, adds for each machine's box the newest catalog version that box_version allows. Machines keep\n" +
		"the version they were made from until 'den destroy' and 'den up', as in Vagrant. With --box, updates that installed\n" +
		"box from the catalog it was added from.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "box", Usage: "update the installed box `NAME` (anywhere, not the project's)"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 0); err != nil {
			return err
		}
		u := ui.New()
		if name := cliCtx.String("box"); name != "" {
			_, err := updateBox(cliCtx.Context, u, store(), name)
			return err
		}
		p, err := loadProject()
		if err != nil {
			return fmt.Errorf("%w (or update one installed box with 'den box update --box NAME')", err)
		}
		return updateProject(cliCtx.Context, u, store(), layout.DefaultHome(), p)
	},
}

// updateBox adds the newest version of the installed box name from the
// catalog it came from.
func updateBox(ctx context.Context, u *ui.UI, s *box.Store, name string) (*box.Box, error) {
	if err := box.CheckName(name); err != nil {
		return nil, usageError{err}
	}
	catalog, newest, err := boxCatalog(s, name)
	if err != nil {
		return nil, err
	}
	if newest == nil {
		_, err := s.Get(name, "")
		return nil, err
	}
	if catalog == "" {
		return nil, fmt.Errorf("box %q has no catalog to update from (%s); add a newer version with 'den box add'", name, strings.TrimPrefix(noCatalog(newest), "no catalog: "))
	}
	u.Say(name, "Checking catalog %s for a newer version...", catalog)
	before := installedSet(s, name)
	b, err := addBox(ctx, u, s, addRequest{Name: name, Source: catalog, Reuse: true})
	if err != nil {
		return nil, err
	}
	if before[b.Version] {
		u.Say(name, "Box %s %s, the newest version in its catalog, is installed; nothing to update.", name, b.Version)
	}
	return b, nil
}

// updateProject adds, for each machine, the newest version of its box that
// box_version allows, and says which machines keep an older one.
func updateProject(ctx context.Context, u *ui.UI, s *box.Store, home layout.Home, p *config.Project) error {
	used, err := indexUse(home)
	if err != nil {
		return err
	}
	cache := catalogCache{}
	failed := 0
	for _, m := range p.Machines {
		cs, _ := fetch.ParseConstraints(m.BoxVersion) // checked when den.hcl was loaded
		catalog, why, err := machineCatalog(ctx, s, cache, m)
		if err != nil {
			u.Warn(m.Name, "box %s: %v", m.Box, err)
			failed++
			continue
		}
		if catalog == "" {
			u.Say(m.Name, "Box %s: %s; nothing to update.", m.Box, why)
			continue
		}
		before := installedSet(s, m.Box)
		b, err := addBox(ctx, u, s, addRequest{Name: m.Box, Source: catalog, Constraints: cs, Reuse: true})
		if err != nil {
			u.Warn(m.Name, "box %s: %v", m.Box, err)
			failed++
			continue
		}
		if before[b.Version] {
			u.Say(m.Name, "Box %s %s is the newest version%s; up to date.", b.Name, b.Version, matchingNote(cs))
		}
		if e, ok := used[p.Dir+"\x00"+m.Name]; ok && e.Box == b.Name && e.BoxVersion != "" && e.BoxVersion != b.Version {
			u.Say(m.Name, "The machine was made from %s %s and keeps using it until 'den destroy' and 'den up' (as in Vagrant); 'den box prune' removes versions no machine uses.", e.Box, e.BoxVersion)
		}
	}
	if failed > 0 {
		return fmt.Errorf("could not update %d of %d machines' boxes (see above)", failed, len(p.Machines))
	}
	return nil
}

// matchingNote is ` matching "CONSTRAINTS"`, or "" for none.
func matchingNote(cs fetch.Constraints) string {
	if len(cs) == 0 {
		return ""
	}
	return fmt.Sprintf(" matching %q", cs.String())
}

var boxPruneCommand = &cli.Command{
	Name:  "prune",
	Usage: "remove old box versions, keeping the newest and every version a machine was made from",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would be removed, remove nothing"},
		&cli.StringFlag{Name: "name", Usage: "prune only the box `NAME`"},
		&cli.BoolFlag{Name: "keep-active-boxes", Value: true, Usage: "keep versions machines were made from (the default; =false needs --force)"},
		&cli.BoolFlag{Name: "force", Usage: "with --keep-active-boxes=false, remove versions machines use (they will not start again)"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 0); err != nil {
			return err
		}
		keep := cliCtx.Bool("keep-active-boxes")
		if !keep && !cliCtx.Bool("force") {
			return usageError{errors.New("--keep-active-boxes=false removes versions that machines were made from, which then cannot start; add --force to do that")}
		}
		entries, err := machine.ReadIndex(layout.DefaultHome())
		if err != nil {
			return err
		}
		return pruneBoxes(ui.New(), store(), entries, pruneOptions{name: cliCtx.String("name"), dryRun: cliCtx.Bool("dry-run"), keepActive: keep})
	},
}

// pruneOptions tune pruneBoxes.
type pruneOptions struct {
	name       string // only this box; "" = every box
	dryRun     bool
	keepActive bool // keep the versions machines were made from
}

// pruneBoxes removes every version of each box but the newest, keeping
// the versions the index's machines were made from (with keepActive).
func pruneBoxes(u *ui.UI, s *box.Store, entries []machine.IndexEntry, opts pruneOptions) error {
	var names []string
	if opts.name != "" {
		if _, err := s.Get(opts.name, ""); err != nil {
			return err
		}
		names = []string{opts.name}
	} else {
		boxes, err := s.List()
		if err != nil {
			return err
		}
		names = boxNames(boxes)
	}
	removed := 0
	for _, name := range names {
		versions, err := s.Versions(name)
		if err != nil {
			return err
		}
		users := map[string][]string{} // version -> machines
		var unknown []string           // machines whose version the index does not say
		for _, e := range entries {
			if e.Box != name {
				continue
			}
			who := fmt.Sprintf("machine %s of %s", e.Machine, e.Project)
			if e.BoxVersion == "" {
				unknown = append(unknown, who)
			} else {
				users[e.BoxVersion] = append(users[e.BoxVersion], who)
			}
		}
		for i, b := range versions {
			switch {
			case i == len(versions)-1:
				u.Say(name, "Keeping %s (the newest).", b.Version)
				continue
			case opts.keepActive && len(users[b.Version]) > 0:
				u.Say(name, "Keeping %s (in use by %s).", b.Version, strings.Join(users[b.Version], ", "))
				continue
			case opts.keepActive && len(unknown) > 0:
				u.Say(name, "Keeping %s (%s uses this box and the index does not say which version).", b.Version, strings.Join(unknown, ", "))
				continue
			}
			if opts.dryRun {
				u.Say(name, "Would remove %s (dry run).", b.Version)
				removed++
				continue
			}
			if err := s.Remove(name, b.Version); err != nil {
				return err
			}
			u.Say(name, "Removed %s.", b.Version)
			removed++
		}
	}
	if removed == 0 {
		fmt.Fprintln(u.Out, "Nothing to prune.")
	}
	return nil
}
