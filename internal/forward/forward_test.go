package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// replyGuest is a TCP "guest" on loopback: it reads a request until the
// client half-closes, then answers "reply:" + request and closes. Each
// accepted connection is announced on accepted.
type replyGuest struct {
	port     int
	accepted chan struct{}
}

func startReplyGuest(t *testing.T) *replyGuest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &replyGuest{port: ln.Addr().(*net.TCPAddr).Port, accepted: make(chan struct{}, 100)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.accepted <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := io.ReadAll(c)
				if err != nil {
					return
				}
				c.Write(append([]byte("reply:"), req...))
			}()
		}
	}()
	return g
}

// startUDPGuest answers each datagram with "pong:" + datagram and returns
// its port.
func startUDPGuest(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(append([]byte("pong:"), buf[:n]...), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// logBuf collects Logf lines.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// serving is a Forwarder serving in the background.
type serving struct {
	cancel context.CancelFunc
	done   chan error // Serve's result
	log    *logBuf
}

// stop cancels Serve and returns its result.
func (s *serving) stop() error {
	s.cancel()
	return <-s.done
}

// startServe binds rules and serves them until the test ends.
func startServe(t *testing.T, rules ...Rule) *serving {
	t.Helper()
	f, err := Listen(rules)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	s := &serving{done: make(chan error, 1), log: &logBuf{}}
	f.Logf = s.log.logf
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- f.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		f.Close()
	})
	return s
}

func loopback(proto string, host, guest int) Rule {
	return Rule{Protocol: proto, HostIP: "127.0.0.1", HostPort: host, GuestIP: "127.0.0.1", GuestPort: guest}
}

func TestTCPRequestResponse(t *testing.T) {
	g := startReplyGuest(t)
	host := freePort(t, "tcp")
	startServe(t, loopback("tcp", host, g.port))

	tests := []struct {
		name string
		req  []byte
	}{
		{name: "short", req: []byte("GET / HTTP/1.0\r\n\r\n")},
		{name: "empty", req: nil},
		{name: "large", req: bytes.Repeat([]byte("0123456789abcdef"), 1<<16)}, // 1 MiB
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The guest answers only after it has seen the end of the
			// request: the half-close has to pass through the forwarder.
			if _, err := c.Write(tc.req); err != nil {
				t.Fatal(err)
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			want := append([]byte("reply:"), tc.req...)
			if !bytes.Equal(got, want) {
				t.Fatalf("reply is %d bytes %.40q, want %d bytes %.40q", len(got), got, len(want), want)
			}
		})
	}
}

func TestTCPConcurrent(t *testing.T) {
	g := startReplyGuest(t)
	host := freePort(t, "tcp")
	startServe(t, loopback("tcp", host, g.port))

	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- func() error {
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
				if err != nil {
					return err
				}
				defer c.Close()
				req := fmt.Sprintf("request %d", i)
				c.Write([]byte(req))
				c.(*net.TCPConn).CloseWrite()
				got, err := io.ReadAll(c)
				if err != nil {
					return err
				}
				if string(got) != "reply:"+req {
					return fmt.Errorf("got %q for %q", got, req)
				}
				return nil
			}()
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestTCPGuestRefuses(t *testing.T) {
	guest := freePort(t, "tcp") // nothing listens there
	host := freePort(t, "tcp")
	s := startServe(t, loopback("tcp", host, guest))

	// The reset may come before connect(2) has returned, or after.
	var got []byte
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
	if err == nil {
		got, err = io.ReadAll(c)
		c.Close()
	}
	if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial and read = %q, %v; want nothing and a connection reset", got, err)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if log := s.log.String(); !strings.Contains(log, "connection refused") {
		t.Fatalf("log %q does not mention the refused guest", log)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	g := startReplyGuest(t)
	host := freePort(t, "tcp")
	s := startServe(t, loopback("tcp", host, g.port))

	// An open connection, with its guest side established.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-g.accepted

	if err := s.stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	// The open connection was closed...
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Fatalf("read %q from a connection the forwarder closed", got)
	}
	// ... and the host port no longer accepts.
	c2, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
	if err == nil {
		c2.Close()
		t.Fatal("host port still accepts connections after Serve returned")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after stop: %v, want connection refused", err)
	}
}

