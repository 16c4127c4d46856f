package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
	lxcprovider "github.com/den-dev/den/provider/lxc"
	lxdprovider "github.com/den-dev/den/provider/lxd"
	"github.com/den-dev/den/provision"
)

// denVersion and denCommit are set at build time with -ldflags
// "-X main.denVersion=... -X main.denCommit=..." (scripts/build-deb.sh
// sets the Debian package's version and the git commit).
var (
	denVersion = "dev"
	denCommit  = ""
)

func newApp() *cli.App {
	app := &cli.App{
		Name:                      "den",
		Usage:                     "disposable development machines in LXC containers, from a den.hcl",
		Version:                   denVersion,
		Suggest:                   true,
		DisableSliceFlagSeparator: true,
		HideHelpCommand:           true,
		// Errors come back from Run, so defers (terminal restore, locks) run.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "chdir", Aliases: []string{"C"}, Usage: "run as if started in `DIR`", EnvVars: []string{"DEN_CHDIR"}},
		},
		Before: func(cliCtx *cli.Context) error {
			if dir := cliCtx.String("chdir"); dir != "" {
				if err := os.Chdir(dir); err != nil {
					return usageError{fmt.Errorf("--chdir: %w", err)}
				}
			}
			return nil
		},
		Commands: []*cli.Command{
			initCommand,
			validateCommand,
			upCommand,
			provisionCommand,
			reloadCommand,
			sshCommand,
			sshConfigCommand,
			execCommand,
			uploadCommand,
			portCommand,
			statusCommand,
			globalStatusCommand,
			autostartCommand,
			haltCommand,
			suspendCommand,
			resumeCommand,
			destroyCommand,
			snapshotCommand,
			packageCommand,
			rsyncCommand,
			rsyncAutoCommand,
			remoteCommand,
			boxCommand,
			hostCommand,
			versionCommand,
			completionCommand,
			helpCommand,
			serveCommand,
			forwardCommand,
			completeCommand,
			manCommand,
			sshProxyCommand,
			rshCommand,
		},
		Action: notACommand,
	}
	withNotACommand(app.Commands)
	for _, c := range app.Commands {
		quietUsageErrors(c)
	}
	useServer(app) // not root, and den serve runs: through it
	app.OnUsageError = func(cliCtx *cli.Context, err error, _ bool) error {
		if errors.Is(err, flag.ErrHelp) { // den -h: the flag parser's way of asking
			return cli.ShowAppHelp(cliCtx)
		}
		return usageError{fmt.Errorf("%w (see 'den --help')", err)}
	}
	return app
}

// quietUsageErrors makes a wrong flag an error that names the command's
// help, instead of urfave/cli printing the whole help before den's error.
func quietUsageErrors(c *cli.Command) {
	c.OnUsageError = func(cliCtx *cli.Context, err error, _ bool) error {
		return usageError{fmt.Errorf("%w (see 'den %s --help')", err, commandPath(cliCtx))}
	}
	for _, sub := range c.Subcommands {
		quietUsageErrors(sub)
	}
}

// usageError is a wrong invocation: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitStatus carries a remote command's exit status to den's own.
type exitStatus int

func (e exitStatus) Error() string {
	return fmt.Sprintf("remote command exited with status %d", int(e))
}

// report prints err for a person and returns den's exit status: 0 ok,
// 1 error, 2 usage, 130 interrupted, a remote command's own status, or a
// failed provisioner's.
func report(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	var diag *config.DiagError
	if errors.As(err, &diag) {
		config.WriteDiagnostics(w, diag.Files, diag.Diags, false)
		return 1
	}
	kind := errdefs.KindOf(err)
	if kind == errdefs.Canceled && errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "den: interrupted")
		return 130
	}
	fmt.Fprintf(w, "den: error: %v\n", err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return 2
	case kind == errdefs.GuestFailed:
		// A provisioner that failed in the guest: its exit status is den's.
		var pe *provision.ProvisionError
		if errors.As(err, &pe) && pe.Status > 0 && pe.Status < 256 {
			return pe.Status
		}
	case kind == errdefs.TriggerFailed:
		// So is a failed trigger's.
		var te *machine.TriggerError
		if errors.As(err, &te) && te.Status > 0 && te.Status < 256 {
			return te.Status
		}
	}
	return 1
}

// checkArgs enforces a command's argument count.
func checkArgs(cliCtx *cli.Context, min, max int) error {
	n := cliCtx.NArg()
	if n < min || (max >= 0 && n > max) {
		path := commandPath(cliCtx)
		return usageError{fmt.Errorf("%s: wrong number of arguments (usage: den %s %s; see 'den %s --help')", path, path, cliCtx.Command.ArgsUsage, path)}
	}
	return nil
}

