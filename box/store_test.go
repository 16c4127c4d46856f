package box

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/den-dev/den/internal/testenv"
	"golang.org/x/sys/unix"
)

// archives holds the box files written by testdata/archives/gen.go.
const archives = "../testdata/archives"

func addFile(t *testing.T, s *Store, name, file string, opts AddOptions) (*Box, error) {
	t.Helper()
	f, err := os.Open(filepath.Join(archives, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return s.Add(context.Background(), name, f, opts)
}

// tree lists every path under dir, for before/after comparisons.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestAddGoodBoxes(t *testing.T) {
	for _, file := range []string{"good.box", "good-zstd.box", "good-xz.box", "good-plain.box"} {
		t.Run(file, func(t *testing.T) {
			s := NewStore(t.TempDir())
			var warnings []string
			b, err := addFile(t, s, "test/good", file, AddOptions{Warn: func(f string, a ...any) { warnings = append(warnings, f) }})
			if err != nil {
				t.Fatal(err)
			}
			if b.Version != "1.0.0" || b.Meta.LoginUser() != "den" {
				t.Errorf("version %q user %q", b.Version, b.Meta.LoginUser())
			}
			root := b.Rootfs()
			data, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
			if err != nil || !strings.Contains(string(data), "den:x:1000") {
				t.Fatalf("passwd: %q %v", data, err)
			}
			if l, err := os.Readlink(filepath.Join(root, "etc/localtime")); err != nil || l != "/usr/share/zoneinfo/Etc/UTC" {
				t.Errorf("localtime link %q %v", l, err)
			}
			fi, err := os.Stat(filepath.Join(root, "usr/bin/sudo"))
			if err != nil || fi.Mode()&fs.ModeSetuid == 0 {
				t.Errorf("sudo lost setuid: %v %v", fi.Mode(), err)
			}
			var a, c syscall.Stat_t
			syscall.Stat(filepath.Join(root, "usr/bin/sudo"), &a)
			syscall.Stat(filepath.Join(root, "usr/bin/sudoedit"), &c)
			if a.Ino != c.Ino {
				t.Errorf("sudoedit is not a hard link of sudo")
			}
			if fi, err := os.Stat(filepath.Join(root, "ro")); err != nil || fi.Mode().Perm() != 0o555 {
				t.Errorf("ro folder mode %v %v", fi.Mode(), err)
			}
			if _, err := os.Stat(filepath.Join(root, "ro/file")); err != nil {
				t.Errorf("file in a read-only folder: %v", err)
			}
			if os.Geteuid() == 0 {
				var st syscall.Stat_t
				syscall.Lstat(filepath.Join(root, "home/den"), &st)
				if st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o777 != 0o700 {
					t.Errorf("home/den: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o777)
				}
				syscall.Lstat(filepath.Join(root, "dev/null"), &st)
				if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || unix.Major(st.Rdev) != 1 {
					t.Errorf("dev/null is not the char device 1,3: mode %o", st.Mode)
				}
				buf := make([]byte, 64)
				if n, err := unix.Lgetxattr(filepath.Join(root, "usr/bin/ping"), "security.capability", buf); err != nil || n != 20 {
					t.Errorf("ping lost its capability: %d %v", n, err)
				}
				if _, err := unix.Lgetxattr(filepath.Join(root, "usr/bin/ping"), "trusted.overlay.opaque", buf); err == nil {
					t.Errorf("trusted.overlay.opaque was applied")
				}
			}
			if file == "good.box" {
				cfg, _ := b.LXCConfig()
				if len(cfg) != 2 {
					t.Errorf("lxc-config lines %q", cfg)
				}
				if _, err := os.Stat(filepath.Join(b.Dir, "lxc-template")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("lxc-template was kept: %v", err)
				}
				if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, "never runs") }) {
					t.Errorf("no warning about the skipped lxc-template: %q", warnings)
				}
			}
			list, err := s.List()
			if err != nil || len(list) != 1 || list[0].Name != "test/good" || list[0].Info.Size <= 0 {
				t.Fatalf("list: %+v %v", list, err)
			}
			if _, err := os.Stat(filepath.Join(s.Path(), "test-VAGRANTSLASH-good", "1.0.0", "lxc", "rootfs")); err != nil {
				t.Errorf("store layout: %v", err)
			}
			if entries, _ := os.ReadDir(filepath.Join(s.Path(), tmpDir)); len(entries) != 0 {
				t.Errorf("temp area not empty: %v", entries)
			}
		})
	}
}

