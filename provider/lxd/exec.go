package lxd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"
	"github.com/gorilla/websocket"
	"golang.org/x/term"

	"github.com/den-dev/den/provider"
)

// Exec runs cmd in the running instance through LXD's exec API (what
// 'lxc exec' does), on this host's server or a remote one alike: as
// cmd.UID:cmd.GID (no supplementary groups), in cmd.Dir, with cmd.Env
// (LXD adds PATH, LANG, and for root HOME and USER, only when cmd.Env
// lacks them, and the instance's environment.* keys). The streams travel
// over websockets, so no file of den's reaches the guest. With cmd.TTY
// the command gets a pseudo terminal LXD makes, sized as den's terminal
// and resized with it (SIGWINCH); den's terminal is in raw mode meanwhile.
// Without it stdin, stdout and stderr are separate streams; stdin's end
// closes the command's. The status is LXD's: 128+N for a command signal
// N ended. ctx's end kills the command (SIGKILL through the control
// socket) and Exec returns ctx's error.
func (p *Provider) Exec(ctx context.Context, name string, cmd provider.ExecCommand) (int, error) {
	if len(cmd.Argv) == 0 {
		return -1, fmt.Errorf("exec in %q: no command", name)
	}
	if cmd.UID < 0 || cmd.GID < 0 {
		return -1, fmt.Errorf("exec in %q: bad user %d:%d", name, cmd.UID, cmd.GID)
	}
	m, err := p.forName(ctx, name)
	if err != nil {
		return -1, err
	}
	if m == nil {
		return -1, fmt.Errorf("machine %q does not exist", name)
	}
	env := make(map[string]string, len(cmd.Env))
	for _, kv := range cmd.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	post := api.InstanceExecPost{
		Command: cmd.Argv, Environment: env, Cwd: cmd.Dir,
		User: uint32(cmd.UID), Group: uint32(cmd.GID),
	}
	args := lxdclient.InstanceExecArgs{Stdin: readerOf(cmd.Stdin), Stdout: writerOf(cmd.Stdout), Stderr: writerOf(cmd.Stderr)}
	var winch chan os.Signal
	if cmd.TTY {
		// Resizes from now on reach the command (the first once it runs).
		winch = make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		post.Interactive = true
		post.Width, post.Height = terminalSize(cmd.Stdout, cmd.Stdin)
		if cmd.Stdin != nil && term.IsTerminal(int(cmd.Stdin.Fd())) {
			state, err := term.MakeRaw(int(cmd.Stdin.Fd()))
			if err != nil {
				return -1, fmt.Errorf("put the terminal in raw mode: %w", err)
			}
			defer term.Restore(int(cmd.Stdin.Fd()), state)
		}
	}
	x, err := startExec(m.is, name, post, args)
	if err != nil {
		return -1, err
	}
	if winch != nil {
		stop := x.followResizes(winch, cmd.Stdout, cmd.Stdin)
		defer stop()
	}
	return x.wait(ctx)
}

// readerOf is f as a stream's source; nothing when f is nil.
func readerOf(f *os.File) io.Reader {
	if f == nil {
		return strings.NewReader("")
	}
	return f
}

// writerOf is f as a stream's sink; a discard when f is nil.
func writerOf(f *os.File) io.Writer {
	if f == nil {
		return io.Discard
	}
	return f
}

// terminalSize is the size of the first terminal among files, or 80x24.
func terminalSize(files ...*os.File) (width, height int) {
	for _, f := range files {
		if f == nil {
			continue
		}
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 && h > 0 {
			return w, h
		}
	}
	return 80, 24
}

// execution is a command LXD runs through its exec API: an operation
// whose metadata holds the exit status at its end, websockets for the
// streams (the client library relays them), and a control socket for
// signals and window sizes.
type execution struct {
	op   lxdclient.Operation
	what string        // "ls in machine web", for errors
	data chan bool     // closed when the output streams have ended
	live chan struct{} // closed when ctl is set

	mu  sync.Mutex
	ctl *websocket.Conn
}

// startExec starts post in instance name, relaying args' streams. It
// always waits for den's websockets and never records output (LXD
// refuses the two together).
func startExec(is lxdclient.InstanceServer, name string, post api.InstanceExecPost, args lxdclient.InstanceExecArgs) (*execution, error) {
	post.WaitForWS, post.RecordOutput = true, false
	x := &execution{what: fmt.Sprintf("%s in machine %q", post.Command[0], name), data: make(chan bool), live: make(chan struct{})}
	args.DataDone = x.data
	args.Control = func(c *websocket.Conn) {
		x.mu.Lock()
		x.ctl = c
		x.mu.Unlock()
		close(x.live)
	}
	op, err := is.ExecInstance(name, post, &args)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", x.what, err)
	}
	x.op = op
	return x, nil
}

// wait waits for the command's end and its last output, and returns its
// exit status. When ctx ends first, it kills the command and returns
// ctx's error once LXD reports the command gone (or after ten seconds).
func (x *execution) wait(ctx context.Context) (int, error) {
	defer x.closeControl()
	err := x.op.WaitContext(ctx)
	if ctx.Err() != nil {
		x.kill()
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		x.op.WaitContext(wctx)
		return -1, ctx.Err()
	}
	if err != nil {
		return -1, fmt.Errorf("run %s: %w", x.what, err)
	}
	select {
	case <-x.data:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	rc, ok := x.op.Get().Metadata["return"].(float64)
	if !ok {
		return -1, fmt.Errorf("run %s: LXD reported no exit status", x.what)
	}
	return int(rc), nil
}

// control sends msg on the control socket.
func (x *execution) control(msg api.InstanceExecControl) error {
	select {
	case <-x.live:
	case <-time.After(5 * time.Second):
		return errors.New("LXD gave no control socket")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ctl == nil {
		return net.ErrClosed
	}
	x.ctl.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return x.ctl.WriteJSON(msg)
}

// kill ends the command: SIGKILL through the control socket, then the
// socket's close (on which LXD kills the command too).
func (x *execution) kill() {
	x.control(api.InstanceExecControl{Command: "signal", Signal: int(syscall.SIGKILL)})
	x.closeControl()
}

func (x *execution) closeControl() {
	select {
	case <-x.live:
	default:
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ctl != nil {
		x.ctl.Close()
		x.ctl = nil
	}
}

// followResizes sends the terminal's size to LXD at every signal on
// winch until the returned func is called.
func (x *execution) followResizes(winch <-chan os.Signal, files ...*os.File) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				w, h := terminalSize(files...)
				x.control(api.InstanceExecControl{Command: "window-resize", Args: map[string]string{"width": strconv.Itoa(w), "height": strconv.Itoa(h)}})
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
