package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
)

// DefaultSocket is where den serve listens, and where den looks for it.
const DefaultSocket = "/run/den/den.sock"

// DefaultGroup owns the socket: its members may connect (and are then
// authorized by their own uid).
const DefaultGroup = "den"

// LockHome takes DEN_HOME's server lock: one den serve per DEN_HOME. A
// second one fails at once, naming the first's pid.
func LockHome(home layout.Home) (*lock.Lock, error) {
	dir := StateDir(home)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lk, err := lock.Acquire(context.Background(), filepath.Join(dir, "serve.lock"), "den serve", 0)
	if errors.Is(err, lock.ErrHeld) {
		return nil, fmt.Errorf("den serve already runs for DEN_HOME %s: %w", home.Path(), err)
	}
	return lk, err
}

// ListenUnix listens on the socket at path with mode 0660 and group
// (created as a system group when missing; "" keeps root's). A socket
// file left by a server that died is replaced; one a live server answers
// on is an error.
func ListenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: remove it or choose another --socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another den serve answers on %s (another DEN_HOME?): stop it or choose another --socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	}
	gid := -1
	if group != "" {
		g, err := ensureGroup(group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	// Bind under a umask that leaves the socket closed until its mode
	// and group are set.
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// ensureGroup returns the gid of group, creating it (a system group) when
// missing.
func ensureGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		var unknown user.UnknownGroupError
		if !errors.As(err, &unknown) {
			return 0, err
		}
		if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("create group %s: %v: %s", name, err, out)
		}
		if g, err = user.LookupGroup(name); err != nil {
			return 0, err
		}
	}
	return strconv.Atoi(g.Gid)
}

// Activated returns the listeners systemd passed (socket activation:
// LISTEN_PID, LISTEN_FDS), or none.
func Activated() ([]net.Listener, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	var out []net.Listener
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "systemd-socket-"+strconv.Itoa(fd))
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("socket from systemd (fd %d): %w", fd, err)
		}
		out = append(out, l)
	}
	return out, nil
}
