package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/fetch"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
)

var boxCommand = &cli.Command{
	Name:  "box",
	Usage: "manage boxes (the images machines are made from)",
	Subcommands: []*cli.Command{
		boxAddCommand,
		boxListCommand,
		boxRemoveCommand,
		boxBuildCommand,
		boxOutdatedCommand,
		boxUpdateCommand,
		boxPruneCommand,
	},
}

func store() *box.Store { return box.NewStore(layout.DefaultHome().Path()) }

var boxAddCommand = &cli.Command{
	Name:      "add",
	Usage:     "add a box from a file, an http(s) URL or a Vagrant catalog",
	ArgsUsage: "[NAME] FILE|URL",
	Description: "den box add NAME FILE      a box file (tar with gzip, xz or zstd; vagrant-lxc v3 layout)\n" +
		"den box add NAME URL       a box file over http(s)\n" +
		"den box add URL            a Vagrant catalog (JSON): the newest version for provider lxc, named as the catalog says\n" +
		"A download is checked against its checksum (the catalog's, or --checksum) before anything is unpacked.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "box-version", Usage: "from a catalog, the newest version matching `CONSTRAINT` (e.g. \">= 1.2, < 2\")"},
		&cli.StringFlag{Name: "checksum", Usage: "expected checksum of a box file, `TYPE:HEX` (sha256, sha512, sha384, sha1, md5)"},
		&cli.StringFlag{Name: "version", Usage: "store a box file as `VERSION` (default: the box's metadata, else 0)"},
		&cli.BoolFlag{Name: "force", Usage: "replace the same version if installed"},
		maxSizeFlag,
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, 2); err != nil {
			return err
		}
		req := addRequest{Source: cliCtx.Args().Get(0), Version: cliCtx.String("version"), Force: cliCtx.Bool("force"), MaxSize: maxSize(cliCtx)}
		if cliCtx.NArg() == 2 {
			req.Name, req.Source = cliCtx.Args().Get(0), cliCtx.Args().Get(1)
			if err := box.CheckName(req.Name); err != nil {
				return usageError{err}
			}
		}
		var err error
		if req.Constraints, err = fetch.ParseConstraints(cliCtx.String("box-version")); err != nil {
			return usageError{fmt.Errorf("--box-version: %w", err)}
		}
		if req.Checksum, err = fetch.ParseChecksum(cliCtx.String("checksum")); err != nil {
			return usageError{fmt.Errorf("--checksum: %w", err)}
		}
		_, err = addBox(cliCtx.Context, ui.New(), store(), req)
		return err
	},
}

type boxRow struct {
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	User    string    `json:"user"`
	Path    string    `json:"path"`
}

var boxListCommand = &cli.Command{
	Name:  "list",
	Usage: "list installed boxes",
	Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
	Action: func(cliCtx *cli.Context) error {
		boxes, err := store().List()
		if err != nil {
			return err
		}
		rows := []boxRow{}
		for _, b := range boxes {
			size, _ := b.Size()
			rows = append(rows, boxRow{Name: b.Name, Version: b.Version, Size: size, Created: b.Created, User: b.Meta.LoginUser(), Path: b.Dir})
		}
		if cliCtx.Bool("json") {
			return printJSON(rows)
		}
		if len(rows) == 0 {
			fmt.Println("There are no installed boxes. Use 'den box build debian/bookworm' or 'den box add'.")
			return nil
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tSIZE\tCREATED")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Version, ui.Bytes(r.Size), r.Created.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	},
}

var boxRemoveCommand = &cli.Command{
	Name:      "remove",
	Usage:     "remove a box (refused while a machine uses it)",
	ArgsUsage: "NAME",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "version", Usage: "remove only `VERSION` (default: all versions)"},
		&cli.BoolFlag{Name: "force", Usage: "remove even if machines use it (they will not start again)"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, 1); err != nil {
			return err
		}
		name, version := cliCtx.Args().First(), cliCtx.String("version")
		s := store()
		if _, err := s.Get(name, version); err != nil {
			return err
		}
		users, err := boxUsers(name, version)
		if err != nil {
			return err
		}
		if len(users) > 0 && !cliCtx.Bool("force") {
			return fmt.Errorf("box %q is used by %s; destroy those machines first, or pass --force", name, strings.Join(users, ", "))
		}
		if err := s.Remove(name, version); err != nil {
			return err
		}
		if version != "" {
			fmt.Printf("Removed box %s version %s.\n", name, version)
		} else {
			fmt.Printf("Removed box %s (every version).\n", name)
		}
		return nil
	},
}

// boxUsers lists the machines (from the index) made from the box.
func boxUsers(name, version string) ([]string, error) {
	home := layout.DefaultHome()
	entries, err := machine.ReadIndex(home)
	if err != nil {
		return nil, err
	}
	var users []string
	for _, e := range entries {
		if e.Box != name || (version != "" && e.BoxVersion != version) {
			continue
		}
		if _, err := os.Stat(home.Machine(e.Container)); err != nil {
			continue // the container is gone: a stale entry
		}
		users = append(users, fmt.Sprintf("%s (machine %s of %s)", e.Container, e.Machine, e.Project))
	}
	return users, nil
}

