package forward

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// childEnv, when set, makes the test binary act as the forwarder process
// that the Spawn tests start (the re-exec pattern): the value is the mode,
// the arguments are "--pidfile F RULE...".
const childEnv = "DEN_FORWARD_TEST_CHILD"

// leakEnv names a file the parent holds open without close-on-exec; in mode
// "fds" the child fails if it still has it open.
const leakEnv = "DEN_FORWARD_TEST_LEAK"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// child is a tiny "den __forward": modes "serve" (bind, write the pidfile,
// forward until SIGTERM), "fds" (the same after checking for inherited
// fds), "stubborn" (write the pidfile and ignore SIGTERM) and "hang"
// (never write the pidfile).
func child(mode string, args []string) int {
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	if len(args) < 2 || args[0] != "--pidfile" {
		logf("usage: --pidfile F RULE...")
		return 2
	}
	pidfile := args[1]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	switch mode {
	case "hang":
		logf("never ready")
		for {
			time.Sleep(time.Hour)
		}
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		if err := WritePidfile(pidfile); err != nil {
			logf("%v", err)
			return 1
		}
		for {
			time.Sleep(time.Hour)
		}
	case "fds":
		leak := os.Getenv(leakEnv)
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); target == leak {
				logf("inherited fd %s: %s", fd.Name(), target)
				return 3
			}
		}
	}

	var rules []Rule
	for _, a := range args[2:] {
		r, err := ParseRule(a)
		if err != nil {
			logf("%v", err)
			return 2
		}
		rules = append(rules, r)
	}
	f, err := Listen(rules)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if err := WritePidfile(pidfile); err != nil {
		f.Close()
		logf("%v", err)
		return 1
	}
	f.Logf = logf
	if err := f.Serve(ctx); err != nil {
		logf("%v", err)
		return 1
	}
	logf("stopped")
	return 0
}
