package main

// den for users who are not root: when den runs as another user and den
// serve's socket is there, the commands that drive machines and boxes go
// through the server (package client) instead of LXC, with the same
// flags, output, progress and exit statuses. den.hcl is still read here
// first (as that user), so its diagnostics and usage errors are the ones
// root sees; `ssh` and `ssh-config` use the machine's key from .den/
// directly (the server gives .den/ to the project folder's owner).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/box"
	"github.com/den-dev/den/client"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provision"
)

// serverSocket is den serve's socket when this den should use it: it
// does not run as root and the socket ($DEN_SOCKET, else the default)
// is there. "" keeps den's own path (LXC directly).
func serverSocket() string {
	if os.Geteuid() == 0 {
		return ""
	}
	path := os.Getenv("DEN_SOCKET")
	if path == "" {
		path = client.DefaultSocket
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		return ""
	}
	return path
}

// useServer points the commands that drive machines and boxes at den
// serve when serverSocket names one.
func useServer(app *cli.App) {
	sock := serverSocket()
	if sock == "" {
		return
	}
	r := &remote{socket: sock}
	actions := map[string]cli.ActionFunc{
		"up":               r.up,
		"reload":           r.reload,
		"provision":        r.provision,
		"halt":             r.halt,
		"suspend":          r.simple(api.ActionSuspend),
		"resume":           r.simple(api.ActionResume),
		"destroy":          r.destroy,
		"status":           r.status,
		"global-status":    r.globalStatus,
		"ssh":              r.ssh,
		"exec":             r.exec,
		"upload":           r.upload,
		"package":          r.pack,
		"snapshot save":    r.snapshotSave,
		"snapshot restore": r.snapshotRestore,
		"snapshot delete":  r.snapshotDelete,
		"snapshot list":    r.snapshotList,
		"snapshot push":    r.simple(api.ActionPush),
		"snapshot pop":     r.snapshotPop,
		"box list":         r.boxList,
		"box add":          r.boxAdd,
		"box remove":       r.boxRemove,
	}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if a, ok := actions[prefix+c.Name]; ok {
				c.Action = a
			}
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", app.Commands)
}

// remote runs commands through den serve.
type remote struct {
	socket string
	file   string // den.hcl of the project, once loaded
}

func (r *remote) connect() *client.Client {
	c, _ := client.ConnectUnix(r.socket)
	c.Environ = map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			c.Environ[k] = v
		}
	}
	return c
}

// machines loads den.hcl here (as this user: the diagnostics and usage
// errors root would see), picks the machines names names and registers
// the project with the server.
func (r *remote) machines(ctx context.Context, names []string) (*client.Client, *api.Project, []*machine.Machine, error) {
	ms, err := selectNames(names)
	if err != nil {
		return nil, nil, nil, err
	}
	p, c, err := r.register(ctx, ms[0].Project)
	return c, p, ms, err
}

func (r *remote) register(ctx context.Context, p *config.Project) (*api.Project, *client.Client, error) {
	r.file = p.File
	c := r.connect()
	ap, err := c.RegisterProject(ctx, p.Dir)
	if err != nil {
		return nil, nil, r.err(err)
	}
	return ap, c, nil
}

// follow prints an operation's progress as the CLI does and returns its
// failure as den's own error.
func (r *remote) follow(ctx context.Context, op *client.Operation, err error) error {
	if err != nil {
		return r.err(err)
	}
	pr := newProgress(ui.New())
	defer pr.close()
	_, err = op.Follow(ctx, pr.event)
	return r.err(err)
}

// progress replays an operation's progress on the terminal UI.
type progress struct {
	u    *ui.UI
	outs map[string]io.WriteCloser
	bars map[string]ui.Bar
}

func newProgress(u *ui.UI) *progress {
	return &progress{u: u, outs: map[string]io.WriteCloser{}, bars: map[string]ui.Bar{}}
}

