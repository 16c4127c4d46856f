package forward

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// spawnChild starts the test binary as a forwarder in mode with rules and
// makes sure it is ended, by its pid, when the test ends.
func spawnChild(t *testing.T, mode string, pidfile, logfile string, rules ...Rule) (int, error) {
	t.Helper()
	t.Setenv(childEnv, mode)
	argv := []string{os.Args[0], "--pidfile", pidfile}
	for _, r := range rules {
		argv = append(argv, r.Arg())
	}
	pid, err := Spawn(argv, pidfile, logfile, 30*time.Second)
	if err == nil {
		t.Cleanup(func() { endChild(t, pid, pidfile) })
	}
	return pid, err
}

// endChild stops the child by its pidfile and, should that fail, kills its
// pid; Spawn reaps it.
func endChild(t *testing.T, pid int, pidfile string) {
	if err := Stop(pidfile); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if _, err := procStatOf(pid); err == nil {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// procStatOf is procStat's state, for a live, non-zombie process only.
func procStatOf(pid int) (byte, error) {
	state, _, err := procStat(pid)
	if err == nil && (state == 'Z' || state == 'X') {
		return 0, errors.New("exited")
	}
	return state, err
}

func TestSpawnServeStop(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "forward.pid")
	logfile := filepath.Join(dir, "forward.log")
	g := startReplyGuest(t)
	host := freePort(t, "tcp")

	pid, err := spawnChild(t, "serve", pidfile, logfile, loopback("tcp", host, g.port))
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	if pid == os.Getpid() {
		t.Fatal("Spawn returned the test's own pid")
	}
	if got, ok := Running(pidfile); !ok || got != pid {
		t.Fatalf("Running = %d, %v; want %d, true", got, ok, pid)
	}
	// Its own session.
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Fatalf("child session = %d, %v; want %d", sid, err, pid)
	}

	// Bound before the pidfile: the port forwards right away.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
	if err != nil {
		t.Fatalf("dial the forwarded port: %v", err)
	}
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "reply:ping" {
		t.Fatalf("reply %q, %v; want %q", got, err, "reply:ping")
	}

	// A second forwarder on the same pidfile is refused.
	if _, err := Spawn([]string{os.Args[0]}, pidfile, logfile, time.Second); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("already running as pid %d", pid)) {
		t.Fatalf("second Spawn: %v, want already running", err)
	}

	if err := Stop(pidfile); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, ok := Running(pidfile); ok {
		t.Fatal("Running after Stop")
	}
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pidfile after Stop: %v", err)
	}
	if _, err := procStatOf(pid); err == nil {
		t.Fatalf("pid %d still runs after Stop", pid)
	}
	if _, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Stop: %v, want connection refused", err)
	}
	// It was stopped by SIGTERM, not killed: it logged its clean exit.
	if b, _ := os.ReadFile(logfile); !strings.Contains(string(b), "stopped") {
		t.Fatalf("log %q has no clean stop", b)
	}
	// Stopping again is not an error.
	if err := Stop(pidfile); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestSpawnChildFails(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "forward.pid")
	logfile := filepath.Join(dir, "forward.log")
	// An earlier run's lines must not be quoted.
	if err := os.WriteFile(logfile, []byte("old run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken := holdTCP(t)

	_, err := spawnChild(t, "serve", pidfile, logfile, loopback("tcp", taken, 80))
	if err == nil {
		t.Fatal("Spawn succeeded with a taken port")
	}
	msg := err.Error()
	for _, want := range []string{
		"forwarder exited at start (exit status 1)",
		fmt.Sprintf("last lines of %q", logfile),
		fmt.Sprintf("host port 127.0.0.1:%d (tcp) is in use", taken),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Spawn: %q; want it to contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "old run") {
		t.Errorf("Spawn: %q quotes an earlier run", msg)
	}
}

func TestSpawnNotReady(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "forward.pid")
	logfile := filepath.Join(dir, "forward.log")
	t.Setenv(childEnv, "hang")

	// Spawn kills and reaps the child itself when it fails.
	_, err := Spawn([]string{os.Args[0], "--pidfile", pidfile}, pidfile, logfile, 200*time.Millisecond)
	if err == nil {
		t.Fatal("Spawn succeeded with a child that never writes its pidfile")
	}
	if msg := err.Error(); !strings.Contains(msg, "did not write") || !strings.Contains(msg, "killed it") ||
		!strings.Contains(msg, "never ready") {
		t.Fatalf("Spawn: %q", msg)
	}
}

