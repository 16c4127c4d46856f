package sshx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// event is one request the test server saw on a session channel.
type event struct {
	kind    string // request type ("exec", "shell", "pty-req", "signal", …).
	payload []byte
}

// testServer is an in-process sshd with canned commands:
//
//	"echo hi"  writes "hi\n", exit 0
//	"exit 3"   exit 3
//	"stderr"   writes "oops\n" to stderr, exit 1
//	"cat"      copies stdin to stdout, exit 0
//	"noexit"   closes without an exit status
//	"killed"   reports exit-signal KILL
//	"sleep"    blocks until the channel closes
//
// A shell request without a PTY behaves like "cat"; with a PTY it waits for
// a window-change and then exits 7. Every request is sent on events.
type testServer struct {
	addr   string
	events chan event
}

type serverOptions struct {
	hostKeys   []ssh.Signer
	authorized ssh.PublicKey
	listener   net.Listener // nil: a new one on 127.0.0.1:0.
}

func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), opts.authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	for _, k := range opts.hostKeys {
		config.AddHostKey(k)
	}
	l := opts.listener
	if l == nil {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	s := &testServer{addr: l.Addr().String(), events: make(chan event, 64)}

	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go s.serveConn(conn, config)
		}
	}()
	return s
}

func (s *testServer) serveConn(conn net.Conn, config *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.serveSession(ch, chReqs)
	}
}

func exitStatus(ch ssh.Channel, status uint32) {
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
	ch.Close()
}

func (s *testServer) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	pty := false
	for req := range reqs {
		s.events <- event{req.Type, req.Payload}
		switch req.Type {
		case "pty-req":
			pty = true
			req.Reply(true, nil)
		case "env", "auth-agent-req@openssh.com":
			req.Reply(true, nil)
		case "window-change":
			exitStatus(ch, 7)
		case "shell":
			req.Reply(true, nil)
			if !pty {
				go func() {
					io.Copy(ch, ch)
					exitStatus(ch, 0)
				}()
			}
		case "exec":
			var cmd struct{ Command string }
			ssh.Unmarshal(req.Payload, &cmd)
			req.Reply(true, nil)
			go s.exec(ch, cmd.Command)
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

func (s *testServer) exec(ch ssh.Channel, cmd string) {
	switch cmd {
	case "echo hi":
		io.WriteString(ch, "hi\n")
		exitStatus(ch, 0)
	case "exit 3":
		exitStatus(ch, 3)
	case "stderr":
		io.WriteString(ch.Stderr(), "oops\n")
		exitStatus(ch, 1)
	case "cat":
		io.Copy(ch, ch)
		exitStatus(ch, 0)
	case "noexit":
		ch.Close()
	case "killed":
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: "KILL"}))
		ch.Close()
	case "sleep":
		io.Copy(io.Discard, ch) // until the client closes
	default:
		io.WriteString(ch.Stderr(), "unknown command\n")
		exitStatus(ch, 127)
	}
}

// waitEvent returns the next event of the given kind, failing the test if
// none arrives within a generous bound (a guard against hangs, not a timing
// assertion).
func (s *testServer) waitEvent(t *testing.T, kind string) event {
	t.Helper()
	guard := time.After(30 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if ev.kind == kind {
				return ev
			}
		case <-guard:
			t.Fatalf("server never saw a %q request", kind)
		}
	}
}

// sawEvent drains the queued events and reports whether one was of kind.
func (s *testServer) sawEvent(kind string) bool {
	for {
		select {
		case ev := <-s.events:
			if ev.kind == kind {
				return true
			}
		default:
			return false
		}
	}
}

func ed25519Signer(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ecdsaSigner(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
