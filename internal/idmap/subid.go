//go:build linux

package idmap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/den-dev/den/internal/fsutil"
	"golang.org/x/sys/unix"
)

// Files names the files of an id reservation, so tests can use copies.
type Files struct {
	SubUID, SubGID string // /etc/subuid and /etc/subgid
	// Record holds den's block as "BASE COUNT": the subordinate id files
	// cannot carry a comment, so this is how den knows its own line.
	Record string
	// PwdLock is the file shadow's lckpwdf(3) locks (useradd, usermod
	// --add-subuids and friends take it before they edit the files).
	PwdLock string
}

// SystemFiles are the host's files.
var SystemFiles = Files{
	SubUID:  "/etc/subuid",
	SubGID:  "/etc/subgid",
	Record:  "/etc/den/subid",
	PwdLock: "/etc/.pwd.lock",
}

// Block is den's reservation: Count ids from Base, registered for root in
// /etc/subuid and /etc/subgid, cut into ranges of RangeSize, one per
// machine.
type Block struct {
	Base, Count uint32
}

// The block den asks for first: 1024 machine ranges from 0x70000000
// (1879048192), in the span systemd documents as unused (above the
// container range systemd-nspawn picks from, which LXD's and Incus's
// root:1000000:1000000000 also sit in, and below 2^31, where programs
// with signed ids break). When an entry of the files overlaps it, den
// takes the same size above the highest entry instead.
const (
	DefaultBlockBase  = 0x70000000
	DefaultBlockCount = 1024 * RangeSize
)

// End is one past the block's last id.
func (b Block) End() uint64 { return uint64(b.Base) + uint64(b.Count) }

// Ranges is the number of machine ranges in the block.
func (b Block) Ranges() int { return int(b.Count / RangeSize) }

