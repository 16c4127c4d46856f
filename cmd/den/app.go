package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
	lxcprovider "github.com/den-dev/den/provider/lxc"
	"github.com/den-dev/den/provision"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newApp() *cli.App {
	app := &cli.App{
		Name:                      "den",
		Usage:                     "disposable development machines in LXC containers, from a den.hcl",
		Version:                   version,
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
			statusCommand,
			globalStatusCommand,
			haltCommand,
			suspendCommand,
			resumeCommand,
			destroyCommand,
			snapshotCommand,
			packageCommand,
			boxCommand,
			hostCommand,
			versionCommand,
			forwardCommand,
		},
	}
	for _, c := range app.Commands {
		quietUsageErrors(c)
	}
	app.OnUsageError = func(cliCtx *cli.Context, err error, _ bool) error {
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
// 1 error, 2 usage, 130 interrupted, or a remote command's own status.
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
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "den: interrupted")
		return 130
	}
	fmt.Fprintf(w, "den: error: %v\n", err)
	var held *lock.HeldError
	if errors.As(err, &held) {
		return 1
	}
	// A provisioner that failed in the guest: its exit status is den's.
	var pe *provision.ProvisionError
	if errors.As(err, &pe) && pe.Status > 0 && pe.Status < 256 {
		return pe.Status
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
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
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	path, err := config.Find(wd)
	if err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
		path = rel
	}
	return config.Load(path)
}

// newEnv wires the provider, store and UI.
func newEnv() (*machine.Env, error) {
	home := layout.DefaultHome()
	p, err := lxcprovider.New(home.Machines())
	if err != nil {
		return nil, err
	}
	e := &machine.Env{Home: home, Provider: p, Store: box.NewStore(home.Path()), UI: ui.New()}
	// Machines that come up in parallel share one box: one finds it
	// missing and builds or fetches it, the others wait and find it.
	var boxMu sync.Mutex
	e.EnsureBox = func(ctx context.Context, m *config.Machine) (*box.Box, error) {
		boxMu.Lock()
		defer boxMu.Unlock()
		return ensureBox(ctx, e, m)
	}
	return e, nil
}

// selectMachines returns the machines named in args, or all of them.
func selectMachines(p *config.Project, args []string) ([]*machine.Machine, error) {
	if len(args) == 0 {
		out := make([]*machine.Machine, 0, len(p.Machines))
		for _, m := range p.Machines {
			out = append(out, machine.New(p, m))
		}
		return out, nil
	}
	var out []*machine.Machine
	for _, name := range args {
		m, ok := p.Machine(name)
		if !ok {
			return nil, usageError{fmt.Errorf("no machine %q in %s (machines: %s)", name, p.File, machineNames(p))}
		}
		out = append(out, machine.New(p, m))
	}
	return out, nil
}

// oneMachine returns the named machine, or the only one.
func oneMachine(p *config.Project, args []string) (*machine.Machine, error) {
	if len(args) == 0 {
		if len(p.Machines) != 1 {
			return nil, usageError{fmt.Errorf("this project has several machines (%s): name one", machineNames(p))}
		}
		return machine.New(p, p.Machines[0]), nil
	}
	ms, err := selectMachines(p, args[:1])
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

func machineNames(p *config.Project) string {
	names := make([]string, len(p.Machines))
	for i, m := range p.Machines {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}

// printJSON writes v to stdout as indented JSON (the --json output).
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
