// Package lock holds per-machine and store locks (flock on a file that also
// names its holder).
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is a held lock; Unlock releases it.
type Lock struct{ f *os.File }

// ErrHeld reports a lock that another process kept past the wait.
var ErrHeld = errors.New("lock held")

// HeldError says who holds a lock.
type HeldError struct {
	Path   string
	Holder string // "pid 4242 (den up)" or "" when unknown
}

func (e *HeldError) Error() string {
	who := e.Holder
	if who == "" {
		who = "another process"
	}
	return fmt.Sprintf("%s is busy: locked by %s; wait for it to finish or check 'den status'", e.Path, who)
}

// Unwrap lets errors.Is(err, ErrHeld) work.
func (e *HeldError) Unwrap() error { return ErrHeld }

// Acquire takes an exclusive lock on path, waiting up to wait for another
// holder; what describes this holder for others ("den up").
func Acquire(ctx context.Context, path, what string, wait time.Duration) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %q: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %q: %w", path, err)
		}
		if time.Now().After(deadline) {
			holder := readHolder(path)
			f.Close()
			return nil, &HeldError{Path: path, Holder: holder}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Name the holder for whoever waits next.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), what)), 0)
	}
	return &Lock{f: f}, nil
}

func readHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	pid, what, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	if what == "" {
		return "pid " + pid
	}
	return fmt.Sprintf("pid %s (%s)", pid, what)
}

// Unlock releases the lock. The file stays (removing it would race).
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing releases the flock
	l.f = nil
	return err
}
