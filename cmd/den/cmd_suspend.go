package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
)

var suspendCommand = &cli.Command{
	Name:      "suspend",
	Usage:     "freeze machines where they are (freezer cgroup); 'den resume' wakes them",
	ArgsUsage: "[MACHINE...]",
	Action: func(cliCtx *cli.Context) error {
		return forMachines(cliCtx, func(ctx context.Context, env *machine.Env, m *machine.Machine) error {
			return env.Suspend(ctx, m)
		})
	},
}

var resumeCommand = &cli.Command{
	Name:      "resume",
	Usage:     "thaw suspended machines and wait until ssh answers",
	ArgsUsage: "[MACHINE...]",
	Action: func(cliCtx *cli.Context) error {
		return forMachines(cliCtx, func(ctx context.Context, env *machine.Env, m *machine.Machine) error {
			return env.Resume(ctx, m)
		})
	},
}

// forMachines runs fn for the machines named in the arguments (all of the
// project's without arguments), one after the other. A failure does not
// stop the others; every failure is returned, each naming its machine.
func forMachines(cliCtx *cli.Context, fn func(context.Context, *machine.Env, *machine.Machine) error) error {
	_, ms, env, err := projectMachines(cliCtx)
	if err != nil {
		return err
	}
	return eachMachine(ms, false, func(m *machine.Machine) error { return fn(cliCtx.Context, env, m) })
}
