//go:build linux

package idmap

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Extent maps Count ids starting at Inside (in the namespace) to ids
// starting at Host (in the initial user namespace), as one line of
// /proc/PID/uid_map.
type Extent struct {
	Inside, Host, Count uint32
}

// Map is a user namespace's id mapping: uids and gids.
type Map struct {
	UIDs, GIDs []Extent
}

// RangeSize is the number of ids of one machine: uid 0 to 65535 in the guest.
const RangeSize = 65536

// RangeMap maps the guest's ids 0-65535 to base..base+65535, uids and gids
// alike: the map of an unprivileged machine, and of the idmapped mounts of
// its box and folder (a root-owned file shows as owned by base).
func RangeMap(base uint32) Map {
	e := []Extent{{Inside: 0, Host: base, Count: RangeSize}}
	return Map{UIDs: e, GIDs: e}
}

// Owner is a project folder's owner on the host's disk and the guest
// user (the box's login user) who should see the folder as theirs.
type Owner struct {
	UID, GID           uint32 // the owner of the folder on the host
	GuestUID, GuestGID uint32 // the login user in the guest
}

// OwnerMap is the map of a project folder's mount in the machine whose
// range starts at base: only the owner's ids, shown as the guest user's
// (host ids base+GuestUID and base+GuestGID). Through it the login user
// sees the owner's files as its own and its writes land as the owner.
// Every other id, guest root's included, is unmapped: other files show as
// 65534, and guest root cannot create files there (EOVERFLOW). The guest
// user's uid need not equal the owner's.
//
// An owner or guest user that is root is refused: writes of the guest
// would land as the host's root (a set-uid-root program in the project is
// a way to root for every local user), or guest root would own the folder.
// For a folder root owns, mount it without an idmap (the guest then sees
// it as 65534 and cannot write).
func OwnerMap(base uint32, o Owner) (Map, error) {
	if o.UID == 0 || o.GID == 0 {
		return Map{}, fmt.Errorf("the project folder is owned by %d:%d; den maps no root-owned folder into a machine (guest writes would land as the host's root); chown it to your user", o.UID, o.GID)
	}
	if o.GuestUID == 0 || o.GuestGID == 0 {
		return Map{}, fmt.Errorf("the guest user %d:%d is root; the project folder must be mapped to an unprivileged guest user", o.GuestUID, o.GuestGID)
	}
	if o.GuestUID >= RangeSize || o.GuestGID >= RangeSize {
		return Map{}, fmt.Errorf("the guest user %d:%d is outside the machine's %d ids", o.GuestUID, o.GuestGID, RangeSize)
	}
	m := Map{
		UIDs: []Extent{{Inside: o.UID, Host: base + o.GuestUID, Count: 1}},
		GIDs: []Extent{{Inside: o.GID, Host: base + o.GuestGID, Count: 1}},
	}
	return m, m.Validate()
}

// Validate checks that m has uids and gids, at most 340 extents each (the
// kernel's limit), none empty, wrapping past 2^32-1 or overlapping another.
func (m Map) Validate() error {
	for _, side := range []struct {
		name string
		ext  []Extent
	}{{"uid", m.UIDs}, {"gid", m.GIDs}} {
		if len(side.ext) == 0 {
			return fmt.Errorf("id map has no %s extents", side.name)
		}
		if len(side.ext) > 340 {
			return fmt.Errorf("id map has %d %s extents; the kernel takes at most 340", len(side.ext), side.name)
		}
		for i, e := range side.ext {
			if e.Count == 0 {
				return fmt.Errorf("%s extent %d is empty", side.name, i)
			}
			if uint64(e.Inside)+uint64(e.Count) > 1<<32 || uint64(e.Host)+uint64(e.Count) > 1<<32 {
				return fmt.Errorf("%s extent %d (%d %d %d) runs past the largest id", side.name, i, e.Inside, e.Host, e.Count)
			}
			for j, o := range side.ext[:i] {
				if overlap(e.Inside, e.Count, o.Inside, o.Count) || overlap(e.Host, e.Count, o.Host, o.Count) {
					return fmt.Errorf("%s extents %d and %d overlap", side.name, j, i)
				}
			}
		}
	}
	return nil
}

func overlap(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

func procMap(ext []Extent) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ext))
	for i, e := range ext {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.Inside), HostID: int(e.Host), Size: int(e.Count)}
	}
	return out
}

// NewUserNS creates a user namespace with the map m and returns it open
// (O_RDONLY|O_CLOEXEC). The namespace lives as long as the file (or a
// mount of it, see Pin) is open; no process stays behind.
//
// A helper process is cloned with CLONE_NEWUSER and traced, so it stops at
// its execve before running a single instruction of the program; the
// calling process (root) writes the maps straight into /proc/PID/uid_map
// and gid_map, which needs no newuidmap and no /etc/subuid entry even when
// the uidmap package is installed (newuidmap is for unprivileged callers).
// The helper is killed and reaped before NewUserNS returns.
func NewUserNS(m Map) (*os.File, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	// A tracee follows its tracer thread: should that thread end while the
	// helper lives, the helper would run. Keep this goroutine on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, err := os.StartProcess("/proc/self/exe", []string{"den-userns-helper"}, &os.ProcAttr{
		Env: []string{},
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: procMap(m.UIDs),
			GidMappings: procMap(m.GIDs),
			// Keep setgroups(2) allowed: the map is written by a
			// privileged parent, so "deny" is not needed.
			GidMappingsEnableSetgroups: true,
			Ptrace:                     true,
			Pdeathsig:                  unix.SIGKILL,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create a user namespace: %w", err)
	}
	ns, openErr := os.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid))
	killErr := p.Kill()
	_, waitErr := p.Wait()
	if openErr != nil {
		return nil, fmt.Errorf("open the new user namespace: %w", openErr)
	}
	if waitErr != nil {
		ns.Close()
		return nil, fmt.Errorf("reap the user namespace helper (pid %d): %w", p.Pid, errors.Join(killErr, waitErr))
	}
	return ns, nil
}
