//go:build linux

package idmap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBlockPick(t *testing.T) {
	b := Block{Base: DefaultBlockBase, Count: 4 * RangeSize}
	if b.Ranges() != 4 {
		t.Fatalf("Ranges() = %d", b.Ranges())
	}
	c := b.Candidate("den-app-default-1a2b3c")
	if c != b.Candidate("den-app-default-1a2b3c") || c < b.Base || uint64(c)+RangeSize > b.End() || (c-b.Base)%RangeSize != 0 {
		t.Fatalf("Candidate() = %d: not a stable range of %+v", c, b)
	}
	if got, err := b.Pick(nil, "x"); err != nil || got != b.Candidate("x") {
		t.Errorf("Pick with none in use = %d, %v; want the candidate %d", got, err, b.Candidate("x"))
	}
	seen := map[uint32]bool{}
	var inUse []uint32
	for i := range 4 {
		got, err := b.Pick(append(inUse, 12345, b.Base+uint32(b.Count)), fmt.Sprint("m", i))
		if err != nil {
			t.Fatal(err)
		}
		if seen[got] {
			t.Fatalf("Pick gave %d twice", got)
		}
		seen[got] = true
		inUse = append(inUse, got)
	}
	if (Block{Base: 5}).Candidate("x") != 5 {
		t.Error("Candidate of an empty block is not its base")
	}
	if _, err := b.Pick(inUse, "one too many"); err == nil || !strings.Contains(err.Error(), "all 4 id ranges") {
		t.Errorf("Pick on a full block: %v", err)
	}
	// A range in use that is not aligned still blocks both ranges it touches.
	got, err := b.Pick([]uint32{b.Base + RangeSize/2}, "y")
	if err != nil || got == b.Base || got == b.Base+RangeSize {
		t.Errorf("Pick next to an unaligned range = %d, %v", got, err)
	}
}

// lxdLines are what the lxd package and adduser leave in both files.
const lxdLines = "root:100000:10000001\n_lxd:100000:10000001\nalice:100000:65536\nbob:165536:65536\n"

func tempFiles(t *testing.T, subuid, subgid string) Files {
	t.Helper()
	dir := t.TempDir()
	f := Files{
		SubUID:  filepath.Join(dir, "subuid"),
		SubGID:  filepath.Join(dir, "subgid"),
		Record:  filepath.Join(dir, "den", "subid"),
		PwdLock: filepath.Join(dir, ".pwd.lock"),
	}
	for p, data := range map[string]string{f.SubUID: subuid, f.SubGID: subgid} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestReserve(t *testing.T) {
	f := tempFiles(t, lxdLines, "bob:165536:65536") // no final newline
	b, err := f.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	if b != (Block{DefaultBlockBase, DefaultBlockCount}) {
		t.Fatalf("Reserve() = %+v, want the default block", b)
	}
	line := fmt.Sprintf("root:%d:%d\n", DefaultBlockBase, DefaultBlockCount)
	if got := read(t, f.SubUID); got != lxdLines+line {
		t.Errorf("subuid:\n%s", got)
	}
	if got := read(t, f.SubGID); got != "bob:165536:65536\n"+line {
		t.Errorf("subgid:\n%s", got)
	}
	if got := read(t, f.Record); got != fmt.Sprintf("%d %d\n", DefaultBlockBase, DefaultBlockCount) {
		t.Errorf("record: %q", got)
	}
	if st, _ := os.Stat(f.SubUID); st.Mode().Perm() != 0o644 {
		t.Errorf("subuid mode %v", st.Mode())
	}
	// Idempotent: the second call finds the block and changes nothing.
	before := read(t, f.SubUID) + read(t, f.SubGID)
	if b2, err := f.Reserve(); err != nil || b2 != b {
		t.Fatalf("second Reserve() = %+v, %v", b2, err)
	}
	if after := read(t, f.SubUID) + read(t, f.SubGID); after != before {
		t.Errorf("second Reserve changed the files:\n%s", after)
	}
	if cur, ok, err := f.Current(); err != nil || !ok || cur != b {
		t.Errorf("Current() = %+v, %v, %v", cur, ok, err)
	}

	// Release takes out den's lines only; a second Release does nothing.
	os.WriteFile(f.SubUID, []byte(read(t, f.SubUID)+"carol:231072:65536\n"), 0o644)
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, f.SubUID); got != lxdLines+"carol:231072:65536\n" {
		t.Errorf("subuid after Release:\n%s", got)
	}
	if got := read(t, f.SubGID); got != "bob:165536:65536\n" {
		t.Errorf("subgid after Release:\n%q", got)
	}
	if _, err := os.Stat(filepath.Dir(f.Record)); !os.IsNotExist(err) {
		t.Errorf("record folder after Release: %v", err)
	}
	if err := f.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	for _, p := range []string{f.SubUID + ".lock", f.SubGID + ".lock", fmt.Sprintf("%s.%d", f.SubUID, os.Getpid())} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
}

