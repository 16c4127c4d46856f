package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"
)

// ExitMissing is the status Run and Shell report when the remote side ends
// without an exit status, as OpenSSH's ssh does.
const ExitMissing = 255

// Run runs cmd (empty: the login shell) on c without a PTY, with stdin (nil:
// none), stdout and stderr (nil: discarded) attached. It returns the remote exit status and a nil
// error when the command ran, whatever its status: a command killed by a
// signal reports 128+signal, one that ends without a status reports 255. A
// non-nil error means the command could not be run or ctx ended; in that case
// the status is -1, and on ctx's end the remote command is sent SIGKILL and
// the session closed.
func Run(ctx context.Context, c *ssh.Client, cmd string, stdin io.Reader, stdout, stderr io.Writer, opts ...SessionOption) (int, error) {
	sess, err := newSession(c, opts)
	if err != nil {
		return -1, err
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if cmd == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(cmd)
	}
	if err != nil {
		return -1, fmt.Errorf("starting %s: %w", describe(cmd), err)
	}
	return wait(ctx, sess, cmd)
}

func describe(cmd string) string {
	if cmd == "" {
		return "remote shell"
	}
	return fmt.Sprintf("remote command %q", cmd)
}

// wait waits for a started session and turns its end into a status.
func wait(ctx context.Context, sess *ssh.Session, cmd string) (int, error) {
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Not waiting for Wait: a frozen guest would never answer the close.
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return -1, ctx.Err()
	}
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitStatus(), nil
	case errors.As(err, &missing):
		return ExitMissing, nil
	default:
		return -1, fmt.Errorf("running %s: %w", describe(cmd), err)
	}
}

// Shell runs an interactive session, the way OpenSSH's ssh does: cmd == ""
// asks for the login shell, otherwise cmd runs (like "ssh -t host cmd"). When
// stdin is a terminal, the session gets a PTY of the terminal's size and
// $TERM (default xterm-256color), stdin is put in raw mode and restored
// before Shell returns, and window size changes (SIGWINCH) are forwarded; the
// remote side's stderr then arrives through the PTY on stdout. When stdin is
// not a terminal, no PTY is requested and Shell behaves like Run. All three
// files must be non-nil. Status and error are as for Run.
func Shell(ctx context.Context, c *ssh.Client, cmd string, stdin, stdout, stderr *os.File, opts ...SessionOption) (int, error) {
	fd := int(stdin.Fd())
	if !term.IsTerminal(fd) {
		return Run(ctx, c, cmd, stdin, stdout, stderr, opts...)
	}

	sess, err := newSession(c, opts)
	if err != nil {
		return -1, err
	}
	defer sess.Close()

	width, height := terminalSize(stdout, stdin)
	termName := os.Getenv("TERM")
	if termName == "" {
		termName = "xterm-256color"
	}
	modes := ssh.TerminalModes{
		ssh.ECHO:          1,
		ssh.TTY_OP_ISPEED: 14400,
		ssh.TTY_OP_OSPEED: 14400,
	}
	if err := sess.RequestPty(termName, height, width, modes); err != nil {
		return -1, fmt.Errorf("requesting a pty: %w", err)
	}

	state, err := term.MakeRaw(fd)
	if err != nil {
		return -1, fmt.Errorf("putting the terminal in raw mode: %w", err)
	}
	defer term.Restore(fd, state)

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	stopResize := make(chan struct{})
	defer close(stopResize)
	go func() {
		for {
			select {
			case <-winch:
				w, h := terminalSize(stdout, stdin)
				sess.WindowChange(h, w)
			case <-stopResize:
				return
			}
		}
	}()

	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if cmd == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(cmd)
	}
	if err != nil {
		return -1, fmt.Errorf("starting %s: %w", describe(cmd), err)
	}
	return wait(ctx, sess, cmd)
}

// terminalSize reads the size of the first terminal among files, or 80x24.
func terminalSize(files ...*os.File) (width, height int) {
	for _, f := range files {
		w, h, err := term.GetSize(int(f.Fd()))
		if err == nil && w > 0 && h > 0 {
			return w, h
		}
	}
	return 80, 24
}

// SessionOption prepares a session before its command starts.
type SessionOption func(c *ssh.Client, sess *ssh.Session) error

// WithEnv passes env on to the session (sshd takes the names its AcceptEnv
// allows; den's machines allow every name).
func WithEnv(env map[string]string) SessionOption {
	return func(_ *ssh.Client, sess *ssh.Session) error {
		for k, v := range env {
			if err := sess.Setenv(k, v); err != nil {
				return fmt.Errorf("passing %s on to the machine: %w (does its sshd allow it with AcceptEnv?)", k, err)
			}
		}
		return nil
	}
}

// WithAgent forwards the ssh agent listening at socket (SSH_AUTH_SOCK) to
// the session, as ssh -A does.
func WithAgent(socket string) SessionOption {
	return func(c *ssh.Client, sess *ssh.Session) error {
		if socket == "" {
			return errors.New("forwarding the ssh agent: SSH_AUTH_SOCK is not set (is an agent running?)")
		}
		if err := agent.ForwardToRemote(c, socket); err != nil {
			return fmt.Errorf("forwarding the ssh agent at %s: %w", socket, err)
		}
		if err := agent.RequestAgentForwarding(sess); err != nil {
			return fmt.Errorf("forwarding the ssh agent: %w", err)
		}
		return nil
	}
}

func newSession(c *ssh.Client, opts []SessionOption) (*ssh.Session, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("opening ssh session: %w", err)
	}
	for _, o := range opts {
		if err := o(c, sess); err != nil {
			sess.Close()
			return nil, err
		}
	}
	return sess, nil
}
