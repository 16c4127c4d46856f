package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/internal/ui"
)

var sshCommand = &cli.Command{
	Name:      "ssh",
	Usage:     "open a shell in a machine, or run a command with -c",
	ArgsUsage: "[MACHINE] [-- SSH ARGUMENTS...]",
	Description: "Without arguments after --, den connects itself (pinned host key, den's key; -A and den.hcl's\n" +
		"ssh { forward_agent, forward_env } apply). Arguments after -- go to OpenSSH's ssh, which den runs with\n" +
		"the machine's ssh-config (den ssh web -- -L 8080:localhost:80 -N).",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "command", Aliases: []string{"c"}, Usage: "run `CMD` and exit with its status"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "with -c: give the command a terminal"},
		&cli.BoolFlag{Name: "forward-agent", Aliases: []string{"A"}, Usage: "forward this host's ssh agent (SSH_AUTH_SOCK)"},
	},
	Action: func(cliCtx *cli.Context) error {
		names, extra := splitDashDash(cliCtx)
		if len(names) > 1 {
			return usageError{fmt.Errorf("ssh: wrong number of arguments (usage: den ssh %s; see 'den ssh --help')", cliCtx.Command.ArgsUsage)}
		}
		m, env, err := oneMachine(first(names), withOrphans)
		if err != nil {
			return err
		}
		if len(extra) > 0 {
			if _, err := env.Connect(cliCtx.Context, m); err != nil {
				return err
			}
			entries, err := env.SSHConfig(cliCtx.Context, []*machine.Machine{m}, "")
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				return errdefs.Machinef(errdefs.NotCreated, m.Name(), "machine %q is not created: run 'den up %s'", m.Name(), m.Name())
			}
			return execOpenSSH(cliCtx, m, entries[0], extra)
		}
		client, err := env.Connect(cliCtx.Context, m)
		if err != nil {
			return err
		}
		defer client.Close()
		return sshSession(cliCtx, m, client, cliCtx.String("command"))
	},
}

// sshSession runs den ssh's shell, or its -c command, over client, with
// den.hcl's ssh options; the remote status becomes den's, and a session
// the machine ended under it is reported as OpenSSH does.
func sshSession(cliCtx *cli.Context, m *machine.Machine, client *ssh.Client, cmd string) error {
	opts := machine.SSHOptions(m, cliCtx.Bool("forward-agent"))
	var status int
	var err error
	if cmd != "" && !cliCtx.Bool("tty") {
		status, err = sshx.Run(cliCtx.Context, client, cmd, os.Stdin, os.Stdout, os.Stderr, opts...)
	} else {
		status, err = sshx.Shell(cliCtx.Context, client, cmd, os.Stdin, os.Stdout, os.Stderr, opts...)
	}
	if err != nil && cliCtx.Context.Err() == nil && isConnectionLoss(err) {
		status, err = sshx.ExitMissing, nil
	}
	if err != nil {
		return err
	}
	if status == sshx.ExitMissing {
		// The session ended without a status: the machine went away
		// under it, as OpenSSH reports it.
		fmt.Fprintf(os.Stderr, "Connection to %s closed.\n", m.Name())
	}
	if status != 0 {
		return exitStatus(status)
	}
	return nil
}

// isConnectionLoss reports whether err is the ssh connection ending under
// a running session.
func isConnectionLoss(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "connection lost")
}

// execOpenSSH replaces den with OpenSSH's ssh, run with the machine's
// ssh-config entry (pinned key, den's identity) and the arguments given after
// --; cmd, when set, is the remote command.
func execOpenSSH(cliCtx *cli.Context, m *machine.Machine, entry sshx.ConfigEntry, extra []string) error {
	bin, err := exec.LookPath("ssh")
	if err != nil {
		return fmt.Errorf("arguments after -- go to OpenSSH's ssh, which is not installed: apt-get install openssh-client")
	}
	cmd := cliCtx.String("command")
	var b strings.Builder
	if err := sshx.WriteConfig(&b, entry); err != nil {
		return err
	}
	cfg := filepath.Join(m.State.Path(), "ssh_config")
	if err := fsutil.WriteFileAtomic(cfg, []byte(b.String()), 0o600); err != nil {
		return err
	}
	argv := []string{"ssh", "-F", cfg}
	if cliCtx.Bool("forward-agent") {
		argv = append(argv, "-A")
	}
	if cliCtx.Bool("tty") {
		argv = append(argv, "-t")
	}
	argv = append(append(argv, extra...), entry.Host)
	if cmd != "" {
		argv = append(argv, "--", cmd)
	}
	return syscall.Exec(bin, argv, os.Environ())
}

var sshConfigCommand = &cli.Command{
	Name:      "ssh-config",
	Usage:     "print an OpenSSH config for the machines (ssh -F, scp, rsync, IDEs)",
	ArgsUsage: "[MACHINE...]",
	Flags:     []cli.Flag{&cli.StringFlag{Name: "host", Usage: "use `NAME` as the Host alias (one machine only)"}},
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, withOrphans)
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
		m, env, err := projectMachine(cliCtx, withOrphans)
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
		m, env, err := oneMachine(args[0], withOrphans)
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
