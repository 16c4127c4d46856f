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

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"golang.org/x/sys/unix"
)

// Lock is a held lock; Unlock releases it.
type Lock struct {
	f         *os.File
	exclusive bool
}

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

// ErrorKind makes a held lock an errdefs.Locked failure.
func (e *HeldError) ErrorKind() errdefs.Kind { return errdefs.Locked }

// Acquire takes an exclusive lock on path, waiting up to wait for another
// holder; what describes this holder for others ("den up"). The lock file
// must be a regular file: a symlink or anything else at path is refused,
// never followed.
func Acquire(ctx context.Context, path, what string, wait time.Duration) (*Lock, error) {
	return acquire(ctx, path, what, wait, unix.LOCK_EX)
}

// AcquireShared takes a shared lock on path: any number of shared holders
// at once, none while an exclusive one holds it (the box store: many ups
// use boxes, one remove at a time changes them).
func AcquireShared(ctx context.Context, path, what string, wait time.Duration) (*Lock, error) {
	return acquire(ctx, path, what, wait, unix.LOCK_SH)
}

func acquire(ctx context.Context, path, what string, wait time.Duration, how int) (*Lock, error) {
	f, err := fsutil.OpenRegular(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	// flock cannot wait with a deadline or a context, so it is tried
	// again: soon at first (den's host-wide locks are held for a few
	// milliseconds, and machines coming up in parallel queue on them),
	// then every 50 ms for a holder that takes longer.
	pause := time.Millisecond
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
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
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
	// Name the holder for whoever waits next (an exclusive holder only:
	// shared holders would overwrite each other).
	if how == unix.LOCK_EX {
		if err := f.Truncate(0); err == nil {
			f.WriteAt(fmt.Appendf(nil, "%d %s\n", os.Getpid(), what), 0)
		}
	}
	return &Lock{f: f, exclusive: how == unix.LOCK_EX}, nil
}

func readHolder(path string) string {
	b, err := fsutil.ReadRegular(path, 4096)
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
	if l.exclusive {
		l.f.Truncate(0)
	}
	err := l.f.Close() // closing releases the flock
	l.f = nil
	return err
}
