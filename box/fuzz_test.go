package box

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/ulikunitz/xz"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/fuzzutil"
)

// Fuzz targets for the box reader: the whole box file, its rootfs
// entries, metadata.json and lxc-config. Each is seeded with the box files
// of testdata/archives (good, malicious, broken and bombs) and runs with a
// small size limit, so no input can fill the disk. scripts/fuzz.sh runs
// them for a bounded time; crashers go to testdata/fuzz/<target>/.

// fuzzMaxSize bounds what one fuzz input may unpack to.
const fuzzMaxSize = 8 << 20

// seedBoxes returns the box files of testdata/archives.
func seedBoxes(f *testing.F) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join(archives, "*.box"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no box files in %s: %v", archives, err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// outerEntries returns the entries of a box file's outer tar by name (up
// to 1 MiB each), or nil.
func outerEntries(box []byte) map[string][]byte {
	r, _, err := Decompress(bytes.NewReader(box))
	if err != nil {
		return nil
	}
	defer r.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(io.LimitReader(r, 64<<20))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(io.LimitReader(tr, 1<<20))
		out[strings.TrimPrefix(hdr.Name, "./")] = b
	}
}

func FuzzBoxFile(f *testing.F) {
	for _, b := range seedBoxes(f) {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzutil.Watchdog(t)()
		rootfs, bud := fuzzRootfs(t, dir)
		parts, err := readBoxFile(bytes.NewReader(data), rootfs, func(string, ...any) {}, bud)
		if err != nil {
			return
		}
		if parts.metaRaw == nil {
			t.Fatal("a box without metadata.json was read")
		}
		if _, err := splitLXCConfig(parts.lxcConfig); err != nil {
			t.Fatalf("an lxc-config den refuses was read: %v", err)
		}
		checkInside(t, dir, rootfs)
	})
}

// fuzzRootfs empties dir (left by the last input) and makes dir/rootfs
// afresh, with a budget of fuzzMaxSize.
func fuzzRootfs(t *testing.T, dir string) (string, *budget) {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := fsutil.RemoveTree(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	bud, err := newBudget(dir, fuzzMaxSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rootfs, bud
}

// checkInside fails when anything was written in dir outside rootfs, or
// when rootfs holds a relative symlink that leads out of it.
func checkInside(t *testing.T, dir, rootfs string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "rootfs" {
		t.Fatalf("written beside the rootfs: %v", entries)
	}
	filepath.WalkDir(rootfs, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink == 0 {
			return nil
		}
		target, _ := os.Readlink(p)
		if filepath.IsAbs(target) {
			return nil
		}
		rel, _ := filepath.Rel(rootfs, filepath.Join(filepath.Dir(p), target))
		if !filepath.IsLocal(rel) && rel != "." {
			t.Errorf("symlink %s -> %s leads out of the rootfs", p, target)
		}
		return nil
	})
}

// FuzzRootfsEntries extracts a plain tar as a rootfs: every entry must land
// inside the target folder.
func FuzzRootfsEntries(f *testing.F) {
	for _, b := range seedBoxes(f) {
		for name, data := range outerEntries(b) {
			if !strings.HasPrefix(name, "rootfs.tar") {
				continue
			}
			if r, _, err := Decompress(bytes.NewReader(data)); err == nil {
				// The first 64 KiB: the bombs' tars are long, and large
				// inputs slow the fuzzer down.
				raw, _ := io.ReadAll(io.LimitReader(r, 64<<10))
				r.Close()
				f.Add(raw)
			}
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzutil.Watchdog(t)()
		rootfs, bud := fuzzRootfs(t, dir)
		opts := &extractOptions{archive: "rootfs.tar", devices: true, chown: os.Geteuid() == 0, dropped: map[string]int{}, budget: bud}
		err := extractTar(bytes.NewReader(data), rootfs, opts)
		var ae *ArchiveError
		if err != nil && errors.As(err, &ae) && ae.Entry == "" {
			t.Errorf("an ArchiveError without the entry: %v", err)
		}
		checkInside(t, dir, rootfs)
	})
}

func FuzzMetadata(f *testing.F) {
	for _, b := range seedBoxes(f) {
		if m, ok := outerEntries(b)[metaFile]; ok {
			f.Add(m)
		}
	}
	f.Add([]byte(`{"provider": "lxc", "den": {"user": "root"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzutil.Watchdog(t)()
		var m Metadata
		if json.Unmarshal(data, &m) != nil || m.check() != nil {
			return
		}
		if m.Provider != "lxc" {
			t.Errorf("provider %q accepted", m.Provider)
		}
		if u := m.LoginUser(); u == "root" || !userRE.MatchString(u) {
			t.Errorf("login user %q accepted", u)
		}
	})
}

func FuzzLXCConfig(f *testing.F) {
	for _, b := range seedBoxes(f) {
		if c, ok := outerEntries(b)["lxc-config"]; ok {
			f.Add(c)
		}
	}
	f.Add([]byte("lxc.arch = amd64\r\nlxc.init.cmd = /sbin/init\rlxc.hook.pre-start = /x\n\n# c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzutil.Watchdog(t)()
		lines, err := splitLXCConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("error %q does not name the line", err)
			}
			return
		}
		for _, l := range lines {
			if strings.IndexFunc(l, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) >= 0 {
				t.Errorf("line %q holds a control character", l)
			}
		}
		if len(lines) > bytes.Count(data, []byte("\n"))+bytes.Count(data, []byte("\r"))+1 {
			t.Errorf("%d lines from %d line endings", len(lines), bytes.Count(data, []byte("\n")))
		}
	})
}

// FuzzXzGuard compresses the input with ulikunitz/xz in many shapes (block
// size, check, two streams with padding) and reads it back through the
// guard: the guard must follow every valid stream, never refuse one.
func FuzzXzGuard(f *testing.F) {
	f.Add([]byte("den"), uint16(0), uint8(0), false)
	f.Add(xzData()[:20000], uint16(700), uint8(1), true)
	f.Add(bytes.Repeat([]byte{0}, 70000), uint16(1), uint8(2), false)
	f.Add(xzData(), uint16(9000), uint8(3), true)
	f.Fuzz(func(t *testing.T, data []byte, blockSize uint16, check uint8, twice bool) {
		defer fuzzutil.Watchdog(t)()
		// Blocks of at least 4 KiB and a small dictionary: the writer makes
		// a new encoder for every block, which is slow.
		cfg := xz.WriterConfig{DictCap: 64 << 10}
		if blockSize != 0 {
			cfg.BlockSize = 4096 + int64(blockSize)
		}
		data = data[:min(len(data), 64<<10)] // the encoder is slow
		switch check % 4 {
		case 1:
			cfg.CheckSum = xz.CRC32
		case 2:
			cfg.CheckSum = xz.SHA256
		case 3:
			cfg.NoCheckSum = true
		}
		s := xzOf(t, data, cfg)
		want := data
		if twice {
			s = append(append(s, 0, 0, 0, 0), xzOf(t, data, cfg)...)
			want = append(append([]byte{}, data...), data...)
		}
		r, _, err := Decompress(bytes.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes of %d: %v", len(got), len(want), err)
		}
	})
}
