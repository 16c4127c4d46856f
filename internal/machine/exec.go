package machine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/provider"
)

// ExecOptions tune Exec.
type ExecOptions struct {
	Root   bool   // run as root, not the login user
	HostWD string // the folder den runs in; inside a synced folder, the command starts at its guest path
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
	TTY    bool // stdin is a terminal: give the command one
}

// Exec runs argv in the running machine m without sshd (den exec, the fast
// path LXD users know as lxc exec): as the login user (or root), with a
// clean login-like environment (never the host's), in the guest path of
// the synced folder den runs in (else the home folder), and returns the
// command's exit status.
func (e *Env) Exec(ctx context.Context, m *Machine, argv []string, opts ExecOptions) (int, error) {
	if len(argv) == 0 {
		return -1, errdefs.Newf(errdefs.Invalid, "exec: no command (den exec [MACHINE] -- COMMAND [ARGS...])")
	}
	rec, prov, st, err := e.created(ctx, m, "run a command in")
	if err != nil {
		return -1, err
	}
	switch st {
	case provider.Running:
	case provider.Frozen:
		return -1, frozen(m)
	default:
		return -1, errdefs.Machinef(errdefs.NotRunning, m.Name(), "machine %q is %s: run 'den up %s'", m.Name(), st, m.Name())
	}
	ex, ok := prov.(provider.Execer)
	if !ok {
		return -1, fmt.Errorf("exec on provider %s: %w (den ssh -c runs commands there)", prov.Name(), provider.ErrNotSupported)
	}
	login := Login{UID: 0, GID: 0, Home: "/root", Shell: "/bin/sh"}
	if !opts.Root {
		if login, err = e.login(ctx, ex, rec); err != nil {
			return -1, named(m, err)
		}
	}
	cmd := provider.ExecCommand{
		Argv: argv, UID: login.UID, GID: login.GID, Dir: guestDir(m, opts.HostWD, login.Home),
		Env:   loginEnv(login, rec.User, opts.Root, opts.TTY),
		Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, TTY: opts.TTY,
	}
	status, err := ex.Exec(ctx, rec.Container, cmd)
	return status, named(m, err)
}

// login returns the machine's login user: from its record, or (for a
// machine made before den recorded it) from its /etc/passwd.
func (e *Env) login(ctx context.Context, ex provider.Execer, rec *Record) (Login, error) {
	if rec.UID != 0 && rec.Home != "" {
		return Login{UID: rec.UID, GID: rec.GID, Home: rec.Home, Shell: rec.Shell}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return Login{}, err
	}
	defer r.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return Login{}, err
	}
	defer devnull.Close()
	status, err := ex.Exec(ctx, rec.Container, provider.ExecCommand{
		Argv: []string{"getent", "passwd", rec.User}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/",
		Stdin: devnull, Stdout: w, Stderr: devnull,
	})
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	f := strings.Split(strings.TrimSpace(line), ":")
	if err != nil || status != 0 || len(f) != 7 {
		return Login{}, fmt.Errorf("find the login user %q in the machine (status %d): %v", rec.User, status, err)
	}
	uid, err1 := strconv.Atoi(f[2])
	gid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || uid == 0 {
		return Login{}, fmt.Errorf("the machine's /etc/passwd has a bad line for %q", rec.User)
	}
	return Login{UID: uid, GID: gid, Home: f[5], Shell: f[6]}, nil
}

// loginEnv is the environment a login would give: HOME, USER, LOGNAME,
// SHELL, PATH; LANG and, on a terminal, TERM from this host.
func loginEnv(l Login, user string, root, tty bool) []string {
	p := "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
	if root {
		user, p = "root", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	shell := l.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	lang := os.Getenv("LANG")
	if lang == "" {
		lang = "C.UTF-8"
	}
	termName := "dumb"
	if tty {
		if termName = os.Getenv("TERM"); termName == "" {
			termName = "xterm-256color"
		}
	}
	return []string{"HOME=" + l.Home, "USER=" + user, "LOGNAME=" + user, "SHELL=" + shell, "PATH=" + p, "LANG=" + lang, "TERM=" + termName}
}

// guestDir is where a command den runs in hostWD starts: the guest path of
// the synced folder holding hostWD (the deepest), else home.
func guestDir(m *Machine, hostWD, home string) string {
	best, dir := -1, home
	for _, sf := range m.Config.Synced {
		rel, err := filepath.Rel(sf.Host, hostWD)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || len(sf.Host) <= best {
			continue
		}
		best, dir = len(sf.Host), path.Join(sf.Guest, filepath.ToSlash(rel))
	}
	return dir
}

// ExecOverSSH is Exec's command as a shell command line for the machine's
// sshd, for a front end that cannot reach the provider (a user without
// root, through den serve): the same user, folder and environment, then
// the program. It needs the login user's home from the record.
func ExecOverSSH(m *Machine, argv []string, opts ExecOptions) (string, error) {
	if len(argv) == 0 {
		return "", errdefs.Newf(errdefs.Invalid, "exec: no command (den exec [MACHINE] -- COMMAND [ARGS...])")
	}
	rec, err := m.Record()
	if err != nil {
		return "", err
	}
	if rec == nil {
		return "", notCreated(m, "run a command in")
	}
	login := Login{UID: 0, GID: 0, Home: "/root", Shell: "/bin/sh"}
	if !opts.Root {
		login = Login{UID: rec.UID, GID: rec.GID, Home: rec.Home, Shell: rec.Shell}
		if login.Home == "" {
			login.Home = "/home/" + rec.User
		}
	}
	words := []string{"cd", shellQuote(guestDir(m, opts.HostWD, login.Home)), "&&", "exec"}
	if opts.Root {
		words = append(words, "sudo", "-n")
	}
	words = append(words, "env", "-i")
	for _, kv := range loginEnv(login, rec.User, opts.Root, opts.TTY) {
		words = append(words, shellQuote(kv))
	}
	for _, a := range argv {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " "), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
