package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/fetch"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/internal/version"
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

var boxAddCommand = &cli.Command{
	Name:      "add",
	Usage:     "add a box from a file, an http(s) URL or a Vagrant catalog",
	ArgsUsage: "[NAME] FILE|URL",
	Description: "den box add NAME FILE      a box file (tar with gzip, xz or zstd; vagrant-lxc's layout)\n" +
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
		req := box.Request{Source: cliCtx.Args().Get(0), Version: cliCtx.String("version"), Force: cliCtx.Bool("force"), MaxSize: maxSize(cliCtx)}
		if cliCtx.NArg() == 2 {
			req.Name, req.Source = cliCtx.Args().Get(0), cliCtx.Args().Get(1)
			if err := box.CheckName(req.Name); err != nil {
				return usageError{err}
			}
		}
		var err error
		if req.Constraints, err = version.ParseConstraints(cliCtx.String("box-version")); err != nil {
			return usageError{fmt.Errorf("--box-version: %w", err)}
		}
		if req.Checksum, err = fetch.ParseChecksum(cliCtx.String("checksum")); err != nil {
			return usageError{fmt.Errorf("--checksum: %w", err)}
		}
		env, err := newEnv()
		if err != nil {
			return err
		}
		_, err = env.Store.Acquire(cliCtx.Context, env.UI, req)
		return usage(err)
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
		env, err := newEnv()
		if err != nil {
			return err
		}
		boxes, err := env.Store.List()
		if err != nil {
			return err
		}
		rows := []boxRow{}
		for _, b := range boxes {
			size, _ := b.Size()
			rows = append(rows, boxRow{Name: b.Name, Version: b.Version, Size: size, Created: b.Created, User: b.Meta.LoginUser(), Path: b.Dir})
		}
		return printBoxes(cliCtx, rows)
	},
}

// printBoxes prints `den box list`: JSON, or a table.
func printBoxes(cliCtx *cli.Context, rows []boxRow) error {
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
		name, ver := cliCtx.Args().First(), cliCtx.String("version")
		env, err := newEnv()
		if err != nil {
			return err
		}
		if err := env.RemoveBox(cliCtx.Context, name, ver, cliCtx.Bool("force")); err != nil {
			return err
		}
		if ver != "" {
			fmt.Printf("Removed box %s version %s.\n", name, ver)
		} else {
			fmt.Printf("Removed box %s (every version).\n", name)
		}
		return nil
	},
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
		env, err := newEnv()
		if err != nil {
			return err
		}
		_, err = env.Store.Build(cliCtx.Context, env.UI, name, opts, cliCtx.String("output"), cliCtx.String("compression"))
		return usage(err)
	},
}

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
		env, err := newEnv()
		if err != nil {
			return err
		}
		var rows []box.OutdatedRow
		if cliCtx.Bool("global") {
			rows, err = env.Store.OutdatedInstalled(cliCtx.Context)
		} else {
			p, perr := loadProject()
			if perr != nil {
				return fmt.Errorf("%w (or check every installed box with 'den box outdated --global')", perr)
			}
			wants, werr := env.BoxWants(p)
			if werr != nil {
				return werr
			}
			rows, err = env.Store.Outdated(cliCtx.Context, wants)
		}
		if err != nil {
			return err
		}
		if cliCtx.Bool("json") {
			if err := printJSON(rows); err != nil {
				return err
			}
		} else {
			if len(rows) == 0 {
				fmt.Println("There are no installed boxes.")
			}
			for _, r := range rows {
				label := r.Machine
				if label == "" {
					label = r.Box
				}
				env.UI.Say(label, "%s", r.Message)
			}
		}
		failed := 0
		for _, r := range rows {
			if r.Status == box.StatusError {
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("could not check %d of %d boxes (see above)", failed, len(rows))
		}
		return nil
	},
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
		env, err := newEnv()
		if err != nil {
			return err
		}
		if name := cliCtx.String("box"); name != "" {
			_, err := env.Store.Update(cliCtx.Context, env.UI, name)
			return usage(err)
		}
		p, err := loadProject()
		if err != nil {
			return fmt.Errorf("%w (or update one installed box with 'den box update --box NAME')", err)
		}
		wants, err := env.BoxWants(p)
		if err != nil {
			return err
		}
		return env.Store.UpdateWants(cliCtx.Context, env.UI, wants)
	},
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
		env, err := newEnv()
		if err != nil {
			return err
		}
		n, err := env.PruneBoxes(cliCtx.Context, box.PruneOptions{Name: cliCtx.String("name"), DryRun: cliCtx.Bool("dry-run"), KeepActive: keep})
		if err == nil && n == 0 {
			fmt.Println("Nothing to prune.")
		}
		return err
	},
}
