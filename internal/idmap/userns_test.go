//go:build linux

package idmap

import (
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestOwnerMap(t *testing.T) {
	m, err := OwnerMap(100000, Owner{UID: 1234, GID: 1235, GuestUID: 1000, GuestGID: 1001})
	if err != nil {
		t.Fatal(err)
	}
	want := Map{UIDs: []Extent{{1234, 101000, 1}}, GIDs: []Extent{{1235, 101001, 1}}}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("OwnerMap = %+v, want %+v", m, want)
	}
	for _, o := range []Owner{
		{UID: 0, GID: 1000, GuestUID: 1000, GuestGID: 1000},
		{UID: 1000, GID: 0, GuestUID: 1000, GuestGID: 1000},
		{UID: 1000, GID: 1000, GuestUID: 0, GuestGID: 1000},
		{UID: 1000, GID: 1000, GuestUID: 1000, GuestGID: 70000},
	} {
		if _, err := OwnerMap(100000, o); err == nil {
			t.Errorf("OwnerMap(%+v) was accepted", o)
		}
	}
}

func TestMapValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Map
		want string
	}{
		{"range", RangeMap(100000), ""},
		{"no gids", Map{UIDs: []Extent{{0, 1, 1}}}, "no gid"},
		{"empty", Map{UIDs: []Extent{{0, 1, 0}}, GIDs: []Extent{{0, 1, 1}}}, "empty"},
		{"wraps", Map{UIDs: []Extent{{0, 1<<32 - 10, 65536}}, GIDs: []Extent{{0, 1, 1}}}, "past the largest"},
		{"overlap inside", Map{UIDs: []Extent{{0, 1000, 10}, {5, 5000, 10}}, GIDs: []Extent{{0, 1, 1}}}, "overlap"},
		{"overlap host", Map{UIDs: []Extent{{0, 1000, 10}, {50, 1005, 10}}, GIDs: []Extent{{0, 1, 1}}}, "overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestNewUserNS checks the namespace has the map asked for, and that
// making many leaves no process and no file descriptor behind.
func TestNewUserNS(t *testing.T) {
	needRoot(t)
	m := Map{
		UIDs: []Extent{{0, testBase, 65536}, {70000, testBase + 70000, 5}},
		GIDs: []Extent{{0, testBase + 1, 1000}},
	}
	ns, err := NewUserNS(m)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(ns.Fd()), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("not an nsfs file: %v (type %x)", err, st.Type)
	}
	typ, err := unix.IoctlRetInt(int(ns.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWUSER {
		t.Fatalf("NS_GET_NSTYPE = %x, %v; want CLONE_NEWUSER", typ, err)
	}
	uidMap, gidMap := nsMaps(t, ns)
	if want := fmt.Sprintf("0 %d 65536\n70000 %d 5\n", testBase, testBase+70000); uidMap != want {
		t.Errorf("uid_map = %q, want %q", uidMap, want)
	}
	if want := fmt.Sprintf("0 %d 1000\n", testBase+1); gidMap != want {
		t.Errorf("gid_map = %q, want %q", gidMap, want)
	}

	fdsBefore, kidsBefore := openFDs(t), children(t)
	for range 20 {
		ns, err := NewUserNS(RangeMap(testBase))
		if err != nil {
			t.Fatal(err)
		}
		ns.Close()
	}
	if kids := children(t); len(kids) > len(kidsBefore) {
		t.Errorf("children after 20 namespaces: %v, before: %v", kids, kidsBefore)
	}
	// Go's runtime may open a pidfd or two lazily; give closes a moment.
	time.Sleep(10 * time.Millisecond)
	if fds := openFDs(t); !maps.Equal(fds, fdsBefore) {
		t.Errorf("file descriptors after 20 namespaces:\n%v\nbefore:\n%v", fds, fdsBefore)
	}
	if _, err := NewUserNS(Map{}); err == nil {
		t.Error("an empty map was accepted")
	}
}

// nsMaps reads the maps of the user namespace ns through a process that
// joins it (lsns cannot: it shows only namespaces with processes).
func nsMaps(t *testing.T, ns *os.File) (string, string) {
	t.Helper()
	out, err := runInNS(ns, "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map")
	if err != nil {
		t.Fatalf("read maps: %v: %s", err, out)
	}
	u, g, _ := strings.Cut(out, "--\n")
	return normalizeMap(u), normalizeMap(g)
}

func normalizeMap(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		b.WriteString(strings.Join(strings.Fields(l), " ") + "\n")
	}
	return b.String()
}
