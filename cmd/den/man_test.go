package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/testenv"
)

// TestManPagesCurrent checks that man/ holds the pages den's help makes
// now: a changed usage, flag or command needs the pages regenerated.
func TestManPagesCurrent(t *testing.T) {
	want := manPages(newApp())
	dir := filepath.Join("..", "..", "man")
	have, err := filepath.Glob(filepath.Join(dir, "den*.1"))
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, p := range have {
		name := filepath.Base(p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[name]; !ok {
			stale = append(stale, name+" (no such command)")
		} else if !bytes.Equal(b, w) {
			stale = append(stale, name+" (differs)")
		}
	}
	for name := range want {
		if !slices.Contains(have, filepath.Join(dir, name)) {
			stale = append(stale, name+" (missing)")
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		t.Errorf("man pages in man/ are not current: %s\nregenerate them from the repository's root with:\n  %s\nand commit man/", strings.Join(stale, ", "), manRegenerate)
	}
}

// TestManPagesRender formats every page of man/ (generated and written
// by hand) with groff's warnings on, as lintian does: a warning fails.
func TestManPagesRender(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		testenv.Skip(t, "groff is not installed (apt-get install groff-base)")
	}
	pages, err := filepath.Glob(filepath.Join("..", "..", "man", "*.[1-9]"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages in man/: %v", err)
	}
	for _, p := range pages {
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z", p)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff -man -ww %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
}

func TestManPageOfACommand(t *testing.T) {
	pages := manPages(newApp())
	for _, name := range []string{"den.1", "den-up.1", "den-box.1", "den-box-add.1", "den-snapshot-save.1"} {
		if _, ok := pages[name]; !ok {
			t.Errorf("no page %s", name)
		}
	}
	for name := range pages {
		if strings.Contains(name, "__") {
			t.Errorf("a hidden command has a page: %s", name)
		}
	}
	up := string(pages["den-up.1"])
	for _, want := range []string{
		`.TH "DEN\-UP" "1"`,
		"den\\-up \\- create and start machines",
		".B den up\n[\\fIOPTIONS\\fR] [MACHINE...]\n",
		"\\fB\\-\\-provision\\-with\\fR \\fINAME\\fR\nrun only the provisioner called NAME",
		".BR den (1),\n",
	} {
		if !strings.Contains(up, want) {
			t.Errorf("den-up.1 lacks %q:\n%s", want, up)
		}
	}
	if strings.Contains(up, "\\-\\-help") {
		t.Errorf("den-up.1 lists --help:\n%s", up)
	}
	top := string(pages["den.1"])
	for _, want := range []string{".BR den\\-box (1)\nmanage boxes", "\\fB\\-\\-chdir\\fR \\fIDIR\\fR, \\fB\\-C\\fR \\fIDIR\\fR", "(environment: DEN_CHDIR)", "\\fB\\-\\-version\\fR", ".SH EXIT STATUS"} {
		if !strings.Contains(top, want) {
			t.Errorf("den.1 lacks %q", want)
		}
	}
}

func TestRoffEscape(t *testing.T) {
	var b manBuilder
	b.text(roffEscape(".hidden\n'quote\nback\\slash -x"))
	want := "\\&.hidden\n\\&'quote\nback\\eslash \\-x\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
