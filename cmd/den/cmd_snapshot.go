package main

import (
	"fmt"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

var snapshotCommand = &cli.Command{
	Name:  "snapshot",
	Usage: "save and restore a machine's filesystem (what it changed on top of its box)",
	Subcommands: []*cli.Command{
		snapshotSaveCommand,
		snapshotRestoreCommand,
		snapshotListCommand,
		snapshotDeleteCommand,
		snapshotPushCommand,
		snapshotPopCommand,
	},
}

// restoreFlags are restore's and pop's: --no-start and up's provisioning
// flags, as in Vagrant.
var restoreFlags = append([]cli.Flag{
	&cli.BoolFlag{Name: "no-start", Usage: "leave the machine stopped after restoring"},
	noTriggersFlag,
}, provisionFlags...)

// restoreOptions reads restoreFlags.
func restoreOptions(cliCtx *cli.Context) (machine.RestoreOptions, error) {
	up, err := upOptions(cliCtx)
	if err != nil {
		return machine.RestoreOptions{}, err
	}
	opts := machine.RestoreOptions{NoStart: cliCtx.Bool("no-start"), Up: up}
	if opts.NoStart && (cliCtx.Bool("provision") || len(up.With) > 0) {
		return opts, usageError{fmt.Errorf("--no-start and provisioning exclude each other: provisioners run on a started machine")}
	}
	return opts, nil
}

var snapshotSaveCommand = &cli.Command{
	Name:      "save",
	Usage:     "save a snapshot (a running machine is frozen for the copy and keeps running)",
	ArgsUsage: "[MACHINE] NAME",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace a snapshot of that name"}, noTriggersFlag},
	Action: func(cliCtx *cli.Context) error {
		ms, env, snap, err := snapshotArgs(cliCtx)
		if err != nil {
			return err
		}
		return env.SnapshotSave(cliCtx.Context, ms, snap, cliCtx.Bool("force"))
	},
}

var snapshotRestoreCommand = &cli.Command{
	Name:      "restore",
	Usage:     "bring a machine's filesystem back to a snapshot (stops it, then starts it again)",
	ArgsUsage: "[MACHINE] NAME",
	Flags:     restoreFlags,
	Action: func(cliCtx *cli.Context) error {
		opts, err := restoreOptions(cliCtx)
		if err != nil {
			return err
		}
		ms, env, snap, err := snapshotArgs(cliCtx)
		if err != nil {
			return err
		}
		return env.SnapshotRestore(cliCtx.Context, ms, snap, opts)
	},
}

var snapshotDeleteCommand = &cli.Command{
	Name:      "delete",
	Usage:     "delete a snapshot",
	ArgsUsage: "[MACHINE] NAME",
	Flags:     []cli.Flag{noTriggersFlag},
	Action: func(cliCtx *cli.Context) error {
		ms, env, snap, err := snapshotArgs(cliCtx)
		if err != nil {
			return err
		}
		return env.SnapshotDelete(cliCtx.Context, ms, snap)
	},
}

var snapshotPushCommand = &cli.Command{
	Name:      "push",
	Usage:     "save a snapshot with a name of its own, for 'snapshot pop'",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{noTriggersFlag},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.SnapshotPush(cliCtx.Context, ms)
	},
}

var snapshotPopCommand = &cli.Command{
	Name:      "pop",
	Usage:     "restore the newest pushed snapshot and delete it",
	ArgsUsage: "[MACHINE...]",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "no-delete", Usage: "keep the snapshot after restoring it"},
	}, restoreFlags...),
	Action: func(cliCtx *cli.Context) error {
		opts, err := restoreOptions(cliCtx)
		if err != nil {
			return err
		}
		opts.NoDelete = cliCtx.Bool("no-delete")
		ms, env, err := projectMachines(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.SnapshotPop(cliCtx.Context, ms, opts)
	},
}

// snapshotArgs handles "[MACHINE] NAME": with one argument the snapshot
// name applies to every machine of the project (as in Vagrant).
func snapshotArgs(cliCtx *cli.Context) ([]*machine.Machine, *machine.Env, string, error) {
	if err := checkArgs(cliCtx, 1, 2); err != nil {
		return nil, nil, "", err
	}
	args := cliCtx.Args().Slice()
	snap := args[len(args)-1]
	if err := provider.CheckSnapshotName(snap); err != nil {
		return nil, nil, "", usageError{err}
	}
	ms, env, err := machinesOf(args[:len(args)-1], withOrphans)
	if err != nil {
		return nil, nil, "", err
	}
	return ms, forCaller(cliCtx, env), snap, nil
}

var snapshotListCommand = &cli.Command{
	Name:      "list",
	Usage:     "list snapshots with their time and size",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		rows, err := env.SnapshotList(cliCtx.Context, ms)
		if err != nil {
			return err
		}
		if cliCtx.Bool("json") {
			return printJSON(rows)
		}
		printSnapshots(env.UI, ms, rows)
		return nil
	},
}

func printSnapshots(u ui.Reporter, ms []*machine.Machine, rows []machine.SnapshotRow) {
	for _, m := range ms {
		if !slices.ContainsFunc(rows, func(r machine.SnapshotRow) bool { return r.Machine == m.Name() }) {
			u.Say(m.Name(), "No snapshots have been taken yet!")
		}
	}
	if len(rows) == 0 {
		return
	}
	several := len(ms[0].Project.Machines) > 1
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if several {
		fmt.Fprint(tw, "MACHINE\t")
	}
	fmt.Fprintln(tw, "NAME\tCREATED\tSIZE")
	for _, r := range rows {
		if several {
			fmt.Fprintf(tw, "%s\t", r.Machine)
		}
		size := ui.Bytes(r.Size)
		if r.Shared {
			size = "shared" // copy-on-write: its blocks are the machine's until either changes
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Created.Local().Format("2006-01-02 15:04:05"), size)
	}
	tw.Flush()
}
