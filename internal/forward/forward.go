package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultDialTimeout is how long a TCP connection waits for the guest to
// accept before the client's connection is reset.
const DefaultDialTimeout = 5 * time.Second

// DefaultUDPIdleTimeout is how long a UDP client's session, and its socket
// towards the guest, lives without a datagram in either direction.
const DefaultUDPIdleTimeout = 60 * time.Second

// maxUDPSessions bounds the guest-side sockets one UDP rule keeps open, so a
// stream of datagrams from ever new source ports cannot exhaust the fds.
const maxUDPSessions = 1024

// DialFunc makes a connection to addr ("10.0.3.5:80") on network "tcp".
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Forwarder holds the bound host ports of a set of rules. Make one with
// Listen, then call Serve once; Close ends it early.
type Forwarder struct {
	// Logf, when not nil, receives a line for each rule served and for each
	// failure worth a look (a guest that refuses, an accept error). Set the
	// fields before calling Serve.
	Logf func(format string, args ...any)
	// DialTimeout bounds the TCP dial to the guest; zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// UDPIdleTimeout ends a quiet UDP session; zero means
	// DefaultUDPIdleTimeout.
	UDPIdleTimeout time.Duration
	// Dial, when set, makes the TCP connections to the guest instead of
	// a direct dial (den tunnels them through the machine's ssh
	// connection when its address is not reachable from here). The conn
	// must be able to half-close (CloseWrite).
	Dial DialFunc

	rules []Rule
	lns   []io.Closer // per rule: *net.TCPListener or *net.UDPConn

	mu      sync.Mutex
	closed  bool
	conns   map[io.Closer]struct{} // open client and guest sockets
	done    chan struct{}          // closed by Close
	serving atomic.Bool
	wg      sync.WaitGroup // accept loops and connection handlers
}

// Listen validates the rules, checks them for Conflicts and binds every
// host port. If one cannot be bound it closes the others and returns an error
// naming the rule, wrapping a *BindError ("host port 127.0.0.1:8080 (tcp) is
// in use"). Nothing is forwarded until Serve.
func Listen(rules []Rule) (*Forwarder, error) {
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
	}
	if err := Conflicts(rules); err != nil {
		return nil, err
	}
	f := &Forwarder{
		rules: append([]Rule(nil), rules...),
		conns: make(map[io.Closer]struct{}),
		done:  make(chan struct{}),
	}
	for _, r := range rules {
		ln, err := bind(r)
		if err != nil {
			for _, l := range f.lns {
				l.Close()
			}
			return nil, fmt.Errorf("forward %s: %w", r, err)
		}
		f.lns = append(f.lns, ln)
	}
	return f, nil
}

// Serve binds the rules' host ports with Listen, then forwards until ctx
// ends; see (*Forwarder).Serve. logf may be nil.
func Serve(ctx context.Context, rules []Rule, logf func(format string, args ...any)) error {
	f, err := Listen(rules)
	if err != nil {
		return err
	}
	f.Logf = logf
	return f.Serve(ctx)
}

// Serve forwards until ctx ends or Close is called, then closes the
// listeners and every open connection, waits for its goroutines and returns
// nil. TCP: each accepted connection gets its own connection to the guest;
// both directions are copied and an end-of-stream is passed on as a
// half-close, so a client may shut its write side and still read the whole
// reply. If the guest cannot be reached the client's connection is reset.
// UDP: each client address gets its own socket towards the guest, and the
// guest's replies go back to that client; a session ends after
// UDPIdleTimeout without traffic. Serve returns an error only if a listener
// fails for good (after closing everything too), or when called twice.
func (f *Forwarder) Serve(ctx context.Context) error {
	if !f.serving.CompareAndSwap(false, true) {
		return errors.New("serve forwarder: Serve already called")
	}
	if f.isClosed() {
		return errors.New("serve forwarder: forwarder is closed")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(f.rules))
	for i, r := range f.rules {
		f.logf("forwarding %s", r)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			var err error
			switch ln := f.lns[i].(type) {
			case *net.TCPListener:
				err = f.serveTCP(ctx, ln, r)
			case *net.UDPConn:
				err = f.serveUDP(ln, r)
			}
			if err != nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case <-f.done:
	case err = <-errc:
		f.logf("%v", err)
	}
	cancel()
	f.Close()
	f.wg.Wait()
	return err
}

// Close closes the listeners and every open connection. It may be called
// more than once, with or without Serve; a running Serve returns once its
// goroutines have finished.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	close(f.done)
	for _, l := range f.lns {
		l.Close()
	}
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
	return nil
}

func (f *Forwarder) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *Forwarder) logf(format string, args ...any) {
	if f.Logf != nil {
		f.Logf(format, args...)
	}
}

// track registers c so Close closes it; if the forwarder is closed already
// it closes c and returns false.
func (f *Forwarder) track(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (f *Forwarder) untrack(c io.Closer) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

// serveTCP accepts connections until the listener is closed (nil) or fails
// for good (an error).
func (f *Forwarder) serveTCP(ctx context.Context, ln *net.TCPListener, r Rule) error {
	var backoff time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if f.isClosed() {
				return nil
			}
			if !transient(err) {
				return fmt.Errorf("forward %s: accept: %w", r, err)
			}
			// Out of fds or memory: wait for connections to end, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			f.logf("forward %s: accept: %v; retrying in %v", r, err, backoff)
			select {
			case <-time.After(backoff):
			case <-f.done:
				return nil
			}
			continue
		}
		backoff = 0
		if !f.track(c) {
			return nil
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			f.handleTCP(ctx, c, r)
		}()
	}
}

