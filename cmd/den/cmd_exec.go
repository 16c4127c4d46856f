package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
)

var execCommand = &cli.Command{
	Name:      "exec",
	Usage:     "run a command in a machine without ssh (as lxc exec does)",
	ArgsUsage: "[MACHINE] -- COMMAND [ARGS...]",
	Description: "Runs as the login user (--root: root), with a login environment (HOME, USER, PATH, LANG, TERM; never\n" +
		"this shell's), in the guest path of the synced folder you are in (else the home folder). stdin, stdout and\n" +
		"stderr are the command's; a terminal gets a terminal. Its exit status is den's.",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "root", Usage: "run as root"},
	},
	Action: func(cliCtx *cli.Context) error {
		names, argv, err := execArgs(cliCtx)
		if err != nil {
			return err
		}
		m, env, err := oneMachine(first(names), withOrphans)
		if err != nil {
			return err
		}
		wd, _ := os.Getwd()
		status, err := env.Exec(cliCtx.Context, m, argv, machine.ExecOptions{
			Root: cliCtx.Bool("root"), HostWD: wd,
			Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, TTY: isTerminal(os.Stdin),
		})
		if err != nil {
			return err
		}
		if status != 0 {
			return exitStatus(status)
		}
		return nil
	},
}

// execArgs splits den exec's arguments into the machine (none or one) and
// the command.
func execArgs(cliCtx *cli.Context) (names, argv []string, err error) {
	names, argv = splitDashDash(cliCtx)
	if afterDashDash == 0 {
		names, argv = nil, cliCtx.Args().Slice()
		if len(argv) > 0 {
			if ms, err := selectNames(argv[:1]); err == nil && len(ms) == 1 {
				names, argv = argv[:1], argv[1:]
			}
		}
	}
	if len(names) > 1 || len(argv) == 0 {
		return nil, nil, usageError{fmt.Errorf("exec: usage: den exec %s (see 'den exec --help')", cliCtx.Command.ArgsUsage)}
	}
	return names, argv, nil
}