// Candidate derives a stable first choice of range for key (a machine's
// container name): the same key gives the same base as long as it is free.
func (b Block) Candidate(key string) uint32 {
	if b.Ranges() == 0 {
		return b.Base
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return b.Base + h.Sum32()%uint32(b.Ranges())*RangeSize
}

// Pick returns the base of a free machine range of the block: key's
// candidate when no range in use overlaps it, else the next free one
// after it (wrapping). inUse holds the bases of the ranges other machines
// use; bases outside the block are ignored.
func (b Block) Pick(inUse []uint32, key string) (uint32, error) {
	n := b.Ranges()
	if n == 0 {
		return 0, fmt.Errorf("den's id block %d+%d holds no range of %d ids", b.Base, b.Count, RangeSize)
	}
	first := int((b.Candidate(key) - b.Base) / RangeSize)
	for i := range n {
		base := b.Base + uint32((first+i)%n)*RangeSize
		free := true
		for _, u := range inUse {
			if overlap(base, RangeSize, u, RangeSize) {
				free = false
				break
			}
		}
		if free {
			return base, nil
		}
	}
	return 0, fmt.Errorf("all %d id ranges of den's block are in use; destroy machines you no longer need", n)
}

// entry is one line of /etc/subuid or /etc/subgid: owner:start:count.
type entry struct {
	owner        string
	start, count uint64
	line         int
}

func (e entry) String() string { return fmt.Sprintf("%s:%d:%d", e.owner, e.start, e.count) }

// isDen reports whether e is b registered for root.
func (e entry) isDen(b Block) bool {
	return (e.owner == "root" || e.owner == "0") && e.start == uint64(b.Base) && e.count == uint64(b.Count)
}

// readEntries parses a subordinate id file. A missing file has no entries.
// A line den cannot read is an error, since its range cannot be avoided.
func readEntries(path string) ([]byte, []entry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		f := strings.Split(l, ":")
		if len(f) != 3 || f[0] == "" {
			return nil, nil, fmt.Errorf("%s:%d: %q is not owner:start:count; fix or remove that line", path, n, l)
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("%s:%d: %q has a start or count that is not a number below 2^32; fix or remove that line", path, n, l)
		}
		out = append(out, entry{owner: f[0], start: start, count: count, line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, out, nil
}

// readRecord reads den's block from the record file; ok is false when
// there is none.
func (f Files) readRecord() (b Block, ok bool, err error) {
	data, err := os.ReadFile(f.Record)
	if errors.Is(err, os.ErrNotExist) {
		return Block{}, false, nil
	}
	if err != nil {
		return Block{}, false, fmt.Errorf("read den's id block record: %w", err)
	}
	f2 := strings.Fields(string(data))
	var base, count uint64
	if len(f2) == 2 {
		base, err = strconv.ParseUint(f2[0], 10, 32)
		if err == nil {
			count, err = strconv.ParseUint(f2[1], 10, 32)
		}
	}
	if len(f2) != 2 || err != nil || count == 0 || count%RangeSize != 0 || base+count > 1<<32-1 {
		return Block{}, false, fmt.Errorf("%s should hold \"BASE COUNT\" of den's id block, but holds %q; put back the numbers of root's line that den added to /etc/subuid, or remove the file", f.Record, data)
	}
	return Block{Base: uint32(base), Count: uint32(count)}, true, nil
}

// Current returns den's block when one is recorded (ok is false when
// none is); it changes nothing.
func (f Files) Current() (b Block, ok bool, err error) { return f.readRecord() }

// Reserve returns den's block of subordinate ids, registering it first
// when it is not: for root in both files (root:BASE:COUNT), without
// overlapping any entry of any user, and recorded in f.Record. Reserve is
// idempotent (a second call finds the recorded block and adds a line only
// where one is missing) and safe to interrupt: the record is written
// before the lines, so a reservation cut short is completed, not repeated.
// The files are rewritten atomically under shadow's locks.
func (f Files) Reserve() (Block, error) {
	unlock, err := f.lock()
	if err != nil {
		return Block{}, err
	}
	defer unlock()
	files := []string{f.SubUID, f.SubGID}
	var all [2][]entry
	for i, p := range files {
		if _, all[i], err = readEntries(p); err != nil {
			return Block{}, err
		}
	}
	b, recorded, err := f.readRecord()
	if err != nil {
		return Block{}, err
	}
	if !recorded {
		b = chooseBlock(append(slices.Clone(all[0]), all[1]...))
		if b.Count == 0 {
			return Block{}, errors.New("no room for den's id block below 2^32: the entries of /etc/subuid and /etc/subgid reach too high")
		}
		if err := os.MkdirAll(filepath.Dir(f.Record), 0o755); err != nil {
			return Block{}, fmt.Errorf("record den's id block: %w", err)
		}
		if err := fsutil.WriteFileAtomic(f.Record, fmt.Appendf(nil, "%d %d\n", b.Base, b.Count), 0o644); err != nil {
			return Block{}, fmt.Errorf("record den's id block: %w", err)
		}
	}
	for i, p := range files {
		if slices.ContainsFunc(all[i], func(e entry) bool { return e.isDen(b) }) {
			continue
		}
		for _, e := range all[i] {
			if overlap64(uint64(b.Base), uint64(b.Count), e.start, e.count) {
				return Block{}, fmt.Errorf("den's id block %d-%d (recorded in %s) overlaps %s at %s:%d; remove %s to have den choose a free block (machines made since keep their ids only if none used the overlap)",
					b.Base, b.End()-1, f.Record, e, p, e.line, f.Record)
			}
		}
		if err := appendLine(p, fmt.Sprintf("root:%d:%d", b.Base, b.Count)); err != nil {
			return Block{}, err
		}
	}
	return b, nil
}

// chooseBlock picks the default block when nothing overlaps it, else a
// block of the same size starting at the first range boundary above every
// entry. A root line of exactly the default block is den's from a run
// whose record was lost: it is adopted, not avoided. A zero Block means
// there is no room.
func chooseBlock(entries []entry) Block {
	b := Block{Base: DefaultBlockBase, Count: DefaultBlockCount}
	free := true
	var top uint64
	for _, e := range entries {
		top = max(top, e.start+e.count)
		if !e.isDen(b) && overlap64(uint64(b.Base), uint64(b.Count), e.start, e.count) {
			free = false
		}
	}
	if free {
		return b
	}
	start := (top + RangeSize - 1) / RangeSize * RangeSize
	if start+DefaultBlockCount > 1<<32-1 {
		return Block{}
	}
	return Block{Base: uint32(start), Count: DefaultBlockCount}
}

func overlap64(a, an, b, bn uint64) bool { return a < b+bn && b < a+an }

// appendLine adds line to the file at path through an atomic rewrite that
// keeps the file's mode (0644 for a new file).
func appendLine(path, line string) error {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = append(data, line+"\n"...)
	return rewrite(path, data)
}

func rewrite(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := fsutil.WriteFileAtomic(path, data, mode); err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return nil
}

// Release removes den's block: its root line from both files (no other
// line is touched, nor the order of the others) and then the record. With
// no record it does nothing. The record's folder goes when empty. Machines still using ranges of the block keep
// running, but LXC's newuidmap (when the uidmap package is installed)
// refuses to start them until the block is reserved again.
func (f Files) Release() error {
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	b, ok, err := f.readRecord()
	if err != nil || !ok {
		return err
	}
	for _, p := range []string{f.SubUID, f.SubGID} {
		data, entries, err := readEntries(p)
		if err != nil {
			return err
		}
		drop := map[int]bool{}
		for _, e := range entries {
			if e.isDen(b) {
				drop[e.line] = true
			}
		}
		if len(drop) == 0 {
			continue
		}
		var out []byte
		lines := bytes.SplitAfter(data, []byte("\n"))
		for i, l := range lines {
			if !drop[i+1] {
				out = append(out, l...)
			}
		}
		if err := rewrite(p, out); err != nil {
			return err
		}
	}
	if err := os.Remove(f.Record); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove den's id block record: %w", err)
	}
	os.Remove(filepath.Dir(f.Record)) // only when empty
	return nil
}

// lockWait is how long f.lock waits for another holder, as lckpwdf does.
var lockWait = 15 * time.Second

// procLock serialises this process's reservations: the locks below are
// the process's, not a goroutine's.
var procLock sync.Mutex

// lock takes what shadow's tools take before editing /etc/subuid and
// /etc/subgid: lckpwdf's write lock on /etc/.pwd.lock (taken here as an
// open file description lock, which conflicts with lckpwdf's) and, per
// file, the FILE.lock hard link that names the holder's pid
// (commonio_lock_nowait). A FILE.lock whose pid is gone is taken over.
func (f Files) lock() (_ func(), err error) {
	procLock.Lock()
	var undo []func()
	unlock := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		procLock.Unlock()
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	pw, err := os.OpenFile(f.PwdLock, os.O_WRONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", f.PwdLock, err)
	}
	undo = append(undo, func() { pw.Close() })
	deadline := time.Now().Add(lockWait)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	for {
		err := unix.FcntlFlock(pw.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("lock %s: %w", f.PwdLock, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s is locked by another program (useradd, usermod, passwd...) for over %v; retry when it is done", f.PwdLock, lockWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range []string{f.SubUID, f.SubGID} {
		release, err := linkLock(p, deadline)
		if err != nil {
			return nil, err
		}
		undo = append(undo, release)
	}
	return unlock, nil
}

// linkLock takes shadow's lock on path: a file PATH.PID holding the pid,
// hard-linked to PATH.lock, which succeeds for one process only.
func linkLock(path string, deadline time.Time) (func(), error) {
	lockPath := path + ".lock"
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\x00"), 0o600); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	defer os.Remove(tmp)
	for {
		err := os.Link(tmp, lockPath)
		if err == nil {
			return func() { os.Remove(lockPath) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		b, rerr := os.ReadFile(lockPath)
		pid, perr := strconv.Atoi(strings.TrimRight(string(b), "\x00\n "))
		if rerr == nil && perr == nil && pid > 0 && unix.Kill(pid, 0) == unix.ESRCH {
			// The holder is gone: take its lock over, as shadow does.
			os.Remove(lockPath)
			continue
		}
		if time.Now().After(deadline) {
			who := "another program"
			if perr == nil {
				who = "pid " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("%s is locked by %s (%s exists); retry when it is done, or remove %s if no such program runs", path, who, lockPath, lockPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CheckSharedWithLXD returns an error when the host's LXD would map its
// containers into den's block: LXD takes root's first range of at least
// 65536 ids in /etc/subuid and /etc/subgid for all its containers, and
// when that is den's (den reserved it before LXD added a line of its own),
// LXD's machines would get the very host ids den gives its LXC machines.
// No recorded block, or no such range, passes.
func (f Files) CheckSharedWithLXD() error {
	b, ok, err := f.readRecord()
	if err != nil || !ok {
		return err
	}
	for _, p := range []string{f.SubUID, f.SubGID} {
		_, entries, err := readEntries(p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if (e.owner != "root" && e.owner != "0") || e.count < 65536 {
				continue
			}
			if overlap64(uint64(b.Base), uint64(b.Count), e.start, e.count) {
				return fmt.Errorf("LXD maps its machines into root's first range of 65536 ids or more in %s, %s (line %d), which is den's id block for LXC machines (%s): LXD's machines would share host ids with den's. Put a range of LXD's own for root above that line in %s and %s (Debian's lxd uses root:100000:10000001) and restart LXD",
					p, e, e.line, f.Record, f.SubUID, f.SubGID)
			}
			break // the one LXD uses
		}
	}
	return nil
}
