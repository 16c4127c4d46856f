package vagrantfile

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/vagrantfile")

// needRuby skips without Ruby, except under CI=true, where every test must
// run (scripts/host-setup.sh installs ruby).
func needRuby(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ruby"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ruby is not installed (apt-get install ruby); CI must run these tests")
		}
		testenv.Skip(t, "ruby is not installed (apt-get install ruby)")
	}
}

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// project copies a fixture folder (without its golden files) to a fresh
// folder, so that what the Vagrantfile does there leaves testdata alone.
func project(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "project")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if strings.HasSuffix(p, ".golden") {
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, r), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		return os.WriteFile(filepath.Join(dst, r), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeNotes is the not-carried-over list as den init prints it.
func writeNotes(b *bytes.Buffer, notes []Note) {
	kind := NoteKind(-1)
	for _, n := range notes {
		if n.Kind != kind {
			kind = n.Kind
			fmt.Fprintln(b, noteHeadings[kind])
		}
		fmt.Fprintf(b, "  %s\n", n)
	}
}

// TestConvert converts each testdata/vagrantfile/CASE/Vagrantfile and
// compares the den.hcl (den.hcl.golden) and the notes with what the
// Vagrantfile printed (notes.golden), or the error (error.golden). Every
// den.hcl must load with den's own decoder.
func TestConvert(t *testing.T) {
	needRuby(t)
	base, err := filepath.Abs(filepath.Join("..", "..", "testdata", "vagrantfile"))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[user]\n"), 0o644)
	t.Setenv("HOME", home)
	os.Unsetenv("DEN_TEST_VM_MEMORY")
	cases, _ := os.ReadDir(base)
	if len(cases) == 0 {
		t.Fatal("no cases in testdata/vagrantfile")
	}
	for _, tc := range cases {
		if !tc.IsDir() {
			continue
		}
		t.Run(tc.Name(), func(t *testing.T) {
			src := filepath.Join(base, tc.Name())
			dir := project(t, src)
			var printed bytes.Buffer
			res, err := Convert(context.Background(), filepath.Join(dir, "Vagrantfile"), Options{Output: &printed, Timeout: 30 * time.Second})
			wantErr := false
			if _, statErr := os.Stat(filepath.Join(src, "error.golden")); statErr == nil {
				wantErr = true
			}
			if wantErr {
				if err == nil {
					t.Fatalf("Convert succeeded, want an error (error.golden)")
				}
				if !errors.Is(err, errdefs.Invalid) {
					t.Errorf("error kind %q, want %q", errdefs.KindOf(err), errdefs.Invalid)
				}
				golden(t, filepath.Join(src, "error.golden"), fmt.Appendf(nil, "error: %v\n--- printed by the Vagrantfile\n%s", err, printed.Bytes()))
				return
			}
			if err != nil {
				t.Fatalf("Convert: %v\n%s", err, printed.Bytes())
			}
			golden(t, filepath.Join(src, "den.hcl.golden"), res.HCL)
			var notes bytes.Buffer
			writeNotes(&notes, res.Notes)
			fmt.Fprintf(&notes, "--- printed by the Vagrantfile\n%s", printed.Bytes())
			golden(t, filepath.Join(src, "notes.golden"), notes.Bytes())

			// The den.hcl passes den's decoder, in the project it was made for.
			path := filepath.Join(dir, config.FileName)
			if err := os.WriteFile(path, res.HCL, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(path); err != nil {
				var b bytes.Buffer
				var de *config.DiagError
				if errors.As(err, &de) {
					config.WriteDiagnostics(&b, de.Files, de.Diags, false)
				}
				t.Errorf("den.hcl does not load: %v\n%s", err, b.String())
			}
			// Every note names a line of the Vagrantfile, but the one for a
			// Vagrantfile that names no box.
			for _, n := range res.Notes {
				if n.File != "Vagrantfile" || n.Line == 0 && n.Setting != "vm.box" {
					t.Errorf("note without a Vagrantfile line: %+v", n)
				}
			}
		})
	}
}

// TestShellAtLoad shows what a command run by the Vagrantfile does: it
// runs, as under vagrant, and den names it.
func TestShellAtLoad(t *testing.T) {
	needRuby(t)
	dir := project(t, filepath.Join("..", "..", "testdata", "vagrantfile", "shell_at_load"))
	res, err := Convert(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".cache", "stamp")); err != nil || string(b) != "loaded\n" {
		t.Errorf("the command the Vagrantfile runs did not run: %q, %v", b, err)
	}
	var ran []string
	for _, n := range res.Notes {
		if n.Kind == Computed && strings.HasPrefix(n.Reason, "ran ") {
			ran = append(ran, fmt.Sprintf("%d %s", n.Line, strings.SplitN(n.Reason, `"`, 3)[1]))
		}
	}
	if want := []string{"2 uname -s", "3 mkdir -p .cache && echo loaded > .cache/stamp"}; strings.Join(ran, "|") != strings.Join(want, "|") {
		t.Errorf("commands noted: %q, want %q", ran, want)
	}
}

// TestPendingStillRefused says when the decoder learns a setting that den
// init --from writes commented out: then it should be written live.
func TestPendingStillRefused(t *testing.T) {
	blocks := map[string]string{
		"network": "network \"private\" {\n  ip = \"192.168.56.10\"\n}\n",
		"ssh":     "ssh {\n  forward_agent = true\n  forward_env = [\"LANG\"]\n}\n",
		"trigger": "trigger \"before\" \"up\" {\n  run {\n    inline = [\"true\"]\n  }\n}\n",
	}
	for kind := range pending {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, config.FileName)
			os.WriteFile(path, []byte("box = \"debian/bookworm\"\n"+blocks[kind]), 0o644)
			if _, err := config.Load(path); err == nil {
				t.Errorf("den.hcl now reads %q blocks: delete %q from pending (render.go) so that den init --from writes them live, then go test -update", kind, kind)
			}
		})
	}
}

