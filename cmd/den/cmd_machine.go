package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/machine"
)

// provisionFlags are up's and reload's provisioning flags.
var provisionFlags = []cli.Flag{
	&cli.BoolFlag{Name: "provision", Usage: "run every provisioner, even those that ran before"},
	&cli.BoolFlag{Name: "no-provision", Usage: "run no provisioner"},
	&cli.StringSliceFlag{Name: "provision-with", Usage: "run only the provisioner called `NAME` (repeatable)"},
}

// upOptions reads provisionFlags.
func upOptions(cliCtx *cli.Context) (machine.UpOptions, error) {
	opts := machine.UpOptions{With: cliCtx.StringSlice("provision-with")}
	switch {
	case cliCtx.Bool("provision") && cliCtx.Bool("no-provision"):
		return opts, usageError{fmt.Errorf("--provision and --no-provision exclude each other")}
	case len(opts.With) > 0 && cliCtx.Bool("no-provision"):
		return opts, usageError{fmt.Errorf("--provision-with and --no-provision exclude each other")}
	case cliCtx.Bool("provision"):
		opts.Provision = machine.ProvisionForce
	case cliCtx.Bool("no-provision"):
		opts.Provision = machine.ProvisionNever
	}
	return opts, nil
}

var upCommand = &cli.Command{
	Name:      "up",
	Usage:     "create and start machines, wait until ssh answers, provision them",
	ArgsUsage: "[MACHINE...]",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "no-parallel", Usage: "bring machines up one after the other"},
	}, provisionFlags...),
	Action: func(cliCtx *cli.Context) error {
		return bootMachines(cliCtx, !cliCtx.Bool("no-parallel"), func(env *machine.Env, m *machine.Machine, opts machine.UpOptions) error {
			return env.Up(cliCtx.Context, m, opts)
		})
	},
}

var reloadCommand = &cli.Command{
	Name:      "reload",
	Usage:     "halt and start machines again with the current den.hcl, keeping their disks",
	ArgsUsage: "[MACHINE...]",
	Flags: append([]cli.Flag{
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long a clean shutdown may take"},
	}, provisionFlags...),
	Action: func(cliCtx *cli.Context) error {
		return bootMachines(cliCtx, true, func(env *machine.Env, m *machine.Machine, opts machine.UpOptions) error {
			return env.Reload(cliCtx.Context, m, opts, cliCtx.Duration("timeout"))
		})
	},
}

// bootMachines is up's and reload's common part: it reads the provisioning
// flags, reserves every machine's address before any boots (so each one's
// /etc/hosts names all the others from the start) and runs boot for each
// selected machine.
func bootMachines(cliCtx *cli.Context, parallel bool, boot func(*machine.Env, *machine.Machine, machine.UpOptions) error) error {
	opts, err := upOptions(cliCtx)
	if err != nil {
		return err
	}
	p, ms, env, err := projectMachines(cliCtx)
	if err != nil {
		return err
	}
	if len(p.Machines) > 1 {
		if err := env.Reserve(cliCtx.Context, p); err != nil {
			return err
		}
	}
	return eachMachine(ms, parallel, func(m *machine.Machine) error { return boot(env, m, opts) })
}

var provisionCommand = &cli.Command{
	Name:      "provision",
	Usage:     "run the provisioners of running machines again",
	ArgsUsage: "[MACHINE...]",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "provision-with", Usage: "run only the provisioner called `NAME` (repeatable)"},
	},
	Action: func(cliCtx *cli.Context) error {
		_, ms, env, err := projectMachines(cliCtx)
		if err != nil {
			return err
		}
		return eachMachine(ms, false, func(m *machine.Machine) error {
			lk, err := m.Lock(cliCtx.Context, "den provision")
			if err != nil {
				return err
			}
			defer lk.Unlock()
			return env.Provision(cliCtx.Context, m, machine.ProvisionOptions{Only: cliCtx.StringSlice("provision-with"), Force: true})
		})
	},
}

// projectMachines loads den.hcl, picks the machines the arguments name (all
// without arguments) and wires the environment.
func projectMachines(cliCtx *cli.Context) (*config.Project, []*machine.Machine, *machine.Env, error) {
	return machinesOf(cliCtx.Args().Slice())
}

// machinesOf loads den.hcl, picks the machines names names (all without
// names) and wires the environment.
func machinesOf(names []string) (*config.Project, []*machine.Machine, *machine.Env, error) {
	p, ms, err := selectedMachines(names)
	if err != nil {
		return nil, nil, nil, err
	}
	env, err := newEnv()
	if err != nil {
		return nil, nil, nil, err
	}
	return p, ms, env, nil
}

