package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/sshx"
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
		m, env, err := projectMachine(cliCtx, withOrphans)
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
		ms, _, err := projectMachines(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		if cliCtx.String("host") != "" && len(ms) != 1 {
			return usageError{fmt.Errorf("--host names one machine; this selects %d", len(ms))}
		}
		printed := 0
		for _, m := range ms {
			rec, err := m.Record()
			if err != nil {
				return err
			}
			if rec == nil {
				continue
			}
			alias := machine.SSHAlias(m)
			if h := cliCtx.String("host"); h != "" {
				alias = h
			}
			if printed > 0 {
				fmt.Println()
			}
			err = sshx.WriteConfig(os.Stdout, sshx.ConfigEntry{
				Host:           alias,
				HostName:       rec.IP(),
				Port:           22,
				User:           rec.User,
				IdentityFile:   m.State.Key(),
				KnownHostsFile: m.State.KnownHosts(),
				HostKeyAlias:   machine.SSHAlias(m),
			})
			if err != nil {
				return err
			}
			printed++
		}
		if printed == 0 {
			return fmt.Errorf("no machine of this project is created: run 'den up' first")
		}
		return nil
	},
}
