package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/internal/ui"
)

var sshCommand = &cli.Command{
	Name:      "ssh",
	Usage:     "open a shell in a machine, or run a command with -c",
	ArgsUsage: "[MACHINE]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "command", Aliases: []string{"c"}, Usage: "run `CMD` and exit with its status"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "with -c: give the command a terminal"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 1); err != nil {
			return err
		}
		m, env, err := projectMachine(cliCtx)
		if err != nil {
			return err
		}
		client, err := env.Connect(cliCtx.Context, m)
		if err != nil {
			return err
		}
		defer client.Close()
		var status int
		cmd := cliCtx.String("command")
		if cmd != "" && !cliCtx.Bool("tty") {
			status, err = sshx.Run(cliCtx.Context, client, cmd, os.Stdin, os.Stdout, os.Stderr)
		} else {
			status, err = sshx.Shell(cliCtx.Context, client, cmd, os.Stdin, os.Stdout, os.Stderr)
		}
		if err != nil {
			return err
		}
		if status != 0 {
			return exitStatus(status)
		}
		return nil
	},
}

var sshConfigCommand = &cli.Command{
	Name:      "ssh-config",
	Usage:     "print an OpenSSH config for the machines (ssh -F, scp, rsync, IDEs)",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.StringFlag{Name: "host", Usage: "use `NAME` as the Host alias (one machine only)"}},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx)
		if err != nil {
			return err
		}
		if cliCtx.String("host") != "" && len(ms) != 1 {
			return usageError{fmt.Errorf("--host names one machine; this selects %d", len(ms))}
		}
		entries, err := env.SSHConfig(cliCtx.Context, ms, cliCtx.String("host"))
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return fmt.Errorf("no machine of this project is created: run 'den up' first")
		}
		for i, e := range entries {
			if i > 0 {
				fmt.Println()
			}
			if err := sshx.WriteConfig(os.Stdout, e); err != nil {
				return err
			}
		}
		return nil
	},
}

// sshProxyCommand is what 'den ssh-config' puts in ProxyCommand for a
// machine den reaches through its provider (hidden: OpenSSH runs it).
var sshProxyCommand = &cli.Command{
	Name:      machine.ProxyCommand,
	Hidden:    true,
	Usage:     "carry an ssh connection to a machine over stdin and stdout (OpenSSH's ProxyCommand)",
	ArgsUsage: "MACHINE",
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, 1); err != nil {
			return err
		}
		m, env, err := projectMachine(cliCtx)
		if err != nil {
			return err
		}
		return env.WithReporter(ui.Discard).ProxySSH(cliCtx.Context, m, os.Stdin, os.Stdout)
	},
}

// rshCommand is rsync's remote shell for rsync synced folders (hidden: den
// runs rsync with it): it runs the command in the machine over den's
// pinned connection.
var rshCommand = &cli.Command{
	Name:            machine.RshCommand,
	Hidden:          true,
	Usage:           "run a command in a machine for rsync",
	ArgsUsage:       "MACHINE COMMAND...",
	SkipFlagParsing: true,
	Action: func(cliCtx *cli.Context) error {
		args := cliCtx.Args().Slice()
		if len(args) > 0 && args[0] == "--" {
			args = args[1:] // den's rsync passes it, so no word of rsync's is read as a flag
		}
		if len(args) < 2 {
			return usageError{fmt.Errorf("%s: wrong number of arguments (usage: den %s MACHINE COMMAND...)", machine.RshCommand, machine.RshCommand)}
		}
		m, env, err := machineNamed(args[0])
		if err != nil {
			return err
		}
		status, err := env.WithReporter(ui.Discard).Rsh(cliCtx.Context, m, args[1:], os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			return err
		}
		if status != 0 {
			return exitStatus(status)
		}
		return nil
	},
}