func TestVersion1Refused(t *testing.T) {
	needRuby(t)
	dir := project(t, filepath.Join("..", "..", "testdata", "vagrantfile", "v1_syntax"))
	_, err := Convert(context.Background(), dir, Options{})
	if err == nil || !errors.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "Vagrant 1 syntax (Vagrant::Config.run at Vagrantfile:2)") {
		t.Errorf("Convert = %v, want the Vagrant 1 refusal naming line 2", err)
	}
	os.WriteFile(filepath.Join(dir, "Vagrantfile"), []byte("\nVagrant.configure(\"1\") do |config|\nend\n"), 0o644)
	if _, err := Convert(context.Background(), dir, Options{}); err == nil || !strings.Contains(err.Error(), `Vagrant.configure("1") at Vagrantfile:2`) {
		t.Errorf("Convert of configure(\"1\") = %v, want the refusal", err)
	}
}

func TestNoRuby(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Vagrantfile"), []byte("Vagrant.configure(\"2\") {}\n"), 0o644)
	_, err := Convert(context.Background(), dir, Options{Ruby: "den-test-no-such-ruby"})
	if !errors.Is(err, errdefs.HostNotReady) || !strings.Contains(err.Error(), "apt-get install ruby") {
		t.Errorf("Convert = %v, want a host-not-ready error naming apt-get install ruby", err)
	}
}

func TestBrokenVagrantfiles(t *testing.T) {
	needRuby(t)
	for _, tc := range []struct{ name, src, want string }{
		{"syntax error", "Vagrant.configure(\"2\") do |config|\n  config.vm.box = \"x\"\n", "raised SyntaxError"},
		{"exit", "abort 'no config.yml'\n", "Vagrantfile:1: the Vagrantfile called exit (status 1) while den read it"},
		{"no configure", "x = 1\n", "has no Vagrant.configure(\"2\") block"},
		{"raise in a define block", "Vagrant.configure(\"2\") do |c|\n  c.vm.define \"a\" do |a|\n    a.vm.box = nope\n  end\nend\n", "Vagrantfile:3: the Vagrantfile raised NameError"},
		{"exec", "exec 'vagrant up'\n", "Vagrantfile:1: the Vagrantfile raised DenStandin::ExecError: exec(\"vagrant up\") would replace"},
		{"unknown version", "Vagrant.configure(\"3\") {}\n", "den reads configuration version \"2\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "Vagrantfile"), []byte(tc.src), 0o644)
			_, err := Convert(context.Background(), filepath.Join(dir, "Vagrantfile"), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.Invalid) {
				t.Errorf("Convert = %v, want an invalid error containing %q", err, tc.want)
			}
		})
	}
}

// TestTimeout: a Vagrantfile that hangs is stopped with what it started.
func TestTimeout(t *testing.T) {
	needRuby(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Vagrantfile"), []byte("system('sleep 60 & echo $! > child.pid')\nsleep 60\n"), 0o644)
	start := time.Now()
	_, err := Convert(context.Background(), dir, Options{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "did not finish within 1s") {
		t.Fatalf("Convert = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Convert took %s after a 1s timeout", d)
	}
	b, err := os.ReadFile(filepath.Join(dir, "child.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("child.pid: %q %v", b, err)
	}
	// The child, in Ruby's process group, is gone (a zombie at worst until
	// init reaps it).
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the Vagrantfile's child %d survived the timeout", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInit(t *testing.T) {
	needRuby(t)
	dir := project(t, filepath.Join("..", "..", "testdata", "vagrantfile", "heredoc_scripts"))
	out := filepath.Join(t.TempDir(), "elsewhere")
	os.Mkdir(out, 0o755)
	var stdout, stderr bytes.Buffer
	// From another folder: the den.hcl names the project's paths from its own.
	if err := Init(context.Background(), filepath.Join(dir, "Vagrantfile"), out, &stdout, &stderr); err != nil {
		t.Fatalf("Init: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "runs its Ruby code on this host") || !strings.Contains(stdout.String(), "A den.hcl has been written") {
		t.Errorf("Init printed\n%s\n%s", stdout.String(), stderr.String())
	}
	b, _ := os.ReadFile(filepath.Join(out, config.FileName))
	if !strings.Contains(string(b), fmt.Sprintf("synced_folder %q", dir)) {
		t.Errorf("den.hcl in another folder does not name the project by its path:\n%s", b)
	}
	err := Init(context.Background(), filepath.Join(dir, "Vagrantfile"), out, &stdout, &stderr)
	if !errors.Is(err, errdefs.Exists) {
		t.Errorf("second Init = %v, want an exists error", err)
	}
}

func TestShellWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // words joined by |, or "!" for a refusal
	}{
		{"--env development", "--env|development"},
		{`--name 'web app' "a \"b\""`, `--name|web app|a "b"`},
		{`a\ b  c`, "a b|c"},
		{"", ""},
		{"$HOME", "!"},
		{`"$HOME"`, "!"},
		{"a; rm -rf /", "!"},
		{"'unclosed", "!"},
		{"*.txt", "!"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			words, ok := shellWords(tc.in)
			got := strings.Join(words, "|")
			if !ok {
				got = "!"
			}
			if got != tc.want {
				t.Errorf("shellWords(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCountCPUs(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1": 2, "0-1,3": 3, " 2 - 5 ": 4, "x": 0, "3-1": 0, "": 0} {
		if got, _ := countCPUs(in); got != want {
			t.Errorf("countCPUs(%q) = %d, want %d", in, got, want)
		}
	}
}
