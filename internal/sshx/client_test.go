package sshx

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// dialGuard bounds a call that must not hang; exceeding it is a hang, not a
// slow run.
const dialGuard = 30 * time.Second

func TestDial(t *testing.T) {
	user := ed25519Signer(t)
	host := ed25519Signer(t)
	other := ed25519Signer(t)
	tests := []struct {
		name     string
		hostKeys []ssh.Signer
		pin      ssh.PublicKey
		wantErr  string // substring; "" means success.
	}{
		{name: "pinned key accepted", hostKeys: []ssh.Signer{host}, pin: host.PublicKey()},
		// x/crypto prefers ECDSA: without HostKeyAlgorithms the server
		// would present its ECDSA key and the ed25519 pin would fail.
		{name: "ECDSA offered too", hostKeys: []ssh.Signer{ecdsaSigner(t), host}, pin: host.PublicKey()},
		{name: "wrong pinned key", hostKeys: []ssh.Signer{host}, pin: other.PublicKey(),
			wantErr: `host key for ADDR does not match the key den pinned in "/p/.den/web/host_key.pub" (server offered ssh-ed25519 ` + ssh.FingerprintSHA256(host.PublicKey())},
		{name: "pinned type not offered", hostKeys: []ssh.Signer{ecdsaSigner(t)}, pin: host.PublicKey(),
			wantErr: `sshd on ADDR offers no ssh-ed25519 host key (it offers ecdsa-sha2-nistp256), so it cannot prove it holds the key den pinned in "/p/.den/web/host_key.pub"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, serverOptions{hostKeys: tc.hostKeys, authorized: user.PublicKey()})
			target := Target{Addr: srv.addr, User: "den", Signer: user, HostKey: tc.pin, PinFile: "/p/.den/web/host_key.pub"}
			c, err := Dial(context.Background(), target)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrHostKeyMismatch) {
					t.Fatalf("Dial error = %v, want ErrHostKeyMismatch", err)
				}
				want := strings.ReplaceAll(tc.wantErr, "ADDR", srv.addr)
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("Dial error = %q\nwant it to contain %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			var out bytes.Buffer
			status, err := Run(context.Background(), c, "echo hi", nil, &out, nil)
			if err != nil || status != 0 || out.String() != "hi\n" {
				t.Fatalf("Run = %d, %v, stdout %q; want 0, nil, \"hi\\n\"", status, err, out.String())
			}
		})
	}
}

func TestDialRefusesMissingPin(t *testing.T) {
	_, err := Dial(context.Background(), Target{Addr: "127.0.0.1:1", User: "den", Signer: ed25519Signer(t)})
	if err == nil || !strings.Contains(err.Error(), "no pinned host key") {
		t.Fatalf("Dial error = %v, want a refusal without a pinned key", err)
	}
}

// TestDialSilentServer: a server that accepts TCP but never sends its banner
// (a frozen guest) must not hang Dial past ctx.
func TestDialSilentServer(t *testing.T) {
	tests := []struct {
		name    string
		cancel  bool // cancel ctx once the server accepted, else use a deadline.
		wantErr error
	}{
		{name: "deadline", wantErr: context.DeadlineExceeded},
		{name: "cancel", cancel: true, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					accepted <- c // held open, silent
				}
			}()
			t.Cleanup(func() {
				l.Close()
				select {
				case c := <-accepted:
					c.Close()
				default:
				}
			})

			var ctx context.Context
			var cancel context.CancelFunc
			if tc.cancel {
				ctx, cancel = context.WithCancel(context.Background())
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			}
			defer cancel()
			host := ed25519Signer(t)
			target := Target{Addr: l.Addr().String(), User: "den", Signer: ed25519Signer(t), HostKey: host.PublicKey()}
			done := make(chan error, 1)
			go func() {
				c, err := Dial(ctx, target)
				if c != nil {
					c.Close()
				}
				done <- err
			}()
			if tc.cancel {
				c := <-accepted
				accepted <- c // for cleanup
				cancel()
			}
			select {
			case err := <-done:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Dial error = %v, want %v", err, tc.wantErr)
				}
			case <-time.After(dialGuard):
				t.Fatal("Dial hung on a server that sends no banner")
			}
		})
	}
}

// reservePort returns a loopback address nothing listens on.
func reservePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestWaitReady(t *testing.T) {
	user := ed25519Signer(t)
	host := ed25519Signer(t)

	t.Run("retries until sshd listens", func(t *testing.T) {
		addr := reservePort(t)
		ctx, cancel := context.WithTimeout(context.Background(), dialGuard)
		defer cancel()
		type result struct {
			c   *ssh.Client
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := WaitReady(ctx, Target{Addr: addr, User: "den", Signer: user, HostKey: host.PublicKey()}, 50*time.Millisecond)
			done <- result{c, err}
		}()
		time.Sleep(200 * time.Millisecond) // let a few attempts be refused
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		startServer(t, serverOptions{hostKeys: []ssh.Signer{host}, authorized: user.PublicKey(), listener: l})
		r := <-done
		if r.err != nil {
			t.Fatalf("WaitReady: %v", r.err)
		}
		r.c.Close()
	})

	t.Run("gives up with a descriptive error", func(t *testing.T) {
		addr := reservePort(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := WaitReady(ctx, Target{Addr: addr, User: "den", Signer: user, HostKey: host.PublicKey()}, 50*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitReady error = %v, want context.DeadlineExceeded", err)
		}
		for _, want := range []string{"waiting for sshd on " + addr + ": context deadline exceeded (last error: ", "connection refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("WaitReady error = %q, want it to contain %q", err, want)
			}
		}
	})

	t.Run("host key mismatch is final", func(t *testing.T) {
		srv := startServer(t, serverOptions{hostKeys: []ssh.Signer{ed25519Signer(t)}, authorized: user.PublicKey()})
		ctx, cancel := context.WithTimeout(context.Background(), dialGuard)
		defer cancel()
		_, err := WaitReady(ctx, Target{Addr: srv.addr, User: "den", Signer: user, HostKey: host.PublicKey()}, 50*time.Millisecond)
		if !errors.Is(err, ErrHostKeyMismatch) || ctx.Err() != nil {
			t.Fatalf("WaitReady error = %v (ctx %v), want ErrHostKeyMismatch before ctx ends", err, ctx.Err())
		}
	})

	t.Run("auth failure is final after the grace", func(t *testing.T) {
		srv := startServer(t, serverOptions{hostKeys: []ssh.Signer{host}, authorized: ed25519Signer(t).PublicKey()})
		ctx, cancel := context.WithTimeout(context.Background(), dialGuard)
		defer cancel()
		_, err := WaitReady(ctx, Target{Addr: srv.addr, User: "den", Signer: user, HostKey: host.PublicKey()}, 50*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || ctx.Err() != nil {
			t.Fatalf("WaitReady error = %v (ctx %v), want an authentication error before ctx ends", err, ctx.Err())
		}
		if !strings.Contains(err.Error(), `authorized_keys holds den's key for user "den"`) {
			t.Errorf("WaitReady error = %q, want a hint about authorized_keys", err)
		}
	})
}

// dialTest starts a test server and returns a client connected to it.
func dialTest(t *testing.T) (*testServer, *ssh.Client) {
	t.Helper()
	user := ed25519Signer(t)
	host := ed25519Signer(t)
	srv := startServer(t, serverOptions{hostKeys: []ssh.Signer{host}, authorized: user.PublicKey()})
	c, err := Dial(context.Background(), Target{Addr: srv.addr, User: "den", Signer: user, HostKey: host.PublicKey()})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}
