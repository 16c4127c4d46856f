package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

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
	opts := machine.UpOptions{With: cliCtx.StringSlice("provision-with"), Parallel: true}
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
		noTriggersFlag,
	}, provisionFlags...),
	Action: func(cliCtx *cli.Context) error {
		opts, err := upOptions(cliCtx)
		if err != nil {
			return err
		}
		opts.Parallel = !cliCtx.Bool("no-parallel")
		ms, env, err := projectMachines(cliCtx, onlyConfigured)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.Up(cliCtx.Context, ms, opts)
	},
}

var reloadCommand = &cli.Command{
	Name:      "reload",
	Usage:     "halt and start machines again with the current den.hcl, keeping their disks",
	ArgsUsage: "[MACHINE...]",
	Flags: append([]cli.Flag{
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long a clean shutdown may take"},
		noTriggersFlag,
	}, provisionFlags...),
	Action: func(cliCtx *cli.Context) error {
		opts, err := upOptions(cliCtx)
		if err != nil {
			return err
		}
		ms, env, err := projectMachines(cliCtx, onlyConfigured)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.Reload(cliCtx.Context, ms, opts, cliCtx.Duration("timeout"))
	},
}

var provisionCommand = &cli.Command{
	Name:      "provision",
	Usage:     "run the provisioners of running machines again",
	ArgsUsage: "[MACHINE...]",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "provision-with", Usage: "run only the provisioner called `NAME` (repeatable)"},
		noTriggersFlag,
	},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, onlyConfigured)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.Provision(cliCtx.Context, ms, machine.ProvisionOptions{Only: cliCtx.StringSlice("provision-with"), Force: true})
	},
}

var statusCommand = &cli.Command{
	Name:      "status",
	Usage:     "show the state of the project's machines",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, fromState)
		if err != nil {
			return err
		}
		all, err := env.Status(cliCtx.Context, ms)
		if err != nil {
			return err
		}
		return printStatus(cliCtx, all)
	},
}

// printStatus prints `den status`: JSON, or a line per machine with its
// state, provider, store and isolation, address and notes.
func printStatus(cliCtx *cli.Context, all []machine.Status) error {
	if cliCtx.Bool("json") {
		return printJSON(all)
	}
	fmt.Println("Current machine states:")
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	var orphans []string
	for _, s := range all {
		var notes []string
		switch {
		case s.Orphaned:
			notes = append(notes, "orphaned: not in den.hcl ('den destroy "+s.Name+"' removes it)")
			orphans = append(orphans, s.Name)
		case s.Provisioning != "":
			notes = append(notes, "first provisioning unfinished ('den up' finishes it)")
		}
		if s.Note != "" {
			notes = append(notes, s.Note)
		}
		if s.Autostart {
			notes = append(notes, "autostart")
		}
		how := s.Provider
		if s.Location != "" {
			how += " on " + s.Location
		}
		if s.Store != "" {
			how += ", " + s.Store + " store"
		}
		switch {
		case s.Privileged:
			how += ", privileged"
		case s.IDs != "":
			how += ", unprivileged: host ids " + s.IDs
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s\t%s\n", s.Name, s.State, how, s.Address, strings.Join(notes, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(orphans) > 0 {
		fmt.Printf("\n%s recorded in .den/ but no longer in den.hcl: 'den destroy %s' removes %s.\n",
			strings.Join(orphans, ", "), strings.Join(orphans, " "), map[bool]string{true: "it", false: "them"}[len(orphans) == 1])
	}
	return nil
}

var haltCommand = &cli.Command{
	Name:      "halt",
	Usage:     "stop machines (clean shutdown, then force after --timeout)",
	ArgsUsage: "[MACHINE...]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill at once, no clean shutdown"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long a clean shutdown may take"},
		noTriggersFlag,
	},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, fromState)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		return env.Halt(cliCtx.Context, ms, cliCtx.Bool("force"), cliCtx.Duration("timeout"))
	},
}

var destroyCommand = &cli.Command{
	Name:      "destroy",
	Usage:     "stop and delete machines (the project folder is never touched)",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"}, noTriggersFlag},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, fromState)
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		var chosen []*machine.Machine
		for _, m := range ms {
			if !cliCtx.Bool("force") {
				ok, err := confirm(fmt.Sprintf("Destroy machine %q and its disk? The project folder stays. [y/N] ", m.Name()))
				if err != nil {
					return err
				}
				if !ok {
					env.UI.Say(m.Name(), "Not destroyed.")
					continue
				}
			}
			chosen = append(chosen, m)
		}
		return env.Destroy(cliCtx.Context, chosen)
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
