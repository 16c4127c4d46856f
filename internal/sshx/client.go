package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrHostKeyMismatch is matched (errors.Is) by the error Dial returns when the
// server does not prove it holds the pinned host key.
var ErrHostKeyMismatch = errors.New("ssh host key does not match the pinned key")

// handshakeTimeout bounds Dial when ctx has no deadline.
const handshakeTimeout = 10 * time.Second

// authGrace is how long WaitReady keeps retrying authentication failures.
const authGrace = 2 * time.Second

// Target is one machine's sshd and the keys to reach it.
type Target struct {
	Addr    string        // host:port, e.g. "10.0.3.5:22".
	User    string        // Login user.
	Signer  ssh.Signer    // Login key.
	HostKey ssh.PublicKey // Pinned host key; required, checking cannot be turned off.
	PinFile string        // Where HostKey came from, named in mismatch errors; may be empty.
	// Dial, when set, opens the connection to sshd instead of a TCP dial to
	// Addr (a provider that reaches its machines another way); Addr still
	// names the machine in messages.
	Dial func(ctx context.Context) (net.Conn, error)
}

// DialConn opens the connection to t's sshd (t.Dial, else TCP to t.Addr)
// without speaking SSH on it.
func (t Target) DialConn(ctx context.Context) (net.Conn, error) {
	var conn net.Conn
	var err error
	if t.Dial != nil {
		conn, err = t.Dial(ctx)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", t.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to sshd on %s: %w", t.Addr, err)
	}
	return conn, nil
}

// hostKeyError is the mismatch error; it matches ErrHostKeyMismatch.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string        { return e.msg }
func (e *hostKeyError) Is(target error) bool { return target == ErrHostKeyMismatch }

func (t Target) pinned() string {
	if t.PinFile == "" {
		return "the key den pinned"
	}
	return fmt.Sprintf("the key den pinned in %q", t.PinFile)
}

const mismatchHint = "another machine may be answering at this address, or the guest's host key was replaced; check 'den status', or recreate the machine with 'den destroy' and 'den up'"

func (t Target) checkHostKey(_ string, _ net.Addr, key ssh.PublicKey) error {
	if bytes.Equal(key.Marshal(), t.HostKey.Marshal()) {
		return nil
	}
	return &hostKeyError{fmt.Sprintf("host key for %s does not match %s (server offered %s %s, pinned %s %s); %s",
		t.Addr, t.pinned(), key.Type(), ssh.FingerprintSHA256(key),
		t.HostKey.Type(), ssh.FingerprintSHA256(t.HostKey), mismatchHint)}
}

// hostKeyAlgorithms lists only the pinned key's algorithms. x/crypto/ssh
// prefers ECDSA and RSA host keys to ed25519, so without this list a server
// that also has, say, an ECDSA key would present that one and the pin would
// fail.
func hostKeyAlgorithms(key ssh.PublicKey) []string {
	if key.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{key.Type()}
}

// Dial connects to t.Addr and completes the SSH handshake, accepting only the
// pinned t.HostKey and offering only t.Signer. The whole exchange (TCP
// connect, banner, key exchange, authentication) ends when ctx does, or after
// 10 s when ctx has no deadline, so a frozen guest cannot hang den. A server
// that does not prove it holds the pinned key yields an error matching
// ErrHostKeyMismatch.
func Dial(ctx context.Context, t Target) (*ssh.Client, error) {
	if t.HostKey == nil {
		return nil, fmt.Errorf("no pinned host key for %s: den does not connect without one", t.Addr)
	}
	if t.Signer == nil {
		return nil, fmt.Errorf("no login key for %s", t.Addr)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
	}
	config := &ssh.ClientConfig{
		User:              t.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(t.Signer)},
		HostKeyCallback:   t.checkHostKey,
		HostKeyAlgorithms: hostKeyAlgorithms(t.HostKey),
	}

	conn, err := t.DialConn(ctx)
	if err != nil {
		return nil, err
	}
	// Ending ctx puts the connection's deadline in the past, which unblocks
	// every read and write of the handshake.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	c, chans, reqs, err := ssh.NewClientConn(conn, t.Addr, config)
	if !stop() {
		// ctx ended: the handshake failed because of it, or it just
		// finished and the connection's deadline is now in the past.
		if err == nil {
			c.Close()
		}
		conn.Close()
		return nil, fmt.Errorf("ssh handshake with %s did not complete: %w", t.Addr, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, t.handshakeError(err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

func (t Target) handshakeError(err error) error {
	var hk *hostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	var neg *ssh.AlgorithmNegotiationError
	if errors.As(err, &neg) && neg.What == "host key" {
		return &hostKeyError{fmt.Sprintf("sshd on %s offers no %s host key (it offers %s), so it cannot prove it holds %s; %s",
			t.Addr, t.HostKey.Type(), strings.Join(neg.RequestedAlgorithms, ", "), t.pinned(), mismatchHint)}
	}
	return fmt.Errorf("ssh handshake with %s: %w", t.Addr, err)
}

func isAuthError(err error) bool {
	return strings.Contains(err.Error(), "ssh: unable to authenticate")
}

// WaitReady dials t every poll (default 100 ms) until the handshake succeeds
// or ctx ends. Refused, unreachable, reset and timed-out connections are
// retried, as are handshakes cut short while sshd starts. A host key mismatch
// is final at once: the server that answered is not the pinned one, and
// waiting will not change that. An authentication failure is retried for 2 s
// (the guest may still be settling its login user) and is final after that,
// since den wrote the authorized key before boot. When ctx ends first, the
// error names the address and the last failure seen.
func WaitReady(ctx context.Context, t Target, poll time.Duration) (*ssh.Client, error) {
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	var lastErr error
	var authFailedAt time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("no attempt finished")
			}
			return nil, fmt.Errorf("waiting for sshd on %s: %w (last error: %v)", t.Addr, ctx.Err(), lastErr)
		case <-timer.C:
		}
		attemptCtx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		c, err := Dial(attemptCtx, t)
		cancel()
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, ErrHostKeyMismatch):
			return nil, err
		case isAuthError(err):
			if authFailedAt.IsZero() {
				authFailedAt = time.Now()
			} else if time.Since(authFailedAt) >= authGrace {
				return nil, fmt.Errorf("%w; check that the machine's authorized_keys holds den's key for user %q", err, t.User)
			}
		default:
			authFailedAt = time.Time{}
		}
		// An attempt cut short by ctx says nothing new; keep the previous cause.
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err
		}
		timer.Reset(poll)
	}
}