func TestSpawnNoInheritedFDs(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "forward.pid")
	logfile := filepath.Join(dir, "forward.log")
	leak := filepath.Join(dir, "leak")
	if err := os.WriteFile(leak, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// An fd without close-on-exec, as C code or den's own parent may leave.
	fd, err := unix.Open(leak, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
		t.Fatalf("test fd flags = %#x, %v; want no FD_CLOEXEC", flags, err)
	}
	t.Setenv(leakEnv, leak)

	if _, err := spawnChild(t, "fds", pidfile, logfile, loopback("tcp", freePort(t, "tcp"), 80)); err != nil {
		t.Fatalf("Spawn: %v", err)
	}
}

func TestStopEscalates(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "forward.pid")
	logfile := filepath.Join(dir, "forward.log")

	pid, err := spawnChild(t, "stubborn", pidfile, logfile)
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	// It ignores SIGTERM; Stop kills it after the wait.
	if err := Stop(pidfile); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := procStatOf(pid); err == nil {
		t.Fatalf("pid %d still runs after Stop", pid)
	}
	if _, ok := Running(pidfile); ok {
		t.Fatal("Running after Stop")
	}
}

func TestWritePidfile(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "forward.pid")
	if err := WritePidfile(pidfile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 3 || lines[0] != strconv.Itoa(os.Getpid()) || lines[1] == "" || lines[2] != "" {
		t.Fatalf("pidfile %q, want the pid, an identity line and a final newline", b)
	}
	// The identity is right, but this process was not started as the
	// forwarder of that pidfile: a forged pidfile names no process to signal.
	if pid, ok := Running(pidfile); ok {
		t.Fatalf("Running = %d, %v; want false for a process that is not the pidfile's forwarder", pid, ok)
	}
	// No temporary files are left beside it.
	entries, _ := os.ReadDir(filepath.Dir(pidfile))
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want only the pidfile", len(entries))
	}
}

// TestStopOtherProcess writes pidfiles that name this very test process but
// do not identify it. Stop must not signal it (a SIGTERM would end the test
// binary) and must treat the pidfile as stale.
func TestStopOtherProcess(t *testing.T) {
	id, err := identity(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start, boot, _ := strings.Cut(id, " ")
	other, err := strconv.Atoi(start)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
	}{
		{name: "other start time", content: fmt.Sprintf("%d\n%d %s\n", os.Getpid(), other+1, boot)},
		{name: "other boot", content: fmt.Sprintf("%d\n%s 00000000-0000-0000-0000-000000000000\n", os.Getpid(), start)},
		{name: "no identity", content: fmt.Sprintf("%d\n\n", os.Getpid())},
		{name: "right identity, not a forwarder", content: fmt.Sprintf("%d\n%s\n", os.Getpid(), id)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "forward.pid")
			if err := os.WriteFile(pidfile, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if pid, ok := Running(pidfile); ok {
				t.Fatalf("Running = %d, true for a pidfile that is not ours", pid)
			}
			if err := Stop(pidfile); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stale pidfile kept: %v", err)
			}
		})
	}
}

func TestStopNothing(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // "" for no pidfile
		wantErr string
	}{
		{name: "no pidfile"},
		{name: "pid gone", content: "2147483646\n1 x\n"},
		{name: "malformed", content: "not a pid\n", wantErr: "is malformed"},
		{name: "bad pid", content: "-1\n1 x\n", wantErr: `"-1" is not a pid`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(dir, strconv.Itoa(i)+".pid")
			if tc.content != "" {
				if err := os.WriteFile(pidfile, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := Stop(pidfile)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Stop: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Stop: %v; want an error with %q", err, tc.wantErr)
			}
			if _, ok := Running(pidfile); ok {
				t.Fatal("Running = true for a malformed pidfile")
			}
		})
	}
}