func TestReserveAvoidsEntries(t *testing.T) {
	// LXD's usual root range on Ubuntu reaches past the default block.
	wide := "root:1000000:1000000000\nroot:1879048192:1000\n"
	f := tempFiles(t, "", wide)
	b, err := f.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	if b.Base != 1879113728 || b.Count != DefaultBlockCount { // 1879048192+1000 rounded up to 65536
		t.Errorf("Reserve() = %+v, want the block above every entry", b)
	}
	if !strings.HasSuffix(read(t, f.SubUID), fmt.Sprintf("root:%d:%d\n", b.Base, b.Count)) {
		t.Errorf("subuid:\n%s", read(t, f.SubUID))
	}

	// A root line of exactly the default block, with no record, is adopted.
	def := fmt.Sprintf("root:%d:%d\n", DefaultBlockBase, DefaultBlockCount)
	f = tempFiles(t, lxdLines+def, def)
	if b, err := f.Reserve(); err != nil || b.Base != DefaultBlockBase {
		t.Errorf("Reserve() with a recordless den line = %+v, %v", b, err)
	}
	if got := read(t, f.SubUID); got != lxdLines+def {
		t.Errorf("the adopted line was added again:\n%s", got)
	}

	// No room below 2^32.
	f = tempFiles(t, "x:1800000000:2494000000\n", "")
	if _, err := f.Reserve(); err == nil || !strings.Contains(err.Error(), "no room") {
		t.Errorf("Reserve() with no room: %v", err)
	}
	if _, err := os.Stat(f.Record); !os.IsNotExist(err) {
		t.Error("a record was written although nothing was reserved")
	}

	// A line den cannot read is named, and nothing is written.
	f = tempFiles(t, "alice:100000:65536\n+nis\n", "")
	if _, err := f.Reserve(); err == nil || !strings.Contains(err.Error(), "subuid:2:") {
		t.Errorf("Reserve() with a bad line: %v", err)
	}
	f = tempFiles(t, "alice:100000:-5\n", "")
	if _, err := f.Reserve(); err == nil || !strings.Contains(err.Error(), "subuid:1:") {
		t.Errorf("Reserve() with a bad number: %v", err)
	}
}

// TestReserveInterrupted runs Reserve over the states a kill -9 can leave.
func TestReserveInterrupted(t *testing.T) {
	line := fmt.Sprintf("root:%d:%d\n", DefaultBlockBase, DefaultBlockCount)
	record := fmt.Sprintf("%d %d\n", DefaultBlockBase, DefaultBlockCount)
	for _, tc := range []struct{ name, subuid, subgid string }{
		{"record only", lxdLines, lxdLines},
		{"record and subuid", lxdLines + line, lxdLines},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tempFiles(t, tc.subuid, tc.subgid)
			os.MkdirAll(filepath.Dir(f.Record), 0o755)
			os.WriteFile(f.Record, []byte(record), 0o644)
			// A lock file of a killed process (pid far above pid_max).
			os.WriteFile(f.SubGID+".lock", []byte("99999999\x00"), 0o600)
			if _, err := f.Reserve(); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{f.SubUID, f.SubGID} {
				if got := read(t, p); got != lxdLines+line {
					t.Errorf("%s:\n%s", p, got)
				}
			}
		})
	}

	// A user added since, over den's recorded block, is reported.
	f := tempFiles(t, lxdLines+line, "dave:1879048192:65536\n")
	os.MkdirAll(filepath.Dir(f.Record), 0o755)
	os.WriteFile(f.Record, []byte(record), 0o644)
	if _, err := f.Reserve(); err == nil || !strings.Contains(err.Error(), "dave:1879048192:65536") {
		t.Errorf("Reserve() over a new user's range: %v", err)
	}
	os.WriteFile(f.Record, []byte("12 nonsense\n"), 0o644)
	if _, err := f.Reserve(); err == nil || !strings.Contains(err.Error(), "BASE COUNT") {
		t.Errorf("Reserve() with a bad record: %v", err)
	}
}

