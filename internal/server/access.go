package server

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The access checks ask the kernel itself whether a caller may read or
// write a path: on one locked OS thread, the server (root) takes the
// caller's filesystem uid, gid and groups — which also drops root's
// override of file permissions for that thread — and calls
// faccessat2(AT_EACCESS), so modes, ACLs, every folder on the way and
// mount options count exactly as for that user. The thread then takes
// root's ids back; a thread whose ids could not be restored is never
// used again (it stays locked and ends with its goroutine).

// rootGroups are the server's own supplementary groups, restored after a
// check.
var rootGroups = func() []uint32 {
	gs, _ := syscall.Getgroups()
	out := make([]uint32, len(gs))
	for i, g := range gs {
		out[i] = uint32(g)
	}
	return out
}()

// threadSetgroups sets the calling thread's supplementary groups only
// (syscall.Setgroups would change every thread of the process).
func threadSetgroups(groups []uint32) error {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return e
	}
	return nil
}

// threadSetfs sets the calling thread's filesystem uid and gid and
// checks that they took.
func threadSetfs(uid, gid int) error {
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	// setfs*id return the previous id; calling again with -1 reads it.
	u, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	g, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	if int(u) != uid || int(g) != gid {
		return fmt.Errorf("set filesystem ids to %d:%d: have %d:%d", uid, gid, u, g)
	}
	return nil
}

// asUser runs fn with c's filesystem identity on a thread of its own.
func asUser(c *caller, fn func() error) error {
	if c.admin() {
		return fn()
	}
	if !c.known {
		return errors.New("unknown caller")
	}
	groups := make([]uint32, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, uint32(g))
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore := func() bool {
			return threadSetfs(0, 0) == nil && threadSetgroups(rootGroups) == nil
		}
		if err := threadSetgroups(groups); err != nil {
			if restore() {
				runtime.UnlockOSThread()
			}
			done <- fmt.Errorf("take the caller's groups: %w", err)
			return
		}
		if err := threadSetfs(c.uid, c.gid); err != nil {
			if restore() {
				runtime.UnlockOSThread()
			}
			done <- err
			return
		}
		err := fn()
		if restore() {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// Access modes for can.
const (
	mayRead  = unix.R_OK
	mayWrite = unix.W_OK
	mayEnter = unix.X_OK
)

// can tells whether c may access path with mode (following symlinks, as
// c would); it returns the kernel's reason when not.
func can(c *caller, path string, mode uint32) error {
	return asUser(c, func() error {
		return unix.Faccessat2(unix.AT_FDCWD, path, mode, unix.AT_EACCESS)
	})
}