func (p *progress) event(e api.ProgressEvent) {
	switch ui.EventKind(e.Kind) {
	case ui.EventSay:
		p.u.Say(e.Machine, "%s", e.Text)
	case ui.EventDetail:
		p.u.Detail(e.Machine, "%s", e.Text)
	case ui.EventWarn:
		p.u.Warn(e.Machine, "%s", e.Text)
	case ui.EventStdout, ui.EventStderr:
		key := e.Kind + "\x00" + e.Machine
		w, ok := p.outs[key]
		if !ok {
			w = p.u.Output(e.Machine, e.Kind == string(ui.EventStderr))
			p.outs[key] = w
		}
		io.WriteString(w, e.Text+"\n")
	case ui.EventProgress:
		what, line, _ := strings.Cut(e.Text, ": ")
		b, ok := p.bars[e.Machine+"\x00"+what]
		if !ok {
			b = p.u.Progress(e.Machine, what, e.Total)
			p.bars[e.Machine+"\x00"+what] = b
		}
		b.Update(e.Done, line)
	}
}

func (p *progress) close() {
	for _, w := range p.outs {
		w.Close()
	}
	for _, b := range p.bars {
		b.Done()
	}
}

// remoteError is a failure den serve reported, with den's error kind and,
// where the CLI needs it, the cause (a provisioner's exit status, an
// interruption).
type remoteError struct {
	msg   string
	kind  errdefs.Kind
	cause error
}

func (e *remoteError) Error() string           { return e.msg }
func (e *remoteError) ErrorKind() errdefs.Kind { return e.kind }
func (e *remoteError) Unwrap() error           { return e.cause }

// err turns a client error into what den's own code path returns.
func (r *remote) err(err error) error {
	if err == nil {
		return nil
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("den serve (%s): %w", r.socket, err)
	}
	if de := r.diagnostics(ce.Detail.Diagnostics); de != nil {
		return de
	}
	e := &remoteError{msg: ce.Message, kind: errdefs.Kind(ce.Detail.Kind)}
	switch {
	case errors.Is(err, context.Canceled):
		e.cause = context.Canceled
	case e.kind == errdefs.GuestFailed && ce.Detail.ExitStatus > 0:
		e.cause = &provision.ProvisionError{Name: ce.Detail.Provisioner, Status: ce.Detail.ExitStatus}
	}
	if e.kind == errdefs.Invalid || e.kind == errdefs.NotFound {
		return usageError{e}
	}
	return e
}

// diagnostics renders the server's den.hcl diagnostics against the file
// read here, named as den names it for this folder.
func (r *remote) diagnostics(ds []api.Diagnostic) error {
	if len(ds) == 0 || r.file == "" {
		return nil
	}
	src, err := os.ReadFile(r.file)
	if err != nil {
		return nil
	}
	name := r.file
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, r.file); err == nil && !strings.HasPrefix(rel, "..") {
			name = rel
		}
	}
	parser := hclparse.NewParser()
	parser.ParseHCL(src, name)
	var diags hcl.Diagnostics
	for _, d := range ds {
		hd := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: d.Summary, Detail: d.Detail}
		if d.Severity == "warning" {
			hd.Severity = hcl.DiagWarning
		}
		if d.File != "" {
			hd.Subject = &hcl.Range{Filename: name, Start: hcl.Pos{Line: d.Start.Line, Column: d.Start.Column, Byte: d.Start.Byte}, End: hcl.Pos{Line: d.End.Line, Column: d.End.Column, Byte: d.End.Byte}}
		}
		diags = append(diags, hd)
	}
	return &config.DiagError{Files: parser.Files(), Diags: diags}
}

// --- machine commands ---

func provisionMode(m machine.ProvisionMode) string {
	switch m {
	case machine.ProvisionForce:
		return api.ProvisionForce
	case machine.ProvisionNever:
		return api.ProvisionNever
	}
	return api.ProvisionAuto
}