var boxBuildCommand = &cli.Command{
	Name:      "build",
	Usage:     "build a box from Debian's mirror with debootstrap (debian/bookworm, debian/trixie)",
	ArgsUsage: "NAME",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "mirror", Usage: "Debian mirror `URL`", Value: "http://deb.debian.org/debian", EnvVars: []string{"DEN_MIRROR"}},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write a box file to `FILE` instead of adding it to the store"},
		&cli.StringFlag{Name: "compression", Value: "zstd", Usage: "box file compression: zstd, gzip or xz"},
		&cli.BoolFlag{Name: "recipe-hash", Hidden: true, Usage: "print the hash of the build recipe (a cache key) and exit"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, 1); err != nil {
			return err
		}
		name := cliCtx.Args().First()
		opts, ok := box.KnownBuild(name)
		if !ok {
			return usageError{fmt.Errorf("den cannot build box %q; it builds debian/bookworm and debian/trixie", name)}
		}
		if cliCtx.Bool("recipe-hash") {
			fmt.Println(box.BuildRecipeHash())
			return nil
		}
		opts.Mirror = cliCtx.String("mirror")
		_, err := buildBox(cliCtx.Context, ui.New(), store(), name, opts, cliCtx.String("output"), cliCtx.String("compression"))
		return err
	},
}

// buildBox runs debootstrap into the store's temp area, then either moves
// the rootfs into the store or packs it into a box file at output.
func buildBox(ctx context.Context, u *ui.UI, s *box.Store, name string, opts box.BuildOptions, output, compression string) (*box.Box, error) {
	if err := host.Check(host.Need{Debootstrap: true}); err != nil {
		return nil, err
	}
	tmp, err := s.TempDir()
	if err != nil {
		return nil, err
	}
	defer fsutil.RemoveTree(tmp) // den's own temp folder under the store; never crosses a mount
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return nil, err
	}
	u.Say(name, "Building box with debootstrap (%s from %s)...", opts.Suite, opts.Mirror)
	prog := u.Progress(name, "debootstrap", 0)
	opts.Log = func(line string) { prog.Update(0, line) }
	start := time.Now()
	err = box.BuildRootfs(ctx, rootfs, opts)
	prog.Done()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	meta := box.Metadata{
		Provider: "lxc",
		Version:  box.FormatVersion,
		BuiltOn:  now.Format(time.RFC3339),
		Den:      &box.DenMetadata{Version: buildVersion(now), User: opts.User, Suite: opts.Suite, Created: now},
	}
	if meta.Den.User == "" {
		meta.Den.User = "den"
	}
	u.Say(name, "Rootfs built in %s.", time.Since(start).Round(time.Second))
	if output == "" {
		b, err := s.Import(name, meta.Den.Version, meta, rootfs)
		if err != nil {
			return nil, err
		}
		u.Say(name, "Box %s version %s is in the store.", b.Name, b.Version)
		return b, nil
	}
	comp, err := box.ParseCompression(compression)
	if err != nil {
		return nil, usageError{err}
	}
	u.Say(name, "Packing box file %s (%s)...", output, comp)
	pack := u.Progress(name, "Packing", 0)
	err = box.WriteBoxFile(ctx, output, rootfs, meta, box.PackOptions{Compression: comp, Progress: func(n int64) { pack.Update(n, "") }})
	pack.Done()
	if err != nil {
		return nil, fmt.Errorf("write box file %s: %w", output, err)
	}
	u.Say(name, "Box file written: %s. Add it with 'den box add %s %s'.", output, name, output)
	return nil, nil
}

// ensureBox returns the installed box m names: the newest installed
// version that box_version allows; else one added from box_url; else, for
// a box den knows how to build (and box_version allows a fresh build), a
// new build.
func ensureBox(ctx context.Context, env *machine.Env, m *config.Machine) (*box.Box, error) {
	cs, err := fetch.ParseConstraints(m.BoxVersion)
	if err != nil {
		return nil, boxMissing(m, err)
	}
	b, err := newestInstalled(env.Store, m.Box, cs)
	if err != nil || b != nil {
		return b, err
	}
	if m.BoxURL != "" {
		env.UI.Say(m.Name, "Box %s%s is not installed; adding it from box_url...", m.Box, matchingNote(cs))
		b, err := addBox(ctx, env.UI, env.Store, addRequest{Name: m.Box, Source: m.BoxURL, Constraints: cs, Reuse: true})
		if err != nil {
			return nil, boxMissing(m, fmt.Errorf("box_url %s: %w", m.BoxURL, err))
		}
		return b, nil
	}
	opts, known := box.KnownBuild(m.Box)
	fresh := buildVersion(time.Now())
	if known && satisfies(fresh, cs) {
		env.UI.Say(m.Name, "Box %s is not installed; building it (about a minute)...", m.Box)
		return buildBox(ctx, env.UI, env.Store, m.Box, opts, "", "")
	}
	if len(cs) == 0 {
		_, err := env.Store.Get(m.Box, "")
		return nil, boxMissing(m, err)
	}
	err = fmt.Errorf("box %q has no installed version matching box_version %q (installed: %s); add one with 'den box add URL --box-version %q', or set box_url in den.hcl", m.Box, cs.String(), env.Store.VersionList(m.Box), cs.String())
	if known {
		err = fmt.Errorf("%w ('den box build %s' would make version %s, which does not match)", err, m.Box, fresh)
	}
	return nil, boxMissing(m, err)
}

// buildVersion is the version 'den box build' gives a box built at t.
func buildVersion(t time.Time) string { return t.UTC().Format("2006.01.02.150405") }

func boxMissing(m *config.Machine, err error) error {
	r := m.BoxRange
	if r.Filename == "" {
		return err
	}
	return fmt.Errorf("%s:%d:%d: %w", r.Filename, r.Start.Line, r.Start.Column, err)
}
