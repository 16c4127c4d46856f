package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
)

var globalStatusCommand = &cli.Command{
	Name:  "global-status",
	Usage: "list every den machine of this DEN_HOME, in every project (from den's index; no ssh)",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.BoolFlag{Name: "prune", Usage: "drop entries whose project folder or container is gone"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 0); err != nil {
			return err
		}
		env, err := newEnv()
		if err != nil {
			return err
		}
		if cliCtx.Bool("json") {
			env = env.WithReporter(&ui.UI{Out: os.Stderr, Err: os.Stderr}) // stdout is for the JSON alone
		}
		all, err := env.GlobalStatus(cliCtx.Context)
		if err != nil {
			return err
		}
		if cliCtx.Bool("prune") {
			var stale []machine.GlobalEntry
			for _, g := range all {
				if g.Stale != "" {
					stale = append(stale, g)
				}
			}
			dropped, err := env.PruneGlobal(cliCtx.Context, stale)
			for _, d := range dropped {
				env.UI.Say(d.Name, "Pruned %s (%s): %s.", d.Container, d.Directory, d.Stale)
				if d.ContainerExists {
					env.UI.Warn(d.Name, "container %s still exists and den can no longer destroy it; remove it with:\n  %s", d.Container, d.RemoveHint)
				}
			}
			if err != nil {
				return err
			}
			if all, err = env.GlobalStatus(cliCtx.Context); err != nil {
				return err
			}
		}
		if cliCtx.Bool("json") {
			return printJSON(all)
		}
		printGlobal(all, env.Home.Path(), cliCtx.Bool("prune"))
		return nil
	},
}

// printGlobal prints Vagrant's global-status table, with den's address.
func printGlobal(all []machine.GlobalEntry, home string, pruned bool) {
	if len(all) == 0 {
		fmt.Printf("There are no den machines on this host (DEN_HOME %s).\n", home)
		return
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
	fmt.Fprintln(tw, "id\tname\tprovider\tstate\tautostart\tdirectory\taddress")
	for _, g := range all {
		auto := "no"
		if g.Autostart {
			auto = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Name, g.Provider, g.State, auto, g.Directory, g.Address)
	}
	tw.Flush()
	lines := strings.SplitAfterN(b.String(), "\n", 2)
	width := len(lines[0]) - 1
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		width = max(width, len(strings.TrimRight(l, " ")))
	}
	fmt.Print(lines[0])
	fmt.Println(strings.Repeat("-", width))
	fmt.Print(lines[1])
	fmt.Println()
	fmt.Printf("The above shows every den machine of DEN_HOME %s, from den's\n", home)
	fmt.Println("index and each container's state.")
	if !pruned {
		fmt.Println("Run 'den global-status --prune' to drop entries whose project")
		fmt.Println("folder or container is gone.")
	}
	fmt.Println("To act on a machine, run den in its directory, or 'den -C DIRECTORY ...'.")
}
