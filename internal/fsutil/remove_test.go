package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/den-dev/den/internal/testenv"
	"golang.org/x/sys/unix"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveTreeNeverFollowsSymlinks(t *testing.T) {
	base := t.TempDir()
	project := filepath.Join(base, "project")
	write(t, filepath.Join(project, "keep.txt"), "precious")
	victim := filepath.Join(base, "machine")
	write(t, filepath.Join(victim, "delta0", "etc", "x"), "x")
	// Links to the project, to its file and to its folder, at several depths.
	os.Symlink(project, filepath.Join(victim, "delta0", "den"))
	os.Symlink(filepath.Join(project, "keep.txt"), filepath.Join(victim, "file-link"))
	os.Symlink("../../project", filepath.Join(victim, "delta0", "rel"))
	if err := RemoveTree(victim); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(victim); !os.IsNotExist(err) {
		t.Fatalf("machine folder still there: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(project, "keep.txt"))
	if err != nil || string(b) != "precious" {
		t.Fatalf("project file damaged: %q %v", b, err)
	}
	// Twice is fine.
	if err := RemoveTree(victim); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestRemoveTreeRefusesMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root to bind-mount")
	}
	base := t.TempDir()
	project := filepath.Join(base, "project")
	write(t, filepath.Join(project, "keep.txt"), "precious")
	victim := filepath.Join(base, "machine")
	target := filepath.Join(victim, "delta0", "den")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(project, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	err := RemoveTree(victim)
	if !errors.Is(err, ErrMounted) {
		t.Fatalf("want ErrMounted, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(project, "keep.txt")); err != nil {
		t.Fatalf("project file gone: %v", err)
	}
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("refused remove still deleted things: %v", err)
	}
}

func TestRemoveTreeRefusesRoot(t *testing.T) {
	for _, p := range []string{"/", "relative/path", ""} {
		if err := RemoveTree(p); err == nil {
			t.Errorf("RemoveTree(%q) = nil, want refusal", p)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b`); got != "/a b" {
		t.Fatalf("got %q", got)
	}
}
