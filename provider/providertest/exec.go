package providertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/provider"
)

// running makes a machine, starts it, and destroys it when the test ends.
func running(t *testing.T, h Harness) (string, *provider.Spec) {
	t.Helper()
	c := ctx(t)
	name := machine(t, h)
	spec := h.Spec(t, name)
	must(t, "Create", h.Provider.Create(c, spec))
	must(t, "Start", h.Provider.Start(c, spec))
	return name, spec
}

// execResult is what a command run through Exec gave.
type execResult struct {
	status         int
	stdout, stderr string
}

// run runs cmd (its Stdin, Stdout and Stderr are set here: stdin gives
// input, then ends) and collects its output.
func run(ctx context.Context, t *testing.T, ex provider.Execer, name string, cmd provider.ExecCommand, input string) (execResult, error) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	go func() {
		io.WriteString(inW, input)
		inW.Close()
	}()
	var res execResult
	var wg sync.WaitGroup
	pipe := func(dst *string) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := io.ReadAll(r)
			r.Close()
			*dst = string(b)
		}()
		return w
	}
	outW, errW := pipe(&res.stdout), pipe(&res.stderr)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	res.status, err = ex.Exec(ctx, name, cmd)
	outW.Close()
	errW.Close()
	wg.Wait()
	return res, err
}

// rootCmd is argv run as root in / with a plain environment.
func rootCmd(argv ...string) provider.ExecCommand {
	return provider.ExecCommand{Argv: argv, Dir: "/", Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "USER=root", "LANG=C.UTF-8"}}
}