// selectedMachines loads den.hcl and picks the machines names names (all
// without names).
func selectedMachines(names []string) (*config.Project, []*machine.Machine, error) {
	p, err := loadProject()
	if err != nil {
		return nil, nil, err
	}
	ms, err := selectMachines(p, names)
	if err != nil {
		return nil, nil, err
	}
	return p, ms, nil
}

// projectMachine is projectMachines for commands on one machine: the one
// the argument names, or the project's only one.
func projectMachine(cliCtx *cli.Context) (*machine.Machine, *machine.Env, error) {
	p, err := loadProject()
	if err != nil {
		return nil, nil, err
	}
	m, err := oneMachine(p, cliCtx.Args().Slice())
	if err != nil {
		return nil, nil, err
	}
	env, err := newEnv()
	if err != nil {
		return nil, nil, err
	}
	return m, env, nil
}

// nameMachine prefixes err with the machine's name unless it names the
// machine already.
func nameMachine(m *machine.Machine, err error) error {
	if strings.Contains(err.Error(), fmt.Sprintf("machine %q", m.Name())) {
		return err
	}
	return fmt.Errorf("machine %q: %w", m.Name(), err)
}

// eachMachine runs fn for every machine, all at once when parallel, and
// returns every failure, each naming its machine. One machine's failure
// does not stop the others.
func eachMachine(ms []*machine.Machine, parallel bool, fn func(*machine.Machine) error) error {
	errs := make([]error, len(ms))
	run := func(i int) {
		if err := fn(ms[i]); err != nil {
			errs[i] = nameMachine(ms[i], err)
		}
	}
	if !parallel || len(ms) < 2 {
		for i := range ms {
			run(i)
			if errs[i] != nil && errors.Is(errs[i], context.Canceled) {
				break
			}
		}
		return errors.Join(errs...)
	}
	var wg sync.WaitGroup
	for i := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

var statusCommand = &cli.Command{
	Name:      "status",
	Usage:     "show the state of the project's machines",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
	Action: func(cliCtx *cli.Context) error {
		_, ms, env, err := projectMachines(cliCtx)
		if err != nil {
			return err
		}
		var all []machine.Status
		for _, m := range ms {
			s, err := env.Status(cliCtx.Context, m)
			if err != nil {
				return err
			}
			all = append(all, s)
		}
		if cliCtx.Bool("json") {
			return printJSON(all)
		}
		fmt.Println("Current machine states:")
		fmt.Println()
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, s := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.State, s.Address)
		}
		return tw.Flush()
	},
}

var haltCommand = &cli.Command{
	Name:      "halt",
	Usage:     "stop machines (clean shutdown, then force after --timeout)",
	ArgsUsage: "[MACHINE...]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill at once, no clean shutdown"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long a clean shutdown may take"},
	},
	Action: func(cliCtx *cli.Context) error {
		_, ms, env, err := projectMachines(cliCtx)
		if err != nil {
			return err
		}
		return eachMachine(ms, false, func(m *machine.Machine) error {
			return env.Halt(cliCtx.Context, m, cliCtx.Bool("force"), cliCtx.Duration("timeout"))
		})
	},
}

var destroyCommand = &cli.Command{
	Name:      "destroy",
	Usage:     "stop and delete machines (the project folder is never touched)",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"}},
	Action: func(cliCtx *cli.Context) error {
		_, ms, env, err := projectMachines(cliCtx)
		if err != nil {
			return err
		}
		return eachMachine(ms, false, func(m *machine.Machine) error {
			if !cliCtx.Bool("force") {
				ok, err := confirm(fmt.Sprintf("Destroy machine %q and its disk? The project folder stays. [y/N] ", m.Name()))
				if err != nil || !ok {
					if err == nil {
						env.UI.Say(m.Name(), "Not destroyed.")
					}
					return err
				}
			}
			return env.Destroy(cliCtx.Context, m)
		})
	},
}

// confirm asks on the terminal; without one it refuses rather than hangs.
func confirm(question string) (bool, error) {
	if !isTerminal(os.Stdin) {
		return false, usageError{fmt.Errorf("destroy needs confirmation and there is no terminal to ask on: pass -f to destroy without asking")}
	}
	fmt.Print(question)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return false, nil
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}
