package main

import (
	"github.com/urfave/cli/v2"
)

var suspendCommand = &cli.Command{
	Name:      "suspend",
	Usage:     "freeze machines where they are (freezer cgroup); 'den resume' wakes them",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{noTriggersFlag},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.Suspend(cliCtx.Context, ms)
	},
}

var resumeCommand = &cli.Command{
	Name:      "resume",
	Usage:     "thaw suspended machines and wait until ssh answers",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{noTriggersFlag},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.Resume(cliCtx.Context, ms)
	},
}