func TestReserveLocks(t *testing.T) {
	f := tempFiles(t, lxdLines, lxdLines)
	var wg sync.WaitGroup
	blocks := make([]Block, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() { blocks[i], errs[i] = f.Reserve() })
	}
	wg.Wait()
	for i := range 8 {
		if errs[i] != nil || blocks[i] != blocks[0] {
			t.Errorf("concurrent Reserve %d = %+v, %v", i, blocks[i], errs[i])
		}
	}
	if n := strings.Count(read(t, f.SubUID), "root:"); n != 2 {
		t.Errorf("subuid has %d root lines after concurrent Reserves:\n%s", n, read(t, f.SubUID))
	}

	// A live holder of shadow's lock file (pid 1 here) makes Reserve wait,
	// then fail naming it; the files stay as they were.
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 200 * time.Millisecond
	os.WriteFile(f.SubGID+".lock", []byte("1\x00"), 0o600)
	before := read(t, f.SubUID)
	if err := f.Release(); err == nil || !strings.Contains(err.Error(), "pid 1") {
		t.Errorf("Release under a held lock: %v", err)
	}
	if read(t, f.SubUID) != before {
		t.Error("Release changed subuid without the lock")
	}
	if _, err := os.Stat(f.SubUID + ".lock"); !os.IsNotExist(err) {
		t.Error("the subuid lock taken before the failure was kept")
	}
	os.Remove(f.SubGID + ".lock")
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if read(t, f.SubUID) != lxdLines {
		t.Errorf("subuid after Release:\n%s", read(t, f.SubUID))
	}
}

// TestReserveSystemFiles reserves in the host's real /etc/subuid and
// /etc/subgid, then puts them back as they were. A block den already
// reserved on this host is found and kept.
func TestReserveSystemFiles(t *testing.T) {
	needRoot(t)
	f := SystemFiles
	orig := map[string]string{}
	for _, p := range []string{f.SubUID, f.SubGID, f.Record} {
		orig[p] = read(t, p)
	}
	_, had, err := f.Current()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if had {
			return
		}
		for _, p := range []string{f.SubUID, f.SubGID} {
			if read(t, p) != orig[p] {
				t.Errorf("%s was not restored by Release; putting it back", p)
				os.WriteFile(p, []byte(orig[p]), 0o644)
			}
		}
		os.Remove(f.Record)
		os.Remove(filepath.Dir(f.Record))
	})
	b, err := f.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("root:%d:%d", b.Base, b.Count)
	for _, p := range []string{f.SubUID, f.SubGID} {
		if !bytes.Contains([]byte(read(t, p)), []byte(line+"\n")) {
			t.Errorf("%s has no %s:\n%s", p, line, read(t, p))
		}
	}
	if b2, err := f.Reserve(); err != nil || b2 != b {
		t.Errorf("second Reserve() = %+v, %v", b2, err)
	}
	if had {
		t.Logf("den's block %+v was reserved before this test; kept", b)
		return
	}
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.SubUID, f.SubGID} {
		if got := read(t, p); got != orig[p] {
			t.Errorf("%s after Release differs from before:\n%q\nwas\n%q", p, got, orig[p])
		}
	}
}

// TestCheckSharedWithLXD: LXD maps every container into root's first
// range of 65536 ids or more; when den reserved its block before LXD
// added a line of its own, that range is den's, and LXD's machines would
// share host ids with den's LXC machines.
func TestCheckSharedWithLXD(t *testing.T) {
	// LXD's line first (installed before den's first machine): fine.
	f := tempFiles(t, "root:1234:1\nroot:100000:10000001\n", "root:100000:10000001\n")
	if err := f.CheckSharedWithLXD(); err != nil {
		t.Errorf("no block yet: %v", err)
	}
	if _, err := f.Reserve(); err != nil {
		t.Fatal(err)
	}
	if err := f.CheckSharedWithLXD(); err != nil {
		t.Errorf("LXD's range before den's: %v", err)
	}
	// den's first (root had no range when den reserved it): refused.
	f = tempFiles(t, "root:1234:1\n", "")
	if _, err := f.Reserve(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.SubUID, []byte(read(t, f.SubUID)+"root:100000:10000001\n"), 0o644)
	err := f.CheckSharedWithLXD()
	if err == nil || !strings.Contains(err.Error(), "den's id block") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("den's block first: %v", err)
	}
}
