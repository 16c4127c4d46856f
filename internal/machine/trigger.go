package machine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/hostcmd"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provision"
)

// Caller is who a domain operation runs for. A front end gives each
// operation its caller with WithCaller: the CLI the user who ran den (under
// sudo, SUDO_UID's), a server the user who made the request.
type Caller struct {
	// User is who host triggers (run blocks) run as. nil refuses them: a
	// front end that names nobody never has den run project code as root.
	User *hostcmd.User
	// UserErr says why User is nil (the account could not be looked up);
	// it is the error of a host trigger, so that commands without one
	// still work.
	UserErr error
	// NoTriggers skips every trigger (--no-triggers).
	NoTriggers bool
}

// WithCaller returns a copy of e whose operations run for c.
func (e *Env) WithCaller(c Caller) *Env {
	cp := *e
	cp.caller = c
	return &cp
}

// TriggerError is the failure of a trigger's command, on the host or in
// the guest: its exit status is not 0.
type TriggerError struct {
	Trigger string // its name
	When    string // config.TriggerBefore or config.TriggerAfter
	Command string // the den command it is about
	Guest   bool   // run_remote failed (else run, on the host)
	Status  int    // the command's exit status
}

// ErrorKind makes a failed trigger an errdefs.TriggerFailed failure.
func (e *TriggerError) ErrorKind() errdefs.Kind { return errdefs.TriggerFailed }

// Error names the trigger, where it ran and its exit status.
func (e *TriggerError) Error() string {
	where := "on the host"
	if e.Guest {
		where = "in the guest"
	}
	return fmt.Sprintf("trigger %q (%s %s, %s) failed with exit status %d", e.Trigger, e.When, e.Command, where, e.Status)
}

// fire runs m's triggers of when and command in file order: each one's
// run on the host, then its run_remote in the guest. The first failure
// stops them and is returned, unless its trigger says on_error =
// "continue": then it is reported and the next trigger runs. The caller
// holds the machine's lock.
func (e *Env) fire(ctx context.Context, m *Machine, when, command string) error {
	var ts []config.Trigger
	for _, t := range m.Config.Triggers {
		if t.When == when && t.Command == command {
			ts = append(ts, t)
		}
	}
	name := m.Name()
	for _, t := range ts {
		if e.caller.NoTriggers {
			e.UI.Say(name, "Skipping trigger %s (%s %s): triggers are off.", t.Name, when, command)
			continue
		}
		err := e.runTrigger(ctx, m, t)
		if err == nil {
			continue
		}
		if ctx.Err() != nil || t.OnError != config.OnErrorContinue {
			return err
		}
		e.UI.Warn(name, "%v; going on (on_error = %q)", err, config.OnErrorContinue)
	}
	return nil
}

// runTrigger runs one trigger: its run, then its run_remote.
func (e *Env) runTrigger(ctx context.Context, m *Machine, t config.Trigger) error {
	e.UI.Say(m.Name(), "Running trigger: %s (%s %s)...", t.Name, t.When, t.Command)
	if t.Run != nil {
		if err := e.runHostTrigger(ctx, m, t); err != nil {
			return err
		}
	}
	if t.RunRemote != nil {
		return e.runGuestTrigger(ctx, m, t)
	}
	return nil
}

