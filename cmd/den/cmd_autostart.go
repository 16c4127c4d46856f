package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
)

var autostartCommand = &cli.Command{
	Name:  "autostart",
	Usage: "bring up every machine of this DEN_HOME marked autostart = true (at boot); --stop halts them (at shutdown)",
	Description: `Run at boot by den's systemd unit (dist/den-autostart.service) or init script
(dist/den-autostart.init), and by hand. The projects come from DEN_HOME's index
(global-status) and each one's den.hcl says which of its machines autostart;
machines that exist are started, never made. Machines of one autostart_order
come up together, the lowest order first, autostart_delay seconds apart;
--stop halts them in the reverse order. Host triggers run as the owner of
each project's den.hcl.`,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "stop", Usage: "halt the autostart machines instead (the highest autostart_order first)"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "with --stop: how long a clean shutdown may take"},
		&cli.BoolFlag{Name: "json", Usage: "print what was done as JSON"},
		noTriggersFlag,
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 0); err != nil {
			return err
		}
		env, err := newEnv()
		if err != nil {
			return err
		}
		env = forCaller(cliCtx, env)
		rows, err := env.Autostart(cliCtx.Context, machine.AutostartOptions{Stop: cliCtx.Bool("stop"), Timeout: cliCtx.Duration("timeout")})
		if cliCtx.Bool("json") {
			if jerr := printJSON(rows); jerr != nil {
				return jerr
			}
			return err
		}
		if len(rows) == 0 && err == nil {
			fmt.Printf("No machine of DEN_HOME %s is marked autostart = true.\n", env.Home.Path())
		}
		return err
	},
}
