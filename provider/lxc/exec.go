package lxc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	golxc "github.com/lxc/go-lxc"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/den-dev/den/provider"
)

var _ provider.Execer = (*Provider)(nil)

// Exec runs cmd in the running container with LXC's attach: all of the
// container's namespaces, cgroups, capabilities and LSM, a cleared
// environment, no supplementary groups. den waits for the attached process
// itself (it is den's child), so a command killed by a signal reports
// 128+signal, not liblxc's 0. With cmd.TTY the command gets a pseudo
// terminal den relays (LXC's attach then makes one of the container's
// its controlling terminal). A terminal of den's is never handed to the
// guest: a process holding it could push keystrokes into the host's shell
// (TIOCSTI); without cmd.TTY a terminal among the three is piped instead.
func (p *Provider) Exec(ctx context.Context, name string, cmd provider.ExecCommand) (int, error) {
	c, err := p.open(name)
	if err != nil {
		return -1, err
	}
	defer c.Release()
	if st := p.state(c); st != provider.Running {
		return -1, fmt.Errorf("exec in %q: it is %s", name, st)
	}
	opts := golxc.DefaultAttachOptions
	opts.ClearEnv, opts.Env = true, cmd.Env
	opts.Cwd, opts.UID, opts.GID = cmd.Dir, cmd.UID, cmd.GID
	opts.StdinFd, opts.StdoutFd, opts.StderrFd = cmd.Stdin.Fd(), cmd.Stdout.Fd(), cmd.Stderr.Fd()
	argv := cmd.Argv
	var piped []func()
	var relay *ptyRelay
	if !cmd.TTY {
		fds := []*uintptr{&opts.StdinFd, &opts.StdoutFd, &opts.StderrFd}
		for i, f := range []*os.File{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
			g, wait, err := pipeTerminal(f, i == 0)
			if err != nil {
				return -1, err
			}
			if wait != nil {
				piped = append(piped, wait)
				defer g.Close()
			}
			*fds[i] = g.Fd()
		}
	}
	if cmd.TTY {
		relay, err = newPtyRelay(cmd.Stdin, cmd.Stdout)
		if err != nil {
			return -1, err
		}
		defer relay.close()
		fd := relay.slave.Fd()
		opts.StdinFd, opts.StdoutFd, opts.StderrFd = fd, fd, fd
	}
	pid, err := c.RunCommandNoWait(argv, opts)
	if err != nil {
		return -1, fmt.Errorf("exec %q in %q: %w (see %s)", argv[0], name, err, p.logFile(name))
	}
	if relay != nil {
		relay.slave.Close()
		relay.start()
	}
	status, err := waitPid(ctx, pid)
	if relay != nil {
		relay.finish()
	}
	for _, wait := range piped {
		wait()
	}
	return status, err
}

// pipeTerminal returns f, or when f is a terminal a pipe end relaying to
// or from it, and a func that waits for the relay after the command
// ended (closing the guest's end first).
func pipeTerminal(f *os.File, input bool) (*os.File, func(), error) {
	if !term.IsTerminal(int(f.Fd())) {
		return f, nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	if input {
		go func() { io.Copy(w, f); w.Close() }() // ends with den, as ssh's does
		close(done)
		return r, func() { r.Close() }, nil
	}
	go func() { io.Copy(f, r); r.Close(); close(done) }()
	return w, func() { w.Close(); <-done }, nil
}

// waitPid waits for the child pid and turns its end into a status; when
// ctx ends first, the process is killed.
func waitPid(ctx context.Context, pid int) (int, error) {
	stop := context.AfterFunc(ctx, func() { unix.Kill(pid, unix.SIGKILL) })
	defer stop()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("wait for the command (pid %d): %w", pid, err)
		}
		break
	}
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	switch {
	case ws.Exited():
		return ws.ExitStatus(), nil
	case ws.Signaled():
		return 128 + int(ws.Signal()), nil
	}
	return -1, fmt.Errorf("the command (pid %d) ended with wait status %v", pid, ws)
}

// ptyRelay is a pseudo terminal whose slave is the command's, with den's
// terminal in raw mode relaying to and from its master.
type ptyRelay struct {
	master, slave *os.File
	in, out       *os.File
	restore       func()
	winch         chan os.Signal
	done          sync.WaitGroup
}

func newPtyRelay(in, out *os.File) (*ptyRelay, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open a pseudo terminal: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("unlock the pseudo terminal: %w", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("name the pseudo terminal: %w", err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("open the pseudo terminal: %w", err)
	}
	r := &ptyRelay{master: master, slave: slave, in: in, out: out, restore: func() {}}
	r.resize()
	if state, err := term.MakeRaw(int(in.Fd())); err == nil {
		r.restore = func() { term.Restore(int(in.Fd()), state) }
	}
	return r, nil
}

// resize gives the pseudo terminal den's terminal's size.
func (r *ptyRelay) resize() {
	if ws, err := unix.IoctlGetWinsize(int(r.out.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(r.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// start relays input, output and window size changes.
func (r *ptyRelay) start() {
	r.winch = make(chan os.Signal, 1)
	signal.Notify(r.winch, syscall.SIGWINCH)
	go func() {
		for range r.winch {
			r.resize()
		}
	}()
	go io.Copy(r.master, r.in) // ends with den
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		io.Copy(r.out, r.master) // EIO once the command and its children are gone
	}()
}

// finish waits for the command's last output.
func (r *ptyRelay) finish() { r.done.Wait() }

func (r *ptyRelay) close() {
	if r.winch != nil {
		signal.Stop(r.winch)
		close(r.winch)
	}
	r.restore()
	r.master.Close()
	r.slave.Close()
}
