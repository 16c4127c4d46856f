package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/den-dev/den/internal/fsutil"
	"golang.org/x/sys/unix"
)

// stopWait is how long Stop waits after SIGTERM, and again after SIGKILL.
const stopWait = 2 * time.Second

// pollEvery is how often Spawn and Stop look at the pidfile or the process.
const pollEvery = 20 * time.Millisecond

// logTailLines is how many lines of the log Spawn quotes when the child fails.
const logTailLines = 10

// Spawn starts argv as a detached forwarder and waits until it is bound.
//
// The child runs in its own session (so den's terminal and its signals do
// not reach it), in den's working directory and environment, with stdin
// from /dev/null and stdout and stderr appended to logfile. It must write
// pidfile with WritePidfile once all its listeners are bound. Spawn returns
// the child's pid as soon as pidfile names it. If the child exits first,
// the error quotes the last lines it logged; if ready passes first, Spawn
// kills it and says so. Spawn refuses to start a second forwarder while
// Running(pidfile) reports one, and removes a stale pidfile before it starts.
//
// The child inherits no other fd: before starting it, Spawn marks every fd
// of the calling process above 2 close-on-exec, as runc does, since fds
// opened by C code or inherited from den's own parent may lack the flag.
// This changes no fd Go itself opened (they all have the flag already).
func Spawn(argv []string, pidfile, logfile string, ready time.Duration) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("spawn forwarder: empty command")
	}
	if pid, ok := Running(pidfile); ok {
		return 0, fmt.Errorf("spawn forwarder: already running as pid %d (pidfile %q); stop it first", pid, pidfile)
	}
	if err := os.Remove(pidfile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("spawn forwarder: remove stale pidfile: %w", err)
	}
	log, err := fsutil.OpenRegular(logfile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("spawn forwarder: open log: %w", err)
	}
	defer log.Close()
	st, err := log.Stat()
	if err != nil {
		return 0, fmt.Errorf("spawn forwarder: open log: %w", err)
	}
	logStart := st.Size() // the child's lines start here
	if err := closeOnExecFrom(3); err != nil {
		return 0, fmt.Errorf("spawn forwarder: %w", err)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = log // Stdin nil is /dev/null
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("spawn forwarder %q: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	// Reap the child whenever it exits, so it never lingers as a zombie
	// while this process lives on.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	timeout := time.NewTimer(ready)
	defer timeout.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if p, _, err := readPidfile(pidfile); err == nil && p == pid {
			return pid, nil
		}
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("exit status 0")
			}
			return 0, fmt.Errorf("forwarder exited at start (%v)%s", err, logTail(logfile, logStart))
		case <-timeout.C:
			cmd.Process.Kill()
			<-exited
			return 0, fmt.Errorf("forwarder pid %d did not write %q within %v; killed it%s",
				pid, pidfile, ready, logTail(logfile, logStart))
		case <-tick.C:
		}
	}
}

// closeOnExecFrom sets FD_CLOEXEC on every open fd >= first.
func closeOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Before Linux 5.11: one fd at a time.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open fds: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// logTail returns "; last lines of LOG:" and the log's last lines from
// offset on, indented, or "" when there are none.
func logTail(logfile string, offset int64) string {
	f, err := os.Open(logfile)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxRead = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size()-offset > maxRead {
		offset = st.Size() - maxRead
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return fmt.Sprintf("; it wrote nothing to %q", logfile)
	}
	return fmt.Sprintf("; last lines of %q:\n\t%s", logfile, strings.Join(lines, "\n\t"))
}

// WritePidfile writes the calling process's pid and a line identifying it
// (its start time from /proc/self/stat and the boot id) to path, through a
// temporary file and a rename, so a reader sees all of it or nothing. Stop
// and Running use the second line to tell this process from a later one
// with the same pid.
func WritePidfile(path string) error {
	pid := os.Getpid()
	id, err := identity(pid)
	if err != nil {
		return fmt.Errorf("write pidfile %q: %w", path, err)
	}
	if err := fsutil.WriteFileAtomic(path, fmt.Appendf(nil, "%d\n%s\n", pid, id), 0o644); err != nil {
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}

// Running returns the pid in pidfile if that process still runs and is the
// one that wrote the file (same start time and boot). A missing, stale or
// unreadable pidfile gives 0, false.
func Running(pidfile string) (pid int, ok bool) {
	pid, id, err := readPidfile(pidfile)
	if err != nil || !alive(pid, id) || !forwarderOf(pid, pidfile) {
		return 0, false
	}
	return pid, true
}

// forwarderOf tells whether pid was started as the forwarder of pidfile
// (its arguments hold "--pidfile PIDFILE"). A pidfile sits in a folder its
// project's owner may write: this keeps a forged one from naming any other
// process for den to signal.
func forwarderOf(pid int, pidfile string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--pidfile" && args[i+1] == pidfile {
			return true
		}
	}
	return false
}