func (r *remote) action(cliCtx *cli.Context, req api.StatePut) error {
	c, p, ms, err := r.machines(cliCtx.Context, cliCtx.Args().Slice())
	if err != nil {
		return err
	}
	if cliCtx.NArg() > 0 {
		for _, m := range ms {
			req.Machines = append(req.Machines, m.Name())
		}
	}
	op, err := c.Action(cliCtx.Context, p.ID, req)
	return r.follow(cliCtx.Context, op, err)
}

func (r *remote) up(cliCtx *cli.Context) error {
	opts, err := upOptions(cliCtx)
	if err != nil {
		return err
	}
	return r.action(cliCtx, api.StatePut{Action: api.ActionUp, Provision: provisionMode(opts.Provision), ProvisionWith: opts.With, NoParallel: cliCtx.Bool("no-parallel")})
}

func (r *remote) reload(cliCtx *cli.Context) error {
	opts, err := upOptions(cliCtx)
	if err != nil {
		return err
	}
	return r.action(cliCtx, api.StatePut{Action: api.ActionReload, Provision: provisionMode(opts.Provision), ProvisionWith: opts.With, Timeout: cliCtx.Duration("timeout").Seconds()})
}

func (r *remote) provision(cliCtx *cli.Context) error {
	return r.action(cliCtx, api.StatePut{Action: api.ActionProvision, ProvisionWith: cliCtx.StringSlice("provision-with")})
}

func (r *remote) halt(cliCtx *cli.Context) error {
	return r.action(cliCtx, api.StatePut{Action: api.ActionHalt, Force: cliCtx.Bool("force"), Timeout: cliCtx.Duration("timeout").Seconds()})
}

func (r *remote) simple(action string) cli.ActionFunc {
	return func(cliCtx *cli.Context) error { return r.action(cliCtx, api.StatePut{Action: action}) }
}

func (r *remote) destroy(cliCtx *cli.Context) error {
	ms, err := selectNames(cliCtx.Args().Slice())
	if err != nil {
		return err
	}
	var chosen []string
	for _, m := range ms {
		if !cliCtx.Bool("force") {
			ok, err := confirm(fmt.Sprintf("Destroy machine %q and its disk? The project folder stays. [y/N] ", m.Name()))
			if err != nil {
				return err
			}
			if !ok {
				ui.New().Say(m.Name(), "Not destroyed.")
				continue
			}
		}
		chosen = append(chosen, m.Name())
	}
	if len(chosen) == 0 {
		return nil
	}
	p, c, err := r.register(cliCtx.Context, ms[0].Project)
	if err != nil {
		return err
	}
	op, err := c.Action(cliCtx.Context, p.ID, api.StatePut{Action: api.ActionDestroy, Machines: chosen})
	return r.follow(cliCtx.Context, op, err)
}

func (r *remote) status(cliCtx *cli.Context) error {
	_, p, ms, err := r.machines(cliCtx.Context, cliCtx.Args().Slice())
	if err != nil {
		return err
	}
	all := []machine.Status{}
	for _, m := range ms {
		i := slices.IndexFunc(p.Machines, func(am api.Machine) bool { return am.Name == m.Name() })
		if i < 0 {
			return fmt.Errorf("den serve does not list machine %q of %s", m.Name(), p.File)
		}
		am := p.Machines[i]
		all = append(all, machine.Status{Name: am.Name, State: am.State, Address: am.Address, Container: am.Container, Box: am.Box, Provider: am.Provider})
	}
	return printStatus(cliCtx, all)
}

func globalEntries(gs []api.GlobalMachine) []machine.GlobalEntry {
	out := []machine.GlobalEntry{}
	for _, g := range gs {
		out = append(out, machine.GlobalEntry{ID: g.ID, Name: g.Name, Provider: g.Provider, State: g.State, Directory: g.Directory, Address: g.Address, Container: g.Container, Box: g.Box, Stale: g.Stale, ContainerExists: g.ContainerExists, RemoveHint: g.RemoveHint})
	}
	return out
}

