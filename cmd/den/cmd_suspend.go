package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
	p, err := loadProject()
	if err != nil {
		return err
	}
	ms, err := selectMachines(p, cliCtx.Args().Slice())
	if err != nil {
		return err
	}
	env, err := newEnv()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range ms {
		if err := fn(cliCtx.Context, env, m); err != nil {
			errs = append(errs, nameMachine(m, err))
			if errors.Is(err, context.Canceled) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// nameMachine prefixes err with the machine's name unless it names the
// machine already.
func nameMachine(m *machine.Machine, err error) error {
	if strings.Contains(err.Error(), fmt.Sprintf("machine %q", m.Name())) {
		return err
	}
	return fmt.Errorf("machine %q: %w", m.Name(), err)
}
