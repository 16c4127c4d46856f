package lxd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/provider"
)

// DialGuest reaches a port of a running machine. On this host's server
// it dials the machine's address on the bridge. On a remote server, whose
// bridge is not routable from here and whose API port may be all that is
// open, it reaches sshd (port 22) through an LXD exec stream: 'sshd -i'
// in the guest speaks SSH on its standard input and output, with the
// guest's own host key, so the pin holds. Other ports of a remote machine
// are reached through ssh (den's forwarder does that).
func (p *Provider) DialGuest(ctx context.Context, name string, port int) (net.Conn, error) {
	m, err := p.forName(ctx, name)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("machine %q does not exist", name)
	}
	if m.srv.local() {
		addr, err := p.address(m, name)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	}
	if port != 22 {
		return nil, fmt.Errorf("port %d of machine %q on remote %q: %w (only sshd is reached through LXD)", port, name, m.pl.Remote, provider.ErrNotSupported)
	}
	// sshd needs its privilege separation folder, which a box that starts
	// sshd from a socket unit (den's) makes only per connection.
	return execConn(ctx, m.is, name, []string{"/bin/sh", "-c", "mkdir -p -m 0755 /run/sshd && exec /usr/sbin/sshd -i"})
}

// address is the machine's IPv4 address on eth0.
func (p *Provider) address(m *machine, name string) (string, error) {
	st, _, err := m.is.GetInstanceState(name)
	if err != nil {
		return "", err
	}
	for _, a := range st.Network["eth0"].Addresses {
		if a.Family == "inet" && a.Scope == "global" {
			return a.Address, nil
		}
	}
	return "", fmt.Errorf("machine %q has no IPv4 address on eth0 yet", name)
}

// execConn runs cmd in the instance and returns its standard input and
// output as a net.Conn (its standard error is kept for errors). Closing
// the conn closes the command's input; the command's end ends the reads.
func execConn(ctx context.Context, is lxdclient.InstanceServer, name string, cmd []string) (net.Conn, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &streamConn{in: inW, out: outR, name: name, stderr: &lockedBuffer{}}
	x, err := startExec(is, name, api.InstanceExecPost{Command: cmd}, lxdclient.InstanceExecArgs{
		Stdin: inR, Stdout: outW, Stderr: c.stderr,
	})
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	go func() {
		rc, err := x.wait(context.Background())
		if err == nil && rc != 0 {
			err = fmt.Errorf("%s exited with status %d: %s", cmd[0], rc, bytes.TrimSpace(c.stderr.Bytes()))
		}
		if err == nil {
			err = io.EOF
		}
		outW.CloseWithError(err)
		inR.Close()
	}()
	return c, nil
}

// streamConn is a net.Conn over an exec stream's pipes. Deadlines are
// coarse: a deadline that passes closes the conn (what den's ssh client
// uses them for: ending a handshake that must not hang).
type streamConn struct {
	in     *io.PipeWriter
	out    *io.PipeReader
	name   string
	stderr *lockedBuffer

	mu    sync.Mutex
	timer *time.Timer
	once  sync.Once
}

func (c *streamConn) Read(b []byte) (int, error)  { return c.out.Read(b) }
func (c *streamConn) Write(b []byte) (int, error) { return c.in.Write(b) }

func (c *streamConn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		c.out.CloseWithError(net.ErrClosed)
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return execAddr("den") }
func (c *streamConn) RemoteAddr() net.Addr { return execAddr(c.name) }

func (c *streamConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	if d := time.Until(t); d > 0 {
		c.timer = time.AfterFunc(d, func() { c.Close() })
		return nil
	}
	c.Close()
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

// execAddr names an end of an exec stream.
type execAddr string

func (a execAddr) Network() string { return "lxd-exec" }
func (a execAddr) String() string  { return string(a) }

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