func (r *remote) globalStatus(cliCtx *cli.Context) error {
	if err := checkArgs(cliCtx, 0, 0); err != nil {
		return err
	}
	ctx := cliCtx.Context
	c := r.connect()
	u := ui.New()
	if cliCtx.Bool("json") {
		u = &ui.UI{Out: os.Stderr, Err: os.Stderr}
	}
	if cliCtx.Bool("prune") {
		dropped, err := c.PruneGlobal(ctx)
		for _, d := range globalEntries(dropped) {
			u.Say(d.Name, "Pruned %s (%s): %s.", d.Container, d.Directory, d.Stale)
			if d.ContainerExists {
				u.Warn(d.Name, "container %s still exists and den can no longer destroy it; remove it with:\n  %s", d.Container, d.RemoveHint)
			}
		}
		if err != nil {
			return r.err(err)
		}
	}
	gs, err := c.GlobalStatus(ctx)
	if err != nil {
		return r.err(err)
	}
	all := globalEntries(gs)
	if cliCtx.Bool("json") {
		return printJSON(all)
	}
	home := "(den serve)"
	if info, err := c.Server(ctx); err == nil && info.Environment != nil {
		home = info.Environment.DenHome
	}
	printGlobal(all, home, cliCtx.Bool("prune"))
	return nil
}

// ssh asks den serve for the machine's state, then connects directly
// with the machine's own key and pinned host key from .den/.
func (r *remote) ssh(cliCtx *cli.Context) error {
	names, extra := splitDashDash(cliCtx)
	if len(names) > 1 {
		return usageError{fmt.Errorf("ssh: wrong number of arguments (usage: den ssh %s; see 'den ssh --help')", cliCtx.Command.ArgsUsage)}
	}
	m, conn, err := r.dialRunning(cliCtx, first(names))
	if err != nil {
		return err
	}
	defer conn.Close()
	if len(extra) > 0 {
		conn.Close()
		entry, err := machine.SSHConfig(m, "")
		if err != nil {
			return err
		}
		return execOpenSSH(cliCtx, m, entry, extra)
	}
	return sshSession(cliCtx, m, conn, cliCtx.String("command"))
}

// dialRunning asks the server for the state of the machine name names (the
// primary one for "") and, when it runs, connects to it with its key
// from .den/, which the server gave the project folder's owner.
func (r *remote) dialRunning(cliCtx *cli.Context, name string) (*machine.Machine, *ssh.Client, error) {
	p, err := loadProject()
	if err != nil {
		return nil, nil, err
	}
	m, err := machine.SelectOne(p, name)
	if err != nil {
		return nil, nil, usage(err)
	}
	ap, c, err := r.register(cliCtx.Context, p)
	if err != nil {
		return nil, nil, err
	}
	st, err := c.MachineState(cliCtx.Context, ap.ID, m.Name())
	if err != nil {
		return nil, nil, r.err(err)
	}
	name = m.Name()
	switch st.Status {
	case "running":
	case "not created":
		return nil, nil, errdefs.Machinef(errdefs.NotCreated, name, "machine %q is not created: run 'den up %s'", name, name)
	case "frozen":
		return nil, nil, errdefs.Machinef(errdefs.Frozen, name, "machine %q is suspended (frozen): run 'den resume %s' first", name, name)
	default:
		return nil, nil, errdefs.Machinef(errdefs.NotRunning, name, "machine %q is %s: run 'den up %s'", name, st.Status, name)
	}
	conn, err := machine.DialDirect(cliCtx.Context, m)
	return m, conn, err
}