// commandPath is the command as typed, "box add" for a subcommand.
func commandPath(cliCtx *cli.Context) string {
	var names []string
	for _, c := range cliCtx.Lineage() {
		if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
			names = append([]string{c.Command.Name}, names...)
		}
	}
	return strings.Join(slices.Compact(names), " ")
}

// loadProject finds and decodes the den.hcl for the current folder.
func loadProject() (*config.Project, error) {
	return machine.LoadProject(".", false, nil)
}

// newEnv wires den's home, its providers (lxc, the default, and lxd,
// which connects to a server only when a machine uses one) and the
// terminal UI.
func newEnv() (*machine.Env, error) {
	home := layout.DefaultHome()
	p, err := lxcprovider.New(home.Machines())
	if err != nil {
		return nil, err
	}
	// The store of new machines whose den.hcl names none (storage =
	// "auto"): btrfs when DEN_HOME is on btrfs, unless DEN_STORAGE says
	// otherwise.
	if s := os.Getenv("DEN_STORAGE"); s != "" {
		if err := p.SetStorage(s); err != nil {
			return nil, err
		}
	}
	providers := []provider.Provider{p, lxdprovider.New(home.Path())}
	return machine.NewEnv(machine.Options{Home: home, Providers: providers, UI: ui.New()}), nil
}

// Which machines a command may act on (see machine.LookupOptions):
// changing ones only den.hcl's; looking at or taking down also orphans
// and, when den.hcl does not parse, .den/'s.
var (
	onlyConfigured = machine.LookupOptions{}
	withOrphans    = machine.LookupOptions{Orphans: true}
	fromState      = machine.LookupOptions{Orphans: true, FromState: true}
)

// projectMachines wires the environment and finds the machines the
// arguments name (machine names or global-status ids), or all of the
// project's without arguments.
func projectMachines(cliCtx *cli.Context, opts machine.LookupOptions) ([]*machine.Machine, *machine.Env, error) {
	return machinesOf(cliCtx.Args().Slice(), opts)
}

// machinesOf is projectMachines for the machines names names.
func machinesOf(names []string, opts machine.LookupOptions) ([]*machine.Machine, *machine.Env, error) {
	env, err := newEnv()
	if err != nil {
		return nil, nil, err
	}
	ms, err := env.Lookup(".", names, opts)
	if err != nil {
		return nil, nil, usage(err)
	}
	return ms, env, nil
}

// projectMachine is projectMachines for commands on one machine: the one
// the argument names, or the project's primary (or only) one.
func projectMachine(cliCtx *cli.Context, opts machine.LookupOptions) (*machine.Machine, *machine.Env, error) {
	return oneMachine(cliCtx.Args().First(), opts)
}

// oneMachine returns the machine name names (a machine or a global-status
// id), or with name "" the project's primary (or only) machine.
func oneMachine(name string, opts machine.LookupOptions) (*machine.Machine, *machine.Env, error) {
	if name != "" {
		ms, env, err := machinesOf([]string{name}, opts)
		if err != nil {
			return nil, nil, err
		}
		return ms[0], env, nil
	}
	ms, env, err := machinesOf(nil, onlyConfigured)
	if err != nil {
		return nil, nil, err
	}
	m, err := machine.Primary(ms)
	return m, env, usage(err)
}

// lookupHere is machinesOf for commands that read .den/ alone (ssh-config):
// it needs no provider, so it works for a user without root too.
func lookupHere(names []string, opts machine.LookupOptions) ([]*machine.Machine, error) {
	env := machine.NewEnv(machine.Options{Home: layout.DefaultHome(), UI: ui.New()})
	ms, err := env.Lookup(".", names, opts)
	return ms, usage(err)
}

// selectNames finds the machines of the project of the current folder
// that names names, without touching the environment.
func selectNames(names []string) ([]*machine.Machine, error) {
	p, err := loadProject()
	if err != nil {
		return nil, err
	}
	return machine.Select(p, names)
}

// first is the first of args, or "".
func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// usage makes a domain's invalid-input or unknown-name error a usage error
// (exit status 2): it came from the command line.
func usage(err error) error {
	switch errdefs.KindOf(err) {
	case errdefs.Invalid, errdefs.NotFound:
		return usageError{err}
	}
	return err
}

// printJSON writes v to stdout as indented JSON (the --json output).
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
