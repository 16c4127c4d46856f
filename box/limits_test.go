package box

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// allocated runs f and returns how many bytes the heap allocated meanwhile
// (runtime.MemStats.TotalAlloc counts every allocation, freed or not).
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// refusedCleanly adds file with opts to a store holding good.box and checks
// that it is refused with an error matching target and containing want,
// and that the store and its temp area are as before. prepare, if given,
// runs just before the add.
func refusedCleanly(t *testing.T, file string, opts AddOptions, target error, want string, prepare ...func()) {
	t.Helper()
	home := t.TempDir()
	s := NewStore(home)
	if _, err := addFile(t, s, "test/good", "good.box", AddOptions{}); err != nil {
		t.Fatal(err)
	}
	before := tree(t, home)
	for _, f := range prepare {
		f()
	}
	_, err := addFile(t, s, "test/bomb", file, opts)
	if err == nil {
		t.Fatalf("%s was added", file)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q is not %v", err, target)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if after := tree(t, home); !slices.Equal(before, after) {
		t.Errorf("the store changed:\nbefore %q\nafter  %q", before, after)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Path(), tmpDir)); len(entries) != 0 {
		t.Errorf("temp area not empty: %v", entries)
	}
}

func TestAddRefusesBombs(t *testing.T) {
	const small = 4 << 20
	for _, tc := range []struct {
		file    string
		maxSize int64
		want    string
	}{
		// 32 files of 1 MiB of zeros in a 7.5 KB box.
		{"bomb-files.box", small, "unpacks to more than 4.0 MiB"},
		// A file header that claims 1 TiB: refused at the header, with the
		// default limit too.
		{"bomb-declared.box", small, "unpacks to more than 4.0 MiB"},
		{"bomb-declared.box", 0, "unpacks to more than 16.0 GiB"},
		// 64 MiB of zeros after the rootfs tar's end, which den reads on.
		{"bomb-trailing.box", small, "unpacks to more than 4.0 MiB"},
		// An outer entry den skips, 64 MiB of zeros.
		{"bomb-outer-skipped.box", small, "unpacks to more than 4.0 MiB"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			refusedCleanly(t, tc.file, AddOptions{MaxSize: tc.maxSize}, ErrTooLarge, tc.want)
		})
	}
}

func TestAddWithinMaxSize(t *testing.T) {
	s := NewStore(t.TempDir())
	b, err := addFile(t, s, "test/files", "bomb-files.box", AddOptions{MaxSize: 64 << 20})
	if err != nil {
		t.Fatalf("a 32 MiB box refused with a 64 MiB limit: %v", err)
	}
	if b.Info.Size < 32<<20 {
		t.Errorf("size %d, want at least 32 MiB", b.Info.Size)
	}
}

// TestAddBoundsDecoderMemory adds box files whose compression asks for a
// huge window: a zstd frame of 512 MiB (the decoder's own default limit,
// which took den to 542 MB) and an xz block with a 1 GiB dictionary (which
// the xz decoder allocates at once). Each must be refused before the
// decoder allocates it.
func TestAddBoundsDecoderMemory(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"bomb-zstd-window.box", "box file: zstd: the window is larger than 128.0 MiB"},
		{"bomb-xz-dict.box", "box file: xz: a dictionary of 1.0 GiB, larger than the 128.0 MiB den allows"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var n uint64
			n = allocated(func() { refusedCleanly(t, tc.file, AddOptions{}, nil, tc.want) })
			t.Logf("allocated %d MiB", n>>20)
			if n > 64<<20 {
				t.Errorf("adding %s allocated %d MiB", tc.file, n>>20)
			}
		})
	}
	// The good boxes, for comparison.
	for _, file := range []string{"good-zstd.box", "good-xz.box"} {
		s := NewStore(t.TempDir())
		n := allocated(func() {
			if _, err := addFile(t, s, "test/good", file, AddOptions{}); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: allocated %d MiB", file, n>>20)
		if n > 64<<20 {
			t.Errorf("adding %s allocated %d MiB", file, n>>20)
		}
	}
}

// TestAddChecksFreeSpace makes the store's filesystem look nearly full:
// a box is refused before unpacking when even the box file would not fit
// with den's margin, and during unpacking as soon as the next file would
// not; nothing is left behind.
func TestAddChecksFreeSpace(t *testing.T) {
	real := fsStat
	t.Cleanup(func() { fsStat = real })
	const total = 1 << 30 // a 1 GiB filesystem: den keeps 5% (51.2 MiB) free
	free := func(avail, inodes uint64) func() {
		return func() {
			fsStat = func(string) (fsSpace, error) {
				return fsSpace{Avail: avail, Total: total, FreeFiles: inodes, Files: 1 << 20}, nil
			}
		}
	}
	restore := func() { fsStat = real }
	refusedCleanly(t, "good.box", AddOptions{}, ErrNoSpace, "51.2 MiB den keeps free", free(50<<20, 1<<20))
	restore()
	// 8.8 MiB above the margin: the first files fit, not all 32 MiB.
	refusedCleanly(t, "bomb-files.box", AddOptions{MaxSize: 1 << 30}, ErrNoSpace, "not enough free space", free(60<<20, 1<<20))
	restore()
	// 100 free inodes, where den keeps 10000.
	refusedCleanly(t, "good.box", AddOptions{}, ErrNoSpace, "inodes", free(1<<30, 100))
	free(100<<20, 1<<20)()
	if _, err := addFile(t, NewStore(t.TempDir()), "test/files", "bomb-files.box", AddOptions{MaxSize: 1 << 30}); err != nil {
		t.Errorf("with 100 MiB free: %v", err)
	}
}

func TestLimitedReader(t *testing.T) {
	r := &limitedReader{r: strings.NewReader("0123456789"), left: 4, err: ErrTooLarge}
	buf := make([]byte, 3)
	var got []byte
	var err error
	for err == nil {
		var n int
		n, err = r.Read(buf)
		got = append(got, buf[:n]...)
	}
	if string(got) != "0123" || !errors.Is(err, ErrTooLarge) {
		t.Errorf("read %q, %v", got, err)
	}
	r = &limitedReader{r: strings.NewReader("0123"), left: 4, err: ErrTooLarge}
	if data, err := io.ReadAll(r); string(data) != "0123" || err != nil {
		t.Errorf("exactly the limit: %q, %v", data, err)
	}
}

func TestAddRespectsContext(t *testing.T) {
	// Refusals are errors, cancellation stays context.Canceled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, _ := os.Open(filepath.Join(archives, "bomb-files.box"))
	defer f.Close()
	if _, err := NewStore(t.TempDir()).Add(ctx, "a/b", f, AddOptions{MaxSize: 1 << 20}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled add: %v", err)
	}
}

func TestBudgetTake(t *testing.T) {
	b, err := newBudget(t.TempDir(), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{-1, 1<<20 + 1, 1<<63 - 1, 1<<63 - 4000} {
		if err := b.take(size); !errors.Is(err, ErrTooLarge) {
			t.Errorf("take(%d) = %v, want ErrTooLarge", size, err)
		}
	}
	for range 256 { // 256 blocks of 4 KiB: 1 MiB
		if err := b.take(0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.take(0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("257th entry: %v", err)
	}
}