// exec runs den exec's command over the machine's ssh: a user without root
// cannot attach to a container, and the server does not relay exec; the
// command gets the same user, folder and environment.
func (r *remote) exec(cliCtx *cli.Context) error {
	names, argv, err := execArgs(cliCtx)
	if err != nil {
		return err
	}
	m, conn, err := r.dialRunning(cliCtx, first(names))
	if err != nil {
		return err
	}
	defer conn.Close()
	wd, _ := os.Getwd()
	tty := isTerminal(os.Stdin)
	cmd, err := machine.ExecOverSSH(m, argv, machine.ExecOptions{Root: cliCtx.Bool("root"), HostWD: wd, TTY: tty})
	if err != nil {
		return err
	}
	var status int
	if tty {
		status, err = sshx.Shell(cliCtx.Context, conn, cmd, os.Stdin, os.Stdout, os.Stderr)
	} else {
		status, err = sshx.Run(cliCtx.Context, conn, cmd, os.Stdin, os.Stdout, os.Stderr)
	}
	if err != nil {
		return err
	}
	if status != 0 {
		return exitStatus(status)
	}
	return nil
}

// upload copies into the machine over its ssh, as the login user.
func (r *remote) upload(cliCtx *cli.Context) error {
	src, dst, name, err := uploadArgs(cliCtx)
	if err != nil {
		return err
	}
	m, conn, err := r.dialRunning(cliCtx, name)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = machine.UploadOver(cliCtx.Context, ui.New(), conn, m, src, dst)
	return err
}

func (r *remote) pack(cliCtx *cli.Context) error {
	if err := checkArgs(cliCtx, 0, 1); err != nil {
		return err
	}
	if _, err := box.ParseCompression(cliCtx.String("compression")); err != nil {
		return usageError{err}
	}
	p, err := loadProject()
	if err != nil {
		return err
	}
	m, err := machine.SelectOne(p, cliCtx.Args().First())
	if err != nil {
		return usage(err)
	}
	out, err := filepath.Abs(cliCtx.String("output"))
	if err != nil {
		return err
	}
	ap, c, err := r.register(cliCtx.Context, p)
	if err != nil {
		return err
	}
	op, err := c.Package(cliCtx.Context, ap.ID, m.Name(), api.PackagePost{Output: out, Compression: cliCtx.String("compression"), Version: cliCtx.String("version")})
	return r.follow(cliCtx.Context, op, err)
}

// --- snapshots ---

// snapshotTarget handles "[MACHINE] NAME" as snapshotArgs does.
func (r *remote) snapshotTarget(cliCtx *cli.Context) (*client.Client, *api.Project, []string, string, error) {
	if err := checkArgs(cliCtx, 1, 2); err != nil {
		return nil, nil, nil, "", err
	}
	args := cliCtx.Args().Slice()
	snap := args[len(args)-1]
	if err := provider.CheckSnapshotName(snap); err != nil {
		return nil, nil, nil, "", usageError{err}
	}
	c, p, _, err := r.machines(cliCtx.Context, args[:len(args)-1])
	return c, p, args[:len(args)-1], snap, err
}

func (r *remote) snapshotSave(cliCtx *cli.Context) error {
	c, p, names, snap, err := r.snapshotTarget(cliCtx)
	if err != nil {
		return err
	}
	op, err := c.SaveSnapshot(cliCtx.Context, p.ID, api.SnapshotsPost{Name: snap, Machines: names, Force: cliCtx.Bool("force")})
	return r.follow(cliCtx.Context, op, err)
}

func (r *remote) snapshotRestore(cliCtx *cli.Context) error {
	opts, err := restoreOptions(cliCtx)
	if err != nil {
		return err
	}
	c, p, names, snap, err := r.snapshotTarget(cliCtx)
	if err != nil {
		return err
	}
	op, err := c.RestoreSnapshot(cliCtx.Context, p.ID, snap, api.SnapshotPost{Machines: names, NoStart: opts.NoStart, Provision: provisionMode(opts.Up.Provision), ProvisionWith: opts.Up.With})
	return r.follow(cliCtx.Context, op, err)
}

func (r *remote) snapshotDelete(cliCtx *cli.Context) error {
	c, p, names, snap, err := r.snapshotTarget(cliCtx)
	if err != nil {
		return err
	}
	op, err := c.DeleteSnapshot(cliCtx.Context, p.ID, snap, names)
	return r.follow(cliCtx.Context, op, err)
}

