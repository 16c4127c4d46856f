package machine

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/testenv"
)

// TestChownState gives .den/ to the project's owner, leaving alone what
// is not den's: a symlink's target and a file hard-linked from elsewhere.
func TestChownState(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown needs root")
	}
	dir := t.TempDir()
	proj := filepath.Join(dir, "app")
	st := filepath.Join(proj, ".den", "web")
	if err := os.MkdirAll(st, 0o700); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(dir, "outside")
	linked := filepath.Join(dir, "linked")
	for _, f := range []string{outside, linked, filepath.Join(st, "id_ed25519")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(st, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(linked, filepath.Join(st, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(proj, 1234, 1235); err != nil {
		t.Fatal(err)
	}
	if err := ChownState(&config.Project{Dir: proj}); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) uint32 {
		var s syscall.Stat_t
		if err := syscall.Lstat(p, &s); err != nil {
			t.Fatal(err)
		}
		return s.Uid
	}
	for _, p := range []string{filepath.Join(proj, ".den"), st, filepath.Join(st, "id_ed25519")} {
		if owner(p) != 1234 {
			t.Errorf("%s owned by %d, want 1234", p, owner(p))
		}
	}
	for _, p := range []string{outside, linked} {
		if owner(p) != 0 {
			t.Errorf("%s owned by %d: den followed a link out of .den/", p, owner(p))
		}
	}
}