// Stop ends the process that wrote pidfile: SIGTERM, up to 2s to exit, then
// SIGKILL, and removes pidfile. It signals only the process that wrote the
// file: when the pid is gone or now belongs to another process (another
// start time) or is not the forwarder of this pidfile, Stop removes the
// stale pidfile and returns nil without signalling anything. A missing pidfile is not an error either.
func Stop(pidfile string) error {
	pid, id, err := readPidfile(pidfile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop forwarder: %w", err)
	}
	// A pidfd names this process, not its number: signals sent through it
	// can never reach a later process that reuses the pid.
	pidfd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		defer unix.Close(pidfd)
	case errors.Is(err, unix.ESRCH):
		return removePidfile(pidfile)
	case errors.Is(err, unix.ENOSYS):
		pidfd = -1 // before Linux 5.3: check, then kill(2)
	default:
		return fmt.Errorf("stop forwarder pid %d: %w", pid, err)
	}
	if !alive(pid, id) || !forwarderOf(pid, pidfile) {
		return removePidfile(pidfile)
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		err := sendSignal(pidfd, pid, sig)
		if errors.Is(err, unix.ESRCH) {
			return removePidfile(pidfile)
		}
		if err != nil {
			return fmt.Errorf("stop forwarder pid %d: send %v: %w", pid, sig, err)
		}
		deadline := time.Now().Add(stopWait)
		for alive(pid, id) && time.Now().Before(deadline) {
			time.Sleep(pollEvery)
		}
		if !alive(pid, id) {
			return removePidfile(pidfile)
		}
	}
	return fmt.Errorf("stop forwarder pid %d: still running %v after SIGKILL", pid, stopWait)
}

// sendSignal sends sig through pidfd, or with kill(2) when there is none.
func sendSignal(pidfd, pid int, sig unix.Signal) error {
	if pidfd >= 0 {
		return unix.PidfdSendSignal(pidfd, sig, nil, 0)
	}
	return unix.Kill(pid, sig)
}

func removePidfile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pidfile: %w", err)
	}
	return nil
}

// readPidfile returns the pid and identity line of a pidfile (never
// following a symlink).
func readPidfile(path string) (int, string, error) {
	b, err := fsutil.ReadRegular(path, 4096)
	if err != nil {
		return 0, "", err
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		return 0, "", fmt.Errorf("pidfile %q is malformed: want a pid and an identity line", path)
	}
	pid, err := strconv.Atoi(lines[0])
	if err != nil || pid <= 0 {
		return 0, "", fmt.Errorf("pidfile %q is malformed: %q is not a pid", path, lines[0])
	}
	return pid, lines[1], nil
}

// alive tells whether pid runs (not a zombie) and has identity id.
func alive(pid int, id string) bool {
	state, start, err := procStat(pid)
	if err != nil || state == 'Z' || state == 'X' || state == 'x' {
		return false
	}
	return start+" "+bootID() == id
}

// identity returns the line that tells pid from a later process with the
// same pid: "STARTTIME BOOTID".
func identity(pid int) (string, error) {
	_, start, err := procStat(pid)
	if err != nil {
		return "", err
	}
	return start + " " + bootID(), nil
}

// procStat returns the state and the start time (field 22, clock ticks
// since boot) from /proc/PID/stat.
func procStat(pid int) (state byte, start string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// The command name, field 2, is in parentheses and may hold anything,
	// ")" and spaces too: fields 3 and on follow the last ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, "", fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return fields[0][0], fields[22-3], nil
}

// bootID is this boot's random id, so a pidfile from before a reboot never
// matches; "" where the kernel does not have it.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// Main is the forwarder process (den's hidden `__forward` command): it
// parses the rules, binds every host port, writes pidfile (which tells the
// parent it is ready) and forwards until ctx ends, logging to log. dial,
// when not nil, makes the TCP connections to the guest (Forwarder.Dial);
// UDP rules are refused then.
func Main(ctx context.Context, pidfile string, args []string, log io.Writer, dial DialFunc) error {
	var rules []Rule
	for _, a := range args {
		r, err := ParseRule(a)
		if err != nil {
			return err
		}
		rules = append(rules, r)
	}
	if dial != nil {
		for _, r := range rules {
			if r.Protocol == "udp" {
				return fmt.Errorf("forward %s: a udp port cannot be forwarded through ssh", r)
			}
		}
	}
	f, err := Listen(rules)
	if err != nil {
		return err
	}
	defer f.Close()
	f.Dial = dial
	f.Logf = func(format string, a ...any) { fmt.Fprintf(log, format+"\n", a...) }
	if err := WritePidfile(pidfile); err != nil {
		return err
	}
	for _, r := range rules {
		fmt.Fprintf(log, "forwarding %s\n", r)
	}
	return f.Serve(ctx)
}