// transient tells whether an accept error may go away by itself.
func transient(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// handleTCP connects client to the guest and copies both ways until both
// sides have finished; the caller closes client.
func (f *Forwarder) handleTCP(ctx context.Context, client *net.TCPConn, r Rule) {
	timeout := f.DialTimeout
	if timeout == 0 {
		timeout = DefaultDialTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	var gc net.Conn
	var err error
	if f.Dial != nil {
		gc, err = f.Dial(dctx, "tcp", r.guestAddr())
	} else {
		var d net.Dialer
		gc, err = d.DialContext(dctx, "tcp", r.guestAddr())
	}
	cancel()
	if err == nil {
		if _, ok := gc.(halfCloser); !ok {
			gc.Close()
			err = fmt.Errorf("the connection to the guest cannot half-close")
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			f.logf("forward %s: connection from %s: %v", r, client.RemoteAddr(), err)
		}
		// A reset, so the client sees a failure and not an empty reply.
		client.SetLinger(0)
		return
	}
	guest := gc.(halfCloser)
	if !f.track(guest) {
		return
	}
	defer f.untrack(guest)

	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(guest, client)
	}()
	pipe(client, guest)
	<-done
}

// halfCloser is a connection whose write side can end alone: a TCP
// connection, or an ssh channel.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// pipe copies src to dst until src ends, then half-closes dst so the peer
// sees the end of the stream. On an error (a reset, or Close on shutdown) it
// resets both connections, which also ends the copy the other way.
func pipe(dst, src halfCloser) {
	_, err := io.Copy(dst, src)
	if err == nil {
		err = dst.CloseWrite()
	}
	if err != nil {
		for _, c := range []halfCloser{dst, src} {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		}
	}
}

// udpSession is one UDP client's socket towards the guest.
type udpSession struct {
	guest *net.UDPConn
	last  time.Time // last datagram either way; guarded by udpTable.mu
}

// udpTable is the sessions of one UDP rule, by client address.
type udpTable struct {
	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	idle     time.Duration
}

// serveUDP reads datagrams from clients until the listener is closed (nil)
// or fails (an error), and sends each on its client's session.
func (f *Forwarder) serveUDP(ln *net.UDPConn, r Rule) error {
	t := &udpTable{sessions: make(map[netip.AddrPort]*udpSession), idle: f.UDPIdleTimeout}
	if t.idle == 0 {
		t.idle = DefaultUDPIdleTimeout
	}
	guestAddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(r.guestAddr()))
	buf := make([]byte, 64<<10)
	warned := false
	for {
		n, from, err := ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if f.isClosed() {
				return nil
			}
			return fmt.Errorf("forward %s: read: %w", r, err)
		}
		t.mu.Lock()
		s := t.sessions[from]
		if s == nil {
			if len(t.sessions) >= maxUDPSessions {
				t.mu.Unlock()
				if !warned {
					f.logf("forward %s: %d clients active; dropping datagrams from new ones", r, maxUDPSessions)
					warned = true
				}
				continue
			}
			gc, err := net.DialUDP("udp", nil, guestAddr)
			if err != nil {
				t.mu.Unlock()
				f.logf("forward %s: datagram from %s: %v", r, from, err)
				continue
			}
			if !f.track(gc) {
				t.mu.Unlock()
				return nil
			}
			s = &udpSession{guest: gc}
			t.sessions[from] = s
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer f.untrack(gc)
				t.replies(ln, s, from)
			}()
		}
		s.last = time.Now()
		t.mu.Unlock()
		// Errors are the guest's business, as on a real network: a refused
		// port (ECONNREFUSED from an earlier ICMP) or a closed session.
		s.guest.Write(buf[:n])
	}
}

// replies sends the guest's datagrams on s back to client until the session
// has been idle for t.idle or its socket is closed; it then forgets s.
func (t *udpTable) replies(ln *net.UDPConn, s *udpSession, client netip.AddrPort) {
	buf := make([]byte, 64<<10)
	for {
		t.mu.Lock()
		deadline := s.last.Add(t.idle)
		t.mu.Unlock()
		s.guest.SetReadDeadline(deadline)
		n, err := s.guest.Read(buf)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.mu.Lock()
			if time.Since(s.last) >= t.idle {
				delete(t.sessions, client)
				t.mu.Unlock()
				return
			}
			t.mu.Unlock()
			continue
		case errors.Is(err, syscall.ECONNREFUSED):
			continue // an ICMP port unreachable from the guest
		default:
			t.mu.Lock()
			if t.sessions[client] == s {
				delete(t.sessions, client)
			}
			t.mu.Unlock()
			return
		}
		t.mu.Lock()
		s.last = time.Now()
		t.mu.Unlock()
		ln.WriteToUDPAddrPort(buf[:n], client)
	}
}
