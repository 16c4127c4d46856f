package hostcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/den-dev/den/internal/testenv"
)

// buffer is a bytes.Buffer safe for the copying goroutine and the test.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func self(t *testing.T) *User {
	t.Helper()
	u, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRunAsSelf(t *testing.T) {
	t.Setenv("DEN_HOSTCMD_INHERITED", "yes")
	var out, errb buffer
	dir := t.TempDir()
	status, err := Run(context.Background(), Cmd{
		Argv:   []string{"/bin/sh", "-c", `echo "$PWD $DEN_HOSTCMD_INHERITED $EXTRA"; echo oops >&2; exit 3`},
		Dir:    dir,
		Env:    []string{"EXTRA=added", "DEN_HOSTCMD_INHERITED=overridden"},
		User:   self(t),
		Stdout: &out,
		Stderr: &errb,
	})
	if err != nil || status != 3 {
		t.Fatalf("Run = %d, %v; want status 3", status, err)
	}
	if got, want := out.String(), dir+" overridden added\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if errb.String() != "oops\n" {
		t.Errorf("stderr %q", errb.String())
	}
}

func TestRunSignalStatus(t *testing.T) {
	status, err := Run(context.Background(), Cmd{Argv: []string{"/bin/sh", "-c", "kill -TERM $$"}, User: self(t)})
	if err != nil || status != 128+int(syscall.SIGTERM) {
		t.Errorf("Run = %d, %v; want %d", status, err, 128+int(syscall.SIGTERM))
	}
	if _, err := Run(context.Background(), Cmd{Argv: []string{"/nonexistent/den-test"}, User: self(t)}); err == nil {
		t.Error("Run of a missing program succeeded")
	}
	if _, err := Run(context.Background(), Cmd{Argv: []string{"true"}}); err == nil {
		t.Error("Run without a user succeeded")
	}
}

// TestRunDoesNotWaitForBackground: a command that leaves a process holding
// its output open returns when the command itself exits.
func TestRunDoesNotWaitForBackground(t *testing.T) {
	old := OutputGrace
	OutputGrace = 200 * time.Millisecond
	t.Cleanup(func() { OutputGrace = old })
	var out buffer
	start := time.Now()
	pidfile := t.TempDir() + "/pid"
	status, err := Run(context.Background(), Cmd{
		Argv:   []string{"/bin/sh", "-c", "sleep 30 & echo $! > " + pidfile + "; echo started"},
		User:   self(t),
		Stdout: &out,
	})
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			var pid int
			if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err == nil && pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	if err != nil || status != 0 || out.String() != "started\n" {
		t.Fatalf("Run = %d, %v, %q", status, err, out.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run waited %s for the background process", d)
	}
}

// TestRunCancelEndsTheGroup: when ctx ends, the command and what it
// started are stopped.
func TestRunCancelEndsTheGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pidfile := t.TempDir() + "/pid"
	go func() {
		for i := 0; i < 100; i++ {
			if b, _ := os.ReadFile(pidfile); len(b) > 0 && bytes.HasSuffix(b, []byte("\n")) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := Run(ctx, Cmd{Argv: []string{"/bin/sh", "-c", "sleep 60 & echo $! > " + pidfile + "; wait"}, User: self(t)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s to stop", d)
	}
	b, _ := os.ReadFile(pidfile)
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil || pid <= 0 {
		t.Fatalf("no background pid: %q", b)
	}
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the background process %d survived the cancel", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunAsAnotherUser: as root, a command for another user runs with that
// user's ids and groups and a clean environment.
func TestRunAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root to change credentials")
	}
	nobody, err := Lookup(65534, 65534)
	if err != nil {
		testenv.Skip(t, fmt.Sprintf("no account with uid 65534: %v", err))
	}
	t.Setenv("DEN_SECRET_TEST_VAR", "leak")
	t.Setenv("LANG", "C.UTF-8")
	var out buffer
	status, err := Run(context.Background(), Cmd{
		Argv:   []string{"/bin/sh", "-c", "id -u; id -g; env | sort"},
		Dir:    "/",
		Env:    []string{"DEN_MACHINE=web"},
		User:   nobody,
		Stdout: &out,
	})
	if err != nil || status != 0 {
		t.Fatalf("Run = %d, %v", status, err)
	}
	lines := strings.Split(out.String(), "\n")
	if lines[0] != "65534" || lines[1] != "65534" {
		t.Errorf("ran as %q:%q, want 65534:65534", lines[0], lines[1])
	}
	env := out.String()
	for _, want := range []string{"DEN_MACHINE=web", "PATH=" + cleanPath, "HOME=" + nobody.Home, "USER=" + nobody.Name, "LANG=C.UTF-8"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("environment lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "DEN_SECRET_TEST_VAR") || strings.Contains(env, "SUDO_") {
		t.Errorf("den's environment leaked:\n%s", env)
	}
	if _, err := Lookup(4294967290, 1); err == nil {
		t.Error("Lookup of a uid without an account succeeded")
	}
}

// alive reports whether process pid exists and is not a zombie (one that
// nobody has reaped yet is dead for the test).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