func TestAddRefusesMaliciousAndBrokenBoxes(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"evil-dotdot.box", `"rootfs/../x" refused: ".." in name`},
		{"evil-dotdot-nested.box", `"rootfs/etc/../../../x" refused`},
		{"evil-absolute.box", `"/tmp/den-evil-absolute" refused: absolute name`},
		{"evil-symlink-write.box", `would be written through the symlink "escape"`},
		{"evil-symlink-relative.box", `leads out of the target folder`},
		{"evil-symlink-chain.box", `"rootfs/b" refused: symlink to ".." leads out`},
		{"evil-symlink-dir-swap.box", `would replace the folder "etc"`},
		{"evil-hardlink-out.box", `".." in name`},
		{"evil-hardlink-abs.box", `absolute name`},
		{"evil-hardlink-symlink.box", `through the symlink "hostetc"`},
		{"evil-hardlink-missing.box", `"rootfs/x" refused`},
		{"evil-outside-rootfs.box", `"etc/passwd" refused: outside the archive's rootfs/ folder`},
		{"evil-outer-symlink.box", `"metadata.json" refused: a box file holds plain files only`},
		{"evil-outer-device.box", `"lxc-config" refused: a box file holds plain files only`},
		{"evil-outer-dotdot.box", `"../lxc-config" refused`},
		{"evil-lxc-config-nul.box", `lxc-config: line 2 "lxc.init.cmd = /sbin/init\x00lxc.hook.pre-start = /bin/evil": control character U+0000`},
		{"broken-truncated.box", `truncated or damaged`},
		{"broken-no-metadata.box", `no metadata.json`},
		{"broken-no-rootfs.box", `no rootfs archive`},
		{"broken-provider.box", `provider is "virtualbox"`},
		{"broken-bzip2.box", `bzip2 archives are not supported`},
		{"broken-not-linux.box", `no /etc/passwd`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			home := t.TempDir()
			s := NewStore(home)
			if _, err := addFile(t, s, "test/good", "good.box", AddOptions{}); err != nil {
				t.Fatal(err)
			}
			before := tree(t, home)
			_, err := addFile(t, s, "test/evil", tc.file, AddOptions{})
			if err == nil {
				t.Fatalf("%s was added", tc.file)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if after := tree(t, home); !slices.Equal(before, after) {
				t.Errorf("the store changed:\nbefore %q\nafter  %q", before, after)
			}
			for _, p := range []string{"/tmp/den-evil-absolute", "/tmp/den-evil-symlink", "/den-evil"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written outside the store", p)
				}
			}
		})
	}
}

func TestAddVersionsAndRemove(t *testing.T) {
	s := NewStore(t.TempDir())
	for _, v := range []string{"1.10.0", "1.2.0", "1.9"} {
		if _, err := addFile(t, s, "a/b", "good.box", AddOptions{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := addFile(t, s, "a/b", "good.box", AddOptions{Version: "1.9"}); err == nil || !strings.Contains(err.Error(), "installed already") {
		t.Errorf("second add of 1.9: %v", err)
	}
	if _, err := addFile(t, s, "a/b", "good.box", AddOptions{Version: "1.9", Force: true}); err != nil {
		t.Errorf("forced add: %v", err)
	}
	b, err := s.Get("a/b", "")
	if err != nil || b.Version != "1.10.0" {
		t.Fatalf("newest: %v %v", b, err)
	}
	if _, err := s.Get("a/b", "7"); !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "1.2.0, 1.9, 1.10.0") {
		t.Errorf("missing version: %v", err)
	}
	if err := s.Remove("a/b", "1.10.0"); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Get("a/b", ""); b == nil || b.Version != "1.9" {
		t.Errorf("after remove: %+v", b)
	}
	if err := s.Remove("a/b", ""); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("after removing all: %+v", list)
	}
	if _, err := os.Stat(filepath.Join(s.Path(), "a-VAGRANTSLASH-b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("name folder left: %v", err)
	}
	if _, err := s.Get("a/b", ""); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("get after remove: %v", err)
	}
}

func TestAddInterrupted(t *testing.T) {
	s := NewStore(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, _ := os.Open(filepath.Join(archives, "good.box"))
	defer f.Close()
	if _, err := s.Add(ctx, "a/b", f, AddOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled add: %v", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("a cancelled add is listed: %+v", list)
	}
	// A folder left by a killed add (a dead pid) is swept by the next add.
	dead := filepath.Join(s.Path(), tmpDir, "add-999999999-1-0")
	os.MkdirAll(filepath.Join(dead, "lxc/rootfs"), 0o755)
	if _, err := addFile(t, s, "a/b", "good.box", AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("left-over temp folder not swept: %v", err)
	}
}

func TestBadNames(t *testing.T) {
	s := NewStore(t.TempDir())
	for _, name := range []string{"", "../x", "a/b/c", ".hidden", "a b", "a/../b"} {
		if _, err := addFile(t, s, name, "good.box", AddOptions{}); err == nil || !strings.Contains(err.Error(), "invalid box name") {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if _, err := addFile(t, s, "a", "good.box", AddOptions{Version: "../1"}); err == nil || !strings.Contains(err.Error(), "invalid box version") {
		t.Errorf("bad version: %v", err)
	}
}

func TestWriteBoxFileRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "owners and device nodes need root")
	}
	s := NewStore(t.TempDir())
	b, err := addFile(t, s, "a/b", "good.box", AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Compression{Zstd, Gzip, Xz} {
		t.Run(string(c), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.box")
			meta := Metadata{Den: &DenMetadata{Version: "2.0", User: "den"}}
			if err := WriteBoxFile(context.Background(), out, b.Rootfs(), meta, PackOptions{Compression: c, LXCConfig: []byte("lxc.arch = amd64\n")}); err != nil {
				t.Fatal(err)
			}
			f, _ := os.Open(out)
			defer f.Close()
			b2, err := s.Add(context.Background(), "a/round-"+string(c), f, AddOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if b2.Version != "2.0" || b2.Meta.Version != FormatVersion {
				t.Errorf("version %q format %q", b2.Version, b2.Meta.Version)
			}
			if got, want := manifest(t, b2.Rootfs()), manifest(t, b.Rootfs()); !slices.Equal(got, want) {
				t.Errorf("rootfs differs after a round trip:\n got %q\nwant %q", got, want)
			}
			if _, err := os.Stat(out + ".part"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf(".part left: %v", err)
			}
		})
	}
}

// manifest describes every entry of a tree: path, type, mode, owner, link,
// size, capability.
func manifest(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		syscall.Lstat(p, &st)
		link, _ := os.Readlink(p)
		capb := make([]byte, 64)
		n, _ := unix.Lgetxattr(p, "security.capability", capb)
		rel, _ := filepath.Rel(dir, p)
		size := st.Size
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			size = 0
		}
		out = append(out, fmt.Sprintf("%s %o %d:%d %q %d cap%d links%d", rel, st.Mode, st.Uid, st.Gid, link, size, max(n, 0), st.Nlink))
		return nil
	})
	return out
}

