package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/config"
)

// fakeComm records commands and uploads and answers with canned statuses.
type fakeComm struct {
	cmds    []string
	uploads []string          // "dst <- content" for files, "dst <- dir" for folders
	remote  map[string]string // uploaded paths not yet removed
	status  map[string]int    // status of commands containing the key
	block   string            // a command starting with it waits for ctx's end
	cancel  context.CancelFunc
	upErr   error
}

func (f *fakeComm) Run(ctx context.Context, cmd string, _ io.Reader, stdout, _ io.Writer) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	f.cmds = append(f.cmds, cmd)
	if f.block != "" && strings.HasPrefix(cmd, f.block) {
		f.cancel()
		<-ctx.Done()
		return -1, ctx.Err()
	}
	for path := range f.remote {
		if strings.HasPrefix(cmd, "rm -f "+quote(path)) || strings.Contains(cmd, "rm -rf "+quote(filepath.Dir(path))) {
			delete(f.remote, path)
		}
	}
	fmt.Fprintf(stdout, "ran %d\n", len(f.cmds))
	for key, status := range f.status {
		if strings.Contains(cmd, key) {
			return status, nil
		}
	}
	return 0, nil
}

func (f *fakeComm) Upload(_ context.Context, dst, src string) error {
	if f.upErr != nil {
		return f.upErr
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	content := "dir"
	if !fi.IsDir() {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		content = string(data)
	}
	f.uploads = append(f.uploads, dst+" <- "+content)
	if f.remote == nil {
		f.remote = map[string]string{}
	}
	f.remote[dst] = content
	return nil
}

func shell(name, run string, inline ...string) config.Provision {
	return config.Provision{Type: config.ProvisionShell, Name: name, Run: run, Inline: inline, Privileged: true}
}

// ran lists the provisioners whose scripts the fake ran, by the name in
// the script's path.
func ran(f *fakeComm) []string {
	var names []string
	for _, c := range f.cmds {
		if strings.HasPrefix(c, "rm ") || strings.HasPrefix(c, "chmod ") {
			continue
		}
		_, after, _ := strings.Cut(c, "/tmp/den-provision-")
		name := after[:strings.LastIndexByte(after[:strings.IndexAny(after, "'/")], '-')]
		names = append(names, name)
	}
	return names
}

func readRecordNames(t *testing.T, file string) []string {
	t.Helper()
	rec, err := readRecord(file)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range rec.Provisioners {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func TestRunSelection(t *testing.T) {
	provs := []config.Provision{
		shell("a", config.RunOnce, "echo a"),
		shell("b", config.RunAlways, "echo b"),
		shell("c", config.RunOnce, "echo c"),
		shell("d", config.RunNever, "echo d"),
	}
	record := filepath.Join(t.TempDir(), "web", "provisioned.json")
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"first up runs all", Options{}, []string{"a", "b", "c"}},
		{"once skipped when recorded", Options{}, []string{"b"}},
		{"force", Options{Force: true}, []string{"a", "b", "c"}},
		{"only once one", Options{Only: []string{"c"}}, []string{"c"}},
		{"only keeps file order", Options{Only: []string{"c", "a"}}, []string{"a", "c"}},
		{"never runs when named", Options{Only: []string{"d"}}, []string{"d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeComm{}
			tc.opts.Record = record
			var said []string
			tc.opts.Say = func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
			if err := Run(context.Background(), f, provs, tc.opts); err != nil {
				t.Fatal(err)
			}
			if got := ran(f); !slices.Equal(got, tc.want) {
				t.Errorf("ran %v, want %v (commands %q)", got, tc.want, f.cmds)
			}
			if want := "Running provisioner: " + tc.want[0] + " (shell)..."; !slices.Contains(said, want) {
				t.Errorf("said %q, want %q among them", said, want)
			}
			if len(f.remote) != 0 {
				t.Errorf("remote files left behind: %v", f.remote)
			}
		})
	}
	if got := readRecordNames(t, record); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("record holds %v, want a, b, c, d", got)
	}
}