// testExec runs commands in a running machine: exit statuses (128+N for
// a signal), separate streams and stdin's end, the user, folder and
// environment den gives (never den's own), a terminal of the caller's
// size that follows resizes, and ctx's end killing the command.
func testExec(t *testing.T, h Harness) {
	ex := h.Provider.(provider.Execer)
	name, _ := running(t, h)

	t.Run("Status", func(t *testing.T) {
		for _, tc := range []struct {
			script string
			want   int
		}{
			{"true", 0},
			{"exit 3", 3},
			{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
			{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
		} {
			res, err := run(ctx(t), t, ex, name, rootCmd("sh", "-c", tc.script), "")
			if err != nil || res.status != tc.want {
				t.Errorf("Exec(sh -c %q) = %d, %v; want %d", tc.script, res.status, err, tc.want)
			}
		}
		// A program that is not there is an error or a shell's status.
		if res, err := run(ctx(t), t, ex, name, rootCmd("/no/such/program"), ""); err == nil && res.status != 126 && res.status != 127 {
			t.Errorf("Exec of a missing program = %+v, want an error or status 126 or 127", res)
		}
	})

	t.Run("Streams", func(t *testing.T) {
		res, err := run(ctx(t), t, ex, name, rootCmd("sh", "-c", "cat; echo to-stderr >&2"), "line one\nline two\n")
		must(t, "Exec", err)
		if res.status != 0 || res.stdout != "line one\nline two\n" || res.stderr != "to-stderr\n" {
			t.Errorf("Exec with input = %+v; want the input on stdout, to-stderr on stderr", res)
		}
		// Output larger than any pipe or websocket frame arrives whole.
		res, err = run(ctx(t), t, ex, name, rootCmd("sh", "-c", "head -c 3000000 /dev/zero"), "")
		must(t, "Exec with much output", err)
		if len(res.stdout) != 3000000 {
			t.Errorf("Exec gave %d bytes of output, want 3000000", len(res.stdout))
		}
	})

	t.Run("UserDirEnv", func(t *testing.T) {
		t.Setenv("DEN_CONFORMANCE_HOST", "leaked")
		script := `id -u; id -g; pwd; echo "$DEN_CONFORMANCE"; echo "${DEN_CONFORMANCE_HOST-not set}"; echo "$HOME"`
		cmd := provider.ExecCommand{
			Argv: []string{"sh", "-c", script}, UID: 1000, GID: 1000, Dir: "/tmp",
			Env: []string{"PATH=/usr/bin:/bin", "HOME=/home/conformance", "USER=conformance", "LANG=C.UTF-8", "DEN_CONFORMANCE=a b=c"},
		}
		res, err := run(ctx(t), t, ex, name, cmd, "")
		must(t, "Exec as 1000:1000", err)
		if want := "1000\n1000\n/tmp\na b=c\nnot set\n/home/conformance\n"; res.status != 0 || res.stdout != want {
			t.Errorf("Exec as 1000:1000 in /tmp gave %+v, want %q", res, want)
		}
		res, err = run(ctx(t), t, ex, name, rootCmd("sh", "-c", "id -u; pwd"), "")
		must(t, "Exec as root", err)
		if res.stdout != "0\n/\n" {
			t.Errorf("Exec as root in / gave %+v", res)
		}
	})

	t.Run("CancelKills", func(t *testing.T) {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := run(c, t, ex, name, rootCmd("sleep", "600.123"), "")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Exec past its ctx's deadline = %v, want that deadline's error", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("Exec returned %v after its ctx ended", d-2*time.Second)
		}
		// The command is gone (its pattern's backslash keeps grep from
		// finding itself).
		check := rootCmd("sh", "-c", `cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' | grep -q 'sleep 600\.123'`)
		for try := 0; ; try++ {
			res, err := run(ctx(t), t, ex, name, check, "")
			must(t, "Exec of the check", err)
			if res.status == 1 {
				break
			}
			if try == 50 {
				t.Fatalf("the command is still running after its ctx ended (check: %+v)", res)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("Terminal", func(t *testing.T) { testTerminal(t, ex, name) })
}

// testTerminal runs a command with a terminal: it has one, of the
// caller's terminal's size, which follows a resize.
func testTerminal(t *testing.T, ex provider.Execer, name string) {
	master, slave := openPty(t)
	setSize(t, slave, 33, 101)
	var out lockedBuffer
	go io.Copy(&out, master) // ends when the test closes master

	// The command reads a second line before it exits: LXD can drop what
	// an interactive command wrote just before its end (canonical/lxd
	// #1114, #11890), and the size it prints after the resize is what
	// this test is about.
	cmd := rootCmd("sh", "-c", "test -t 0 && test -t 1 && test -t 2 && stty size; read x; stty size; read y; exit 4")
	cmd.Env = append(cmd.Env, "TERM=xterm")
	cmd.TTY, cmd.Stdin, cmd.Stdout, cmd.Stderr = true, slave, slave, slave
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	c := ctx(t)
	go func() {
		status, err := ex.Exec(c, name, cmd)
		done <- result{status, err}
	}()
	if !out.await("33 101", 30*time.Second) {
		t.Fatalf("the command's terminal: %q, want its size 33 101", out.String())
	}
	// The caller's terminal changes size, and den hears of it.
	setSize(t, slave, 40, 120)
	must(t, "SIGWINCH", syscall.Kill(os.Getpid(), syscall.SIGWINCH))
	time.Sleep(time.Second)
	if _, err := master.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	if !out.await("40 120", 30*time.Second) {
		t.Errorf("after a resize the command's terminal: %q, want 40 120", out.String())
	}
	if _, err := master.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Exec with a terminal did not return; output %q", out.String())
	}
	if r.err != nil || r.status != 4 {
		t.Errorf("Exec with a terminal = %d, %v; want 4", r.status, r.err)
	}
}

// openPty opens a pseudo terminal, closed when the test ends.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

func setSize(t *testing.T, f *os.File, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer collects output written by one goroutine and read by
// another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// await reports whether s shows up in the buffer within d.
func (l *lockedBuffer) await(s string, d time.Duration) bool {
	for end := time.Now().Add(d); ; {
		if strings.Contains(l.String(), s) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testLimits changes a running machine's limits: Inspect (and, in a real
// guest, the guest's own cgroup) shows the new memory limit, none once it
// is removed, and the new number of CPUs where the engine enforced the
// spec's at start (LXD's test cluster, two daemons on one host, never
// pins CPUs).
func testLimits(t *testing.T, h Harness) {
	p, c := h.Provider, ctx(t)
	lim := p.(provider.Limiter)
	name, spec := running(t, h)
	ex, inGuest := p.(provider.Execer)
	inGuest = inGuest && h.RealGuest
	// guestMemory reads the memory limit the guest sees. The machine is
	// still booting: its systemd mounts the cgroup hierarchies over what
	// the engine mounted, so an empty read is tried again.
	guestMemory := func() string {
		for end := time.Now().Add(15 * time.Second); ; {
			res, err := run(c, t, ex, name, rootCmd("sh", "-c", "for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do [ -r $f ] && { cat $f; break; }; done"), "")
			must(t, "Exec of cat memory limit", err)
			if got := strings.TrimSpace(res.stdout); got != "" || time.Now().After(end) {
				return got
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// awaitCPUs waits until Inspect shows a number of CPUs ok accepts
	// (-1: no CPU set, all of them).
	awaitCPUs := func(what string, ok func(int) bool) {
		t.Helper()
		var info provider.Info
		for end := time.Now().Add(15 * time.Second); ; {
			var err error
			info, err = p.Inspect(c, name)
			must(t, "Inspect", err)
			if info.CPUs == "" && ok(-1) {
				return
			}
			if cpus, err := host.ParseCPUList(info.CPUs); err == nil && ok(len(cpus)) {
				return
			}
			if time.Now().After(end) {
				t.Errorf("after %s Inspect says CPUs %q", what, info.CPUs)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	info, err := p.Inspect(c, name)
	must(t, "Inspect", err)
	cpus, err := host.ParseCPUList(info.CPUs)
	cpusEnforced := err == nil && spec.CPUs > 0 && len(cpus) == spec.CPUs
	if !cpusEnforced {
		t.Logf("with cpus %d Inspect says CPUs %q at start: the number of CPUs is set, not checked", spec.CPUs, info.CPUs)
	}

	must(t, "SetLimits(512M, all CPUs)", lim.SetLimits(c, name, 512<<20, 0))
	info, err = p.Inspect(c, name)
	must(t, "Inspect", err)
	if info.MemoryLimit != 512<<20 {
		t.Errorf("after SetLimits(512M) Inspect says memory limit %d", info.MemoryLimit)
	}
	if inGuest {
		if got := guestMemory(); got != strconv.Itoa(512<<20) {
			t.Errorf("after SetLimits(512M) the guest's cgroup says %q", got)
		}
	}
	if cpusEnforced && runtime.NumCPU() > spec.CPUs {
		// The server is this host in den's tests.
		awaitCPUs("SetLimits(all CPUs)", func(n int) bool { return n == -1 || n > spec.CPUs })
	}

	must(t, "SetLimits(no memory limit, 1 CPU)", lim.SetLimits(c, name, 0, 1))
	info, err = p.Inspect(c, name)
	must(t, "Inspect", err)
	if info.MemoryLimit != 0 {
		t.Errorf("after SetLimits(0) Inspect says memory limit %d, want none", info.MemoryLimit)
	}
	if inGuest {
		got := guestMemory()
		if n, err := strconv.ParseInt(got, 10, 64); got != "max" && (err != nil || n < 1<<62) {
			t.Errorf("after SetLimits(0) the guest's cgroup says %q, want no limit", got)
		}
	}
	if cpusEnforced {
		awaitCPUs("SetLimits(1 CPU)", func(n int) bool { return n == 1 })
	}
	wantState(t, p, name, provider.Running)
}