func TestAddRecordsCatalog(t *testing.T) {
	s := NewStore(t.TempDir())
	if _, err := addFile(t, s, "a/b", "good.box", AddOptions{Version: "1.1", Source: "https://x/b-1.1.box", Catalog: "https://x/b.json"}); err != nil {
		t.Fatal(err)
	}
	b, err := s.Get("a/b", "1.1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Info.Catalog != "https://x/b.json" || b.Info.Source != "https://x/b-1.1.box" {
		t.Errorf("info = %+v", b.Info)
	}
}

func TestLoginUser(t *testing.T) {
	if got := (Metadata{Provider: "lxc", Version: "3"}).LoginUser(); got != "vagrant" {
		t.Errorf("a vagrant-lxc box's login user is %q, want vagrant", got)
	}
	if got := (Metadata{Den: &DenMetadata{User: "dev"}}).LoginUser(); got != "dev" {
		t.Errorf("den's login user field gives %q", got)
	}
}

// TestLXCConfigLines checks that a box's lxc-config is split on every line
// ending LXC knows (a hook hidden behind a CR is a line of its own, which
// the provider drops) and that a stored file holding a control character is
// refused, naming the file and the line.
func TestLXCConfigLines(t *testing.T) {
	s := NewStore(t.TempDir())
	b, err := addFile(t, s, "test/cr", "evil-lxc-config-cr.box", AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines, err := b.LXCConfig()
	want := []string{"lxc.arch = amd64", "lxc.init.cmd = /sbin/init", "lxc.hook.pre-start = /bin/evil"}
	if err != nil || !slices.Equal(lines, want) {
		t.Fatalf("LXCConfig = %q, %v; want %q", lines, err, want)
	}
	path := filepath.Join(b.Dir, "lxc-config")
	for _, data := range []string{"lxc.arch = amd64\nlxc.init.cmd = /x\x00lxc.hook.pre-start = /bin/evil\n", "lxc.arch = amd64\r\nlxc.init.cmd = /x\x1blxc.hook.pre-start = /bin/evil"} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = b.LXCConfig()
		if err == nil || !strings.Contains(err.Error(), path+": line 2 ") || !strings.Contains(err.Error(), "control character") {
			t.Errorf("LXCConfig of a tampered file: %v; want an error naming %s and line 2", err, path)
		}
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if lines, err := b.LXCConfig(); err != nil || len(lines) != 0 {
		t.Errorf("empty lxc-config: %q, %v", lines, err)
	}
}

// The box store may be what makes DEN_HOME (den box add or build as
// den's first command): DEN_HOME must let an unprivileged machine's root
// pass, so it is not made 0700.
func TestStoreMakesPassableHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if _, err := NewStore(home).TempDir(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(home)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o001 == 0 {
		t.Errorf("DEN_HOME made with mode %04o: others cannot pass", fi.Mode().Perm())
	}
}
