package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/forward"
	"github.com/den-dev/den/internal/machine"
)

// forwardCommand is the port forwarder den starts beside a running machine
// (hidden: den runs it, people don't). It binds every rule's host port,
// writes its pidfile (which tells den it is ready) and forwards until it is
// sent SIGTERM at halt.
var forwardCommand = &cli.Command{
	Name:      machine.ForwardCommand,
	Hidden:    true,
	Usage:     "forward host ports to a machine (run by den up)",
	ArgsUsage: "RULE...",
	Flags:     []cli.Flag{&cli.StringFlag{Name: "pidfile", Required: true, Usage: "write the pid to `FILE` once listening"}},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, -1); err != nil {
			return err
		}
		return forward.Main(cliCtx.Context, cliCtx.String("pidfile"), cliCtx.Args().Slice(), os.Stderr)
	},
}