func TestUDPRoundTrip(t *testing.T) {
	guest := startUDPGuest(t)
	host := freePort(t, "udp")
	s := startServe(t, loopback("udp", host, guest))

	// Two clients, each with its own session, each getting its own replies.
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", host))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	buf := make([]byte, 2048)
	for round := range 2 {
		for i, c := range clients {
			msg := fmt.Sprintf("client %d round %d", i, round)
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			if got := string(buf[:n]); got != "pong:"+msg {
				t.Fatalf("reply %q, want %q", got, "pong:"+msg)
			}
		}
	}

	if err := s.stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	// The host port is free again.
	c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", host))
	if err != nil {
		t.Fatalf("host port still bound after Serve returned: %v", err)
	}
	c.Close()
}

func TestListenPortTaken(t *testing.T) {
	tests := []struct {
		name  string
		taken func(t *testing.T) int
		proto string
	}{
		{name: "tcp", taken: holdTCP, proto: "tcp"},
		{name: "udp", taken: holdUDP, proto: "udp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok := Rule{Protocol: "tcp", HostIP: "127.0.0.1", HostPort: freePort(t, "tcp"), GuestIP: "10.0.3.254", GuestPort: 80}
			taken := Rule{Protocol: tc.proto, HostIP: "127.0.0.1", HostPort: tc.taken(t), GuestIP: "10.0.3.254", GuestPort: 81}

			f, err := Listen([]Rule{ok, taken})
			if err == nil {
				f.Close()
				t.Fatal("Listen succeeded on a taken port")
			}
			want := fmt.Sprintf("forward %s: host port 127.0.0.1:%d (%s) is in use", taken, taken.HostPort, tc.proto)
			if err.Error() != want {
				t.Fatalf("Listen: %q, want %q", err, want)
			}
			var be *BindError
			if !errors.As(err, &be) || be.Rule != taken {
				t.Fatalf("Listen: %v does not wrap a *BindError for %v", err, taken)
			}
			// The port bound before the failure was released.
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ok.HostPort))
			if err != nil {
				t.Fatalf("first rule's port still bound: %v", err)
			}
			ln.Close()
		})
	}
}

func TestListenRejects(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{
			name:  "invalid rule",
			rules: []Rule{{Protocol: "tcp", HostIP: "localhost", HostPort: 8080, GuestIP: "10.0.3.254", GuestPort: 80}},
			want:  `host_ip "localhost" is not an IP address`,
		},
		{
			name:  "conflict",
			rules: []Rule{tcpRule("127.0.0.1", 8080), tcpRule("0.0.0.0", 8080)},
			want:  "both use host port 8080 (tcp)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Listen(tc.rules)
			if err == nil {
				f.Close()
				t.Fatal("Listen succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Listen: %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestServeFunc(t *testing.T) {
	g := startReplyGuest(t)
	host := freePort(t, "tcp")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Serve logs "forwarding RULE" once it has bound the rules.
	bound := make(chan string, 1)
	logf := func(format string, args ...any) {
		select {
		case bound <- fmt.Sprintf(format, args...):
		default:
		}
	}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, []Rule{loopback("tcp", host, g.port)}, logf) }()
	select {
	case line := <-bound:
		if !strings.HasPrefix(line, "forwarding 127.0.0.1:") {
			t.Fatalf("first log line %q, want forwarding ...", line)
		}
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "reply:x" {
		t.Fatalf("reply %q, %v; want %q", got, err, "reply:x")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}

	// A taken port: Serve fails at once.
	err = Serve(context.Background(), []Rule{loopback("tcp", holdTCP(t), g.port)}, nil)
	if err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("Serve on a taken port = %v, want an in-use error", err)
	}
}

func TestCloseWithoutServe(t *testing.T) {
	host := freePort(t, "tcp")
	f, err := Listen([]Rule{loopback("tcp", host, 80)})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	f.Close()
	if err := f.Serve(context.Background()); err == nil {
		t.Fatal("Serve after Close = nil, want an error")
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", host))
	if err != nil {
		t.Fatalf("port still bound after Close: %v", err)
	}
	ln.Close()
}