// runHostTrigger runs t's run on the host: as the caller's user, in the
// project folder, with DEN_MACHINE, DEN_PROJECT and DEN_ADDRESS and the
// block's env. A script a machine could have changed is refused, checked
// again now (den.hcl was read a while ago; the folders may have changed).
func (e *Env) runHostTrigger(ctx context.Context, m *Machine, t config.Trigger) error {
	name, r := m.Name(), t.Run
	u := e.caller.User
	if u == nil && e.caller.UserErr != nil {
		return errdefs.Machinef(errdefs.Invalid, name, "trigger %q runs on the host, but den cannot tell as whom: %w", t.Name, e.caller.UserErr)
	}
	if u == nil {
		return errdefs.Machinef(errdefs.Invalid, name, "trigger %q runs on the host, and this operation names no host user to run it as", t.Name)
	}
	var argv []string
	if r.Path != "" {
		if err := m.Project.CheckHostScript(r.Path); err != nil {
			return errdefs.Machinef(errdefs.Invalid, name, "trigger %q: %s: refused: %w", t.Name, rangeLoc(r.PathRange), err)
		}
		head, err := scriptHead(r.Path)
		if err != nil {
			return fmt.Errorf("trigger %q: reading the script: %w", t.Name, err)
		}
		argv = append(scriptCommand(r.Path, head), r.Args...)
	} else {
		argv = []string{"/bin/sh", "-e", "-c", strings.Join(r.Inline, "\n")}
	}
	addr := ""
	if rec, err := m.Record(); err == nil && rec != nil {
		addr = rec.IP()
	}
	env := []string{"DEN_MACHINE=" + name, "DEN_PROJECT=" + m.Project.Dir, "DEN_ADDRESS=" + addr}
	for _, kv := range r.Env {
		env = append(env, kv.Key+"="+kv.Value)
	}
	e.UI.Detail(name, "on the host, as %s", u)
	out := e.UI.Output(name, false)
	defer out.Close()
	errw := e.UI.Output(name, true)
	defer errw.Close()
	status, err := hostcmd.Run(ctx, hostcmd.Cmd{Argv: argv, Dir: m.Project.Dir, Env: env, User: u, Stdout: out, Stderr: errw})
	if err != nil {
		return fmt.Errorf("trigger %q (on the host): %w", t.Name, err)
	}
	if status != 0 {
		return &TriggerError{Trigger: t.Name, When: t.When, Command: t.Command, Status: status}
	}
	return nil
}

// runGuestTrigger runs t's run_remote in the running machine over ssh, as
// a shell provisioner runs.
func (e *Env) runGuestTrigger(ctx context.Context, m *Machine, t config.Trigger) error {
	name, r := m.Name(), t.RunRemote
	rec, prov, st, err := e.current(ctx, m)
	if err != nil {
		return err
	}
	if st != provider.Running {
		return errdefs.Machinef(errdefs.NotRunning, name, "trigger %q runs in the guest, but machine %q is %s (start it with 'den up %s' first, give the trigger on_error = %q, or skip triggers with --no-triggers)", t.Name, name, st, name, config.OnErrorContinue)
	}
	client, err := e.dial(ctx, m, rec, prov)
	if err != nil {
		return fmt.Errorf("trigger %q (in the guest): %w", t.Name, err)
	}
	defer client.Close()
	e.UI.Detail(name, "in the guest")
	out := e.UI.Output(name, false)
	defer out.Close()
	errw := e.UI.Output(name, true)
	defer errw.Close()
	p := config.Provision{Type: config.ProvisionShell, Name: "trigger", Inline: r.Inline, Path: r.Path, Args: r.Args, Env: r.Env, Privileged: r.Privileged}
	status, err := provision.Shell(ctx, sshx.NewComm(client), p, out, errw)
	if err != nil {
		return fmt.Errorf("trigger %q (in the guest): %w", t.Name, err)
	}
	if status != 0 {
		return &TriggerError{Trigger: t.Name, When: t.When, Command: t.Command, Guest: true, Status: status}
	}
	return nil
}

// scriptCommand is how den runs the host script at path whose first line
// is head: through the interpreter its #! line names (so it needs no
// execute bit, as with provisioners), else itself when it is executable
// (a program), else with /bin/sh.
func scriptCommand(path, head string) []string {
	if fi, err := os.Stat(path); !strings.HasPrefix(head, "#!") && err == nil && fi.Mode()&0o111 != 0 {
		return []string{path}
	}
	return append(provision.Interpreter([]byte(head)), path)
}

// rangeLoc formats the start of r as file:line:col.
func rangeLoc(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// scriptHead reads the first line of the file at path (its #! line).
func scriptHead(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return line, nil
}