func TestRunOnlyUnknown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		provs []config.Provision
		want  string
	}{
		{"lists names", []config.Provision{shell("deps", config.RunOnce, "true"), shell("shell-2", config.RunOnce, "true")},
			`machine "web" has no provisioner called "nope"; its provisioners are: deps, shell-2`},
		{"none", nil, `machine "web" has no provisioners, so none is called "deps"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeComm{}
			err := Run(context.Background(), f, tc.provs, Options{Machine: "web", Only: []string{"deps", "nope"}})
			if err == nil || err.Error() != tc.want {
				t.Errorf("Run = %v, want %q", err, tc.want)
			}
			if len(f.cmds)+len(f.uploads) != 0 {
				t.Errorf("something ran: %q %q", f.cmds, f.uploads)
			}
		})
	}
}

func TestRunFailure(t *testing.T) {
	record := filepath.Join(t.TempDir(), "provisioned.json")
	provs := []config.Provision{
		shell("ok", config.RunOnce, "true"),
		shell("bad", config.RunOnce, "false"),
		shell("never", config.RunAlways, "true"),
	}
	f := &fakeComm{status: map[string]int{"den-provision-bad-": 3}}
	err := Run(context.Background(), f, provs, Options{Record: record})
	var pe *ProvisionError
	if !errors.As(err, &pe) || pe.Name != "bad" || pe.Status != 3 || pe.Type != "shell" {
		t.Fatalf("Run = %#v, want a *ProvisionError for \"bad\" with status 3", err)
	}
	if want := `provisioner "bad" (shell) failed with exit status 3`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if up := f.uploads[0]; !strings.HasPrefix(up, "/tmp/den-provision-ok-") || !strings.HasSuffix(up, ".sh <- #!/bin/sh\nset -e\ntrue\n") {
		t.Errorf("first upload %q, want the inline script at /tmp/den-provision-ok-*.sh", up)
	}
	if got := ran(f); !slices.Equal(got, []string{"ok", "bad"}) {
		t.Errorf("ran %v, want ok, bad", got)
	}
	if last := f.cmds[len(f.cmds)-1]; !strings.HasPrefix(last, "rm -f '/tmp/den-provision-bad-") {
		t.Errorf("last command %q, want the failed script's removal", last)
	}
	if len(f.remote) != 0 {
		t.Errorf("remote files left behind: %v", f.remote)
	}
	if got := readRecordNames(t, record); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("record holds %v, want just ok", got)
	}

	t.Run("upload error", func(t *testing.T) {
		f := &fakeComm{upErr: errors.New("connection lost")}
		err := Run(context.Background(), f, provs[:1], Options{})
		if err == nil || !strings.Contains(err.Error(), `provisioner "ok" (shell): uploading the script: connection lost`) {
			t.Errorf("Run = %v, want the upload error", err)
		}
		if len(f.cmds) != 0 {
			t.Errorf("commands ran after a failed upload: %q", f.cmds)
		}
	})

	t.Run("corrupt record", func(t *testing.T) {
		os.WriteFile(record, []byte("{"), 0o644)
		err := Run(context.Background(), &fakeComm{}, provs, Options{Record: record})
		if err == nil || !strings.Contains(err.Error(), "delete") {
			t.Errorf("Run = %v, want an error saying to delete the record", err)
		}
	})
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeComm{block: "sudo", cancel: cancel}
	record := filepath.Join(t.TempDir(), "provisioned.json")
	provs := []config.Provision{shell("slow", config.RunOnce, "sleep 100"), shell("next", config.RunOnce, "true")}
	err := Run(ctx, f, provs, Options{Record: record})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if got := ran(f); !slices.Equal(got, []string{"slow"}) {
		t.Errorf("ran %v, want just slow", got)
	}
	if len(f.remote) != 0 {
		t.Errorf("the script was not removed after the cancel: %v", f.remote)
	}
	if _, err := os.Stat(record); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("record written after a cancelled run: %v", err)
	}
}

func TestShellCommand(t *testing.T) {
	env := []config.KV{{Key: "GREETING", Value: "it's a \"test\""}, {Key: "HOME_", Value: "$HOME and `id`"}}
	for _, tc := range []struct {
		name string
		p    config.Provision
		want string
	}{
		{"privileged", config.Provision{Privileged: true}, `sudo -n -E '/bin/sh' '/tmp/x.sh'`},
		{"unprivileged", config.Provision{}, `'/bin/sh' '/tmp/x.sh'`},
		{"env and args", config.Provision{Privileged: true, Env: env, Args: []string{"--fast", "x y", "it's", "$1"}},
			`sudo -n -E env GREETING='it'\''s a "test"' HOME_='$HOME and ` + "`id`" + `' '/bin/sh' '/tmp/x.sh' '--fast' 'x y' 'it'\''s' '$1'`},
		{"env unprivileged", config.Provision{Env: env[:1]}, `env GREETING='it'\''s a "test"' '/bin/sh' '/tmp/x.sh'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shellCommand(tc.p, []string{"/bin/sh"}, "/tmp/x.sh"); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestInterpreter(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   []string
	}{
		{"#!/bin/sh\nset -e\n", []string{"/bin/sh"}},
		{"#!/bin/bash -eu\r\necho\n", []string{"/bin/bash", "-eu"}},
		{"#! /usr/bin/env  python3 -u \n", []string{"/usr/bin/env", "python3 -u"}},
		{"echo no shebang\n", []string{"/bin/sh"}},
		{"#!\n", []string{"/bin/sh"}},
		{"", []string{"/bin/sh"}},
	} {
		t.Run(tc.script, func(t *testing.T) {
			if got := Interpreter([]byte(tc.script)); !slices.Equal(got, tc.want) {
				t.Errorf("Interpreter(%q) = %q, want %q", tc.script, got, tc.want)
			}
		})
	}
}

func TestScript(t *testing.T) {
	got, err := script(shell("x", config.RunOnce, "apt-get update -q", "echo 'a b' > /tmp/f"))
	if want := "#!/bin/sh\nset -e\napt-get update -q\necho 'a b' > /tmp/f\n"; err != nil || string(got) != want {
		t.Errorf("inline script = %q, %v; want %q", got, err, want)
	}
	path := filepath.Join(t.TempDir(), "setup.sh")
	os.WriteFile(path, []byte("#!/bin/bash\necho hi\n"), 0o755)
	got, err = script(config.Provision{Type: config.ProvisionShell, Path: path})
	if err != nil || string(got) != "#!/bin/bash\necho hi\n" {
		t.Errorf("path script = %q, %v", got, err)
	}
}

func TestFileProvisioner(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app.ini")
	os.WriteFile(src, []byte("[app]\n"), 0o640)
	f := &fakeComm{}
	p := config.Provision{Type: config.ProvisionFile, Name: "conf", Run: config.RunOnce, Source: src, Destination: "/etc/app/app.ini"}
	if err := Run(context.Background(), f, []config.Provision{p}, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(f.uploads) != 1 || !strings.HasPrefix(f.uploads[0], "/tmp/den-provision-conf-") || !strings.HasSuffix(f.uploads[0], "/app.ini <- [app]\n") {
		t.Fatalf("uploads %q, want app.ini staged under /tmp/den-provision-conf-*", f.uploads)
	}
	staged := strings.TrimSuffix(f.uploads[0], " <- [app]\n")
	if want := fileCommand(staged, "/etc/app/app.ini"); len(f.cmds) != 2 || f.cmds[0] != want {
		t.Errorf("commands %q, want %q then the cleanup", f.cmds, want)
	}
	if len(f.remote) != 0 {
		t.Errorf("staged copy left behind: %v", f.remote)
	}

	f = &fakeComm{status: map[string]int{"cp -a": 1}}
	err := Run(context.Background(), f, []config.Provision{p}, Options{})
	if want := `provisioner "conf" (file) failed with exit status 1`; err == nil || err.Error() != want {
		t.Errorf("Run = %v, want %q", err, want)
	}
	if len(f.remote) != 0 {
		t.Errorf("staged copy left behind after a failure: %v", f.remote)
	}
}

// localComm runs commands with the host's sh: the guest is this machine.
type localComm struct{}

func (localComm) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func (l localComm) Upload(ctx context.Context, dst, src string) error {
	status, err := l.Run(ctx, fmt.Sprintf("mkdir -p %s && cp -a -T %s %s", quote(filepath.Dir(dst)), quote(src), quote(dst)), nil, io.Discard, os.Stderr)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	return err
}

// TestLocalShell runs generated commands through a real sh, so the quoting
// of args and env is checked by the shell itself.
func TestLocalShell(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "show.sh")
	os.WriteFile(path, []byte("#!/bin/sh\nfor a; do printf '[%s]\\n' \"$a\"; done\nprintf 'G=[%s] D=[%s]\\n' \"$GREETING\" \"$DOLLAR\"\n"), 0o644)
	p := config.Provision{
		Type: config.ProvisionShell, Name: "den-test-quoting", Run: config.RunAlways, Path: path,
		Args: []string{"x y", `it's "q"`, "$HOME", "`id`", ""},
		Env:  []config.KV{{Key: "GREETING", Value: "hi 'you'"}, {Key: "DOLLAR", Value: "$PATH;exit 1"}},
	}
	var out bytes.Buffer
	if err := Run(context.Background(), localComm{}, []config.Provision{p}, Options{Out: &out, Err: &out}); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	want := "[x y]\n[it's \"q\"]\n[$HOME]\n[`id`]\n[]\nG=[hi 'you'] D=[$PATH;exit 1]\n"
	if out.String() != want {
		t.Errorf("output\n%s\nwant\n%s", out.String(), want)
	}
	if left, _ := filepath.Glob("/tmp/den-provision-den-test-quoting-*"); len(left) != 0 {
		t.Errorf("scripts left behind: %v", left)
	}

	t.Run("inline set -e", func(t *testing.T) {
		p := shell("den-test-inline", config.RunOnce, "echo one", "false", "echo never")
		p.Privileged = false
		var out bytes.Buffer
		err := Run(context.Background(), localComm{}, []config.Provision{p}, Options{Out: &out})
		var pe *ProvisionError
		if !errors.As(err, &pe) || pe.Status != 1 || out.String() != "one\n" {
			t.Errorf("Run = %v, output %q; want status 1 after \"one\"", err, out.String())
		}
		if left, _ := filepath.Glob("/tmp/den-provision-den-test-inline-*"); len(left) != 0 {
			t.Errorf("scripts left behind: %v", left)
		}
	})
}

// TestLocalFile copies a folder with fileCommand on this machine.
func TestLocalFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "conf")
	os.MkdirAll(filepath.Join(src, "sub"), 0o750)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("x"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "secret"), []byte("s"), 0o600)
	dst := filepath.Join(t.TempDir(), "a b", "it's")
	p := config.Provision{Type: config.ProvisionFile, Name: "den-test-file", Run: config.RunOnce, Source: src, Destination: dst}
	record := filepath.Join(t.TempDir(), "provisioned.json")
	if err := Run(context.Background(), localComm{}, []config.Provision{p}, Options{Record: record, Err: os.Stderr}); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{".": fs.ModeDir | 0o750, "run.sh": 0o755, "sub/secret": 0o600} {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want mode %v", name, fi.Mode(), err, mode)
		}
	}
	if left, _ := filepath.Glob("/tmp/den-provision-den-test-file-*"); len(left) != 0 {
		t.Errorf("staging folder left behind: %v", left)
	}
	data, err := os.ReadFile(record)
	var rec struct {
		Provisioners map[string]struct{ Type string }
	}
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Provisioners["den-test-file"].Type != "file" {
		t.Errorf("record %s (%v), want den-test-file as a file provisioner", data, err)
	}
}
