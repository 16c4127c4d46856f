package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
)

var upCommand = &cli.Command{
	Name:      "up",
	Usage:     "create and start machines, and wait until ssh answers",
	ArgsUsage: "[MACHINE...]",
	Action: func(cliCtx *cli.Context) error {
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
		for _, m := range ms {
			if err := env.Up(cliCtx.Context, m, machine.UpOptions{}); err != nil {
				return fmt.Errorf("machine %q: %w", m.Name(), err)
			}
		}
		return nil
	},
}

var statusCommand = &cli.Command{
	Name:      "status",
	Usage:     "show the state of the project's machines",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
	Action: func(cliCtx *cli.Context) error {
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
		var all []machine.Status
		for _, m := range ms {
			s, err := env.Status(cliCtx.Context, m)
			if err != nil {
				return err
			}
			all = append(all, s)
		}
		if cliCtx.Bool("json") {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(all)
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
		for _, m := range ms {
			if err := env.Halt(cliCtx.Context, m, cliCtx.Bool("force"), cliCtx.Duration("timeout")); err != nil {
				return fmt.Errorf("machine %q: %w", m.Name(), err)
			}
		}
		return nil
	},
}

var destroyCommand = &cli.Command{
	Name:      "destroy",
	Usage:     "stop and delete machines (the project folder is never touched)",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"}},
	Action: func(cliCtx *cli.Context) error {
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
			if err := env.Destroy(cliCtx.Context, m); err != nil {
				return fmt.Errorf("machine %q: %w", m.Name(), err)
			}
		}
		return nil
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