func (r *remote) snapshotPop(cliCtx *cli.Context) error {
	opts, err := restoreOptions(cliCtx)
	if err != nil {
		return err
	}
	return r.action(cliCtx, api.StatePut{Action: api.ActionPop, NoStart: opts.NoStart, NoDelete: cliCtx.Bool("no-delete"), Provision: provisionMode(opts.Up.Provision), ProvisionWith: opts.Up.With})
}

func (r *remote) snapshotList(cliCtx *cli.Context) error {
	c, p, ms, err := r.machines(cliCtx.Context, cliCtx.Args().Slice())
	if err != nil {
		return err
	}
	snaps, err := c.Snapshots(cliCtx.Context, p.ID, cliCtx.Args().Slice())
	if err != nil {
		return r.err(err)
	}
	rows := []machine.SnapshotRow{}
	for _, s := range snaps {
		rows = append(rows, machine.SnapshotRow{Machine: s.Machine, Snapshot: provider.Snapshot{Name: s.Name, Created: s.Created, Size: s.Size, Shared: s.Shared}})
	}
	if cliCtx.Bool("json") {
		return printJSON(rows)
	}
	printSnapshots(ui.New(), ms, rows)
	return nil
}

// --- boxes ---

func (r *remote) boxList(cliCtx *cli.Context) error {
	boxes, err := r.connect().Boxes(cliCtx.Context)
	if err != nil {
		return r.err(err)
	}
	rows := []boxRow{}
	for _, b := range boxes {
		rows = append(rows, boxRow{Name: b.Name, Version: b.Version, Size: b.Size, Created: b.Created, User: b.User, Path: b.Path})
	}
	return printBoxes(cliCtx, rows)
}

// boxAdd uploads a local box file (the server cannot read this user's
// files for them) or passes a URL on.
func (r *remote) boxAdd(cliCtx *cli.Context) error {
	if err := checkArgs(cliCtx, 1, 2); err != nil {
		return err
	}
	req := api.BoxesPost{Source: cliCtx.Args().Get(0), Version: cliCtx.String("version"), Force: cliCtx.Bool("force"), BoxVersion: cliCtx.String("box-version"), Checksum: cliCtx.String("checksum")}
	if cliCtx.NArg() == 2 {
		req.Name, req.Source = cliCtx.Args().Get(0), cliCtx.Args().Get(1)
		if err := box.CheckName(req.Name); err != nil {
			return usageError{err}
		}
	}
	c := r.connect()
	if strings.HasPrefix(req.Source, "http://") || strings.HasPrefix(req.Source, "https://") {
		op, err := c.AddBox(cliCtx.Context, req)
		return r.follow(cliCtx.Context, op, err)
	}
	if req.Name == "" {
		return usageError{fmt.Errorf("den serve adds a local box file as NAME FILE (a catalog must be an http(s) URL)")}
	}
	if req.Checksum != "" || req.BoxVersion != "" {
		return usageError{fmt.Errorf("--checksum and --box-version apply to URLs when den runs through den serve")}
	}
	f, err := os.Open(strings.TrimPrefix(req.Source, "file://"))
	if err != nil {
		return err
	}
	defer f.Close()
	op, err := c.UploadBox(cliCtx.Context, req.Name, req.Version, req.Force, f)
	return r.follow(cliCtx.Context, op, err)
}

func (r *remote) boxRemove(cliCtx *cli.Context) error {
	if err := checkArgs(cliCtx, 1, 1); err != nil {
		return err
	}
	name, ver := cliCtx.Args().First(), cliCtx.String("version")
	c := r.connect()
	op, err := c.RemoveBox(cliCtx.Context, name, ver, cliCtx.Bool("force"))
	if err := r.follow(cliCtx.Context, op, err); err != nil {
		return err
	}
	if ver != "" {
		fmt.Printf("Removed box %s version %s.\n", name, ver)
	} else {
		fmt.Printf("Removed box %s (every version).\n", name)
	}
	return nil
}
