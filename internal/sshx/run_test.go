package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

func TestRun(t *testing.T) {
	_, c := dialTest(t)
	tests := []struct {
		name       string
		cmd        string
		stdin      io.Reader
		wantStatus int
		wantStdout string
		wantStderr string
	}{
		{name: "stdout", cmd: "echo hi", wantStdout: "hi\n"},
		{name: "exit status", cmd: "exit 3", wantStatus: 3},
		{name: "separate stderr", cmd: "stderr", wantStatus: 1, wantStderr: "oops\n"},
		{name: "stdin", cmd: "cat", stdin: strings.NewReader("data\n"), wantStdout: "data\n"},
		{name: "no stdin", cmd: "cat"},
		{name: "no exit status", cmd: "noexit", wantStatus: 255},
		{name: "killed by signal", cmd: "killed", wantStatus: 128 + 9},
		{name: "shell without pty", cmd: "", stdin: strings.NewReader("echo x\n"), wantStdout: "echo x\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status, err := Run(context.Background(), c, tc.cmd, tc.stdin, &stdout, &stderr)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if status != tc.wantStatus || stdout.String() != tc.wantStdout || stderr.String() != tc.wantStderr {
				t.Fatalf("Run = %d, stdout %q, stderr %q; want %d, %q, %q",
					status, stdout.String(), stderr.String(), tc.wantStatus, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

func TestRunCancel(t *testing.T) {
	srv, c := dialTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, err := Run(ctx, c, "sleep", nil, io.Discard, io.Discard)
		done <- result{status, err}
	}()
	srv.waitEvent(t, "exec")
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.status != -1 {
		t.Fatalf("Run = %d, %v; want -1, context.Canceled", r.status, r.err)
	}
	ev := srv.waitEvent(t, "signal")
	var sig struct{ Signal string }
	if err := ssh.Unmarshal(ev.payload, &sig); err != nil || sig.Signal != "KILL" {
		t.Fatalf("server got signal %q (%v), want KILL", sig.Signal, err)
	}
}

// tempFiles returns two empty files for a session's stdout and stderr.
func tempFiles(t *testing.T) (stdout, stderr *os.File) {
	t.Helper()
	dir := t.TempDir()
	var files [2]*os.File
	for i, name := range []string{"stdout", "stderr"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files[i] = f
	}
	return files[0], files[1]
}

func readFile(t *testing.T, f *os.File) string {
	t.Helper()
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestShellNoTTY: with stdin a pipe, Shell requests no PTY and passes
// stdin, stdout and stderr through, like ssh without a terminal.
func TestShellNoTTY(t *testing.T) {
	tests := []struct {
		name       string
		cmd        string
		wantReq    string
		wantStatus int
		wantStdout string
		wantStderr string
	}{
		{name: "login shell", cmd: "", wantReq: "shell", wantStdout: "input\n"},
		{name: "command", cmd: "cat", wantReq: "exec", wantStdout: "input\n"},
		{name: "command status and stderr", cmd: "stderr", wantReq: "exec", wantStatus: 1, wantStderr: "oops\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := dialTest(t)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			io.WriteString(w, "input\n")
			w.Close()
			stdout, stderr := tempFiles(t)

			status, err := Shell(context.Background(), c, tc.cmd, r, stdout, stderr)
			if err != nil {
				t.Fatalf("Shell: %v", err)
			}
			if status != tc.wantStatus || readFile(t, stdout) != tc.wantStdout || readFile(t, stderr) != tc.wantStderr {
				t.Fatalf("Shell = %d, stdout %q, stderr %q; want %d, %q, %q",
					status, readFile(t, stdout), readFile(t, stderr), tc.wantStatus, tc.wantStdout, tc.wantStderr)
			}
			srv.waitEvent(t, tc.wantReq)
			if srv.sawEvent("pty-req") {
				t.Fatal("Shell requested a PTY although stdin is not a terminal")
			}
		})
	}
}

// openPTY opens a pseudo-terminal pair and returns the master and the slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pseudo-terminal's slave: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

func setSize(t *testing.T, f *os.File, cols, rows uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
}

// TestShellTTY: with stdin a terminal, Shell requests a PTY of the terminal's
// size and $TERM, forwards SIGWINCH as window-change, and restores the
// terminal mode on return.
func TestShellTTY(t *testing.T) {
	srv, c := dialTest(t)
	master, slave := openPTY(t)
	setSize(t, master, 100, 30)
	t.Setenv("TERM", "xterm-test")
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, err := Shell(context.Background(), c, "", slave, slave, slave)
		done <- result{status, err}
	}()

	ev := srv.waitEvent(t, "pty-req")
	var pty struct {
		Term                         string
		Columns, Rows, Width, Height uint32
		Modes                        string
	}
	if err := ssh.Unmarshal(ev.payload, &pty); err != nil {
		t.Fatal(err)
	}
	if pty.Term != "xterm-test" || pty.Columns != 100 || pty.Rows != 30 {
		t.Errorf("pty-req = %q %dx%d, want \"xterm-test\" 100x30", pty.Term, pty.Columns, pty.Rows)
	}
	srv.waitEvent(t, "shell")

	setSize(t, master, 120, 40)
	if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	ev = srv.waitEvent(t, "window-change")
	var wc struct{ Columns, Rows, Width, Height uint32 }
	if err := ssh.Unmarshal(ev.payload, &wc); err != nil {
		t.Fatal(err)
	}
	if wc.Columns != 120 || wc.Rows != 40 {
		t.Errorf("window-change = %dx%d, want 120x40", wc.Columns, wc.Rows)
	}

	r := <-done // the server exits 7 on window-change
	if r.err != nil || r.status != 7 {
		t.Fatalf("Shell = %d, %v; want 7, nil", r.status, r.err)
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Errorf("terminal mode not restored:\nbefore %+v\nafter  %+v", *before, *after)
	}
}

func TestRunSessionOptions(t *testing.T) {
	srv, c := dialTest(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	status, err := Run(context.Background(), c, "echo hi", nil, io.Discard, io.Discard,
		WithEnv(map[string]string{"EDITOR": "vi"}), WithAgent(sock))
	if err != nil || status != 0 {
		t.Fatalf("Run with options: %d, %v", status, err)
	}
	var sawEnv, sawAgent bool
	for len(srv.events) > 0 {
		e := <-srv.events
		switch e.kind {
		case "env":
			var kv struct{ Name, Value string }
			ssh.Unmarshal(e.payload, &kv)
			sawEnv = sawEnv || (kv.Name == "EDITOR" && kv.Value == "vi")
		case "auth-agent-req@openssh.com":
			sawAgent = true
		}
	}
	if !sawEnv || !sawAgent {
		t.Errorf("the server saw env %v, agent forwarding %v", sawEnv, sawAgent)
	}
	if _, err := Run(context.Background(), c, "echo hi", nil, io.Discard, io.Discard, WithAgent("")); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK") {
		t.Errorf("agent forwarding without an agent: %v", err)
	}
}
