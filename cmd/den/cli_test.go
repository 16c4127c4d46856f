package main

// CLI tests: the real den binary (built by TestMain) on project files,
// without containers. They check what a person sees: messages, locations,
// exit statuses.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// projectDir makes a folder holding den.hcl with the given text.
func projectDir(t *testing.T, hcl string) string {
	t.Helper()
	dir := t.TempDir()
	if hcl != "" {
		if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(hcl), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCLIInit(t *testing.T) {
	dir := projectDir(t, "")
	r := den(t, dir, "", "init")
	if r.code != 0 {
		t.Fatalf("init: %d %s", r.code, r.err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "den.hcl"))
	if err != nil || !strings.Contains(string(b), `box = "debian/bookworm"`) {
		t.Fatalf("den.hcl written by init: %v\n%s", err, b)
	}
	// The template is a valid project file as it is.
	if r := den(t, dir, "", "validate"); r.code != 0 || !strings.Contains(r.out, "den.hcl is valid: 1 machine(s)") {
		t.Errorf("validate of init's file: %d %q %q", r.code, r.out, r.err)
	}
	// A second init never overwrites.
	os.WriteFile(filepath.Join(dir, "den.hcl"), []byte("# mine\nbox = \"x/y\"\n"), 0o644)
	if r := den(t, dir, "", "init", "other/box"); r.code != 1 || !strings.Contains(r.err, "already exists") {
		t.Errorf("second init: %d %q", r.code, r.err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "den.hcl")); string(b) != "# mine\nbox = \"x/y\"\n" {
		t.Errorf("init changed an existing den.hcl: %q", b)
	}
	// init BOX names the box.
	other := projectDir(t, "")
	den(t, other, "", "init", "acme/base")
	if b, _ := os.ReadFile(filepath.Join(other, "den.hcl")); !strings.Contains(string(b), `box = "acme/base"`) {
		t.Errorf("init acme/base wrote:\n%s", b)
	}
}

func TestCLIValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name, hcl string
		args      []string
		code      int
		want      []string
	}{
		{"unknown key, with the line and a caret", "box    = \"debian/bookworm\"\nmemroy = \"1G\"\n", nil, 1,
			[]string{"den.hcl:2:1: error: Unsupported argument", "   2 | memroy = \"1G\"", "     | ^~~~~~", `Did you mean "memory"?`}},
		{"bad size", "box = \"debian/bookworm\"\nmemory = \"lots\"\n", nil, 1, []string{"den.hcl:2:10: error"}},
		{"syntax", "box = \"debian/bookworm\"\nmachine \"web\" {\n", nil, 1, []string{"den.hcl:2:"}},
		{"unknown machine", "box = \"debian/bookworm\"\nmachine \"web\" {}\n", []string{"db"}, 2, []string{`no machine "db"`, "machines: web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := projectDir(t, tc.hcl)
			r := den(t, dir, "", append([]string{"validate"}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
		})
	}
}

func TestCLIFindsProjectAndUsage(t *testing.T) {
	dir := projectDir(t, "box = \"debian/bookworm\"\n")
	sub := filepath.Join(dir, "src", "deep")
	os.MkdirAll(sub, 0o755)
	if r := den(t, sub, "", "validate"); r.code != 0 {
		t.Errorf("validate from a subfolder: %d %q", r.code, r.err)
	}
	empty := projectDir(t, "")
	if r := den(t, empty, "", "status"); r.code != 1 || !strings.Contains(r.err, "no den.hcl") || !strings.Contains(r.err, "den init") {
		t.Errorf("status without den.hcl: %d %q", r.code, r.err)
	}
	if r := den(t, dir, "", "ssh", "a", "b"); r.code != 2 || !strings.Contains(r.err, "usage: den ssh [MACHINE]") {
		t.Errorf("ssh with two machines: %d %q", r.code, r.err)
	}
	if r := den(t, dir, "", "halt", "--bogus"); r.code != 2 || r.err != "den: error: flag provided but not defined: -bogus (see 'den halt --help')\n" {
		t.Errorf("unknown flag: %d %q", r.code, r.err)
	}
	// Flags after arguments work, as in Vagrant.
	if r := den(t, dir, "", "status", "default", "--json"); r.code != 0 || !strings.Contains(r.out, `"state": "not created"`) {
		t.Errorf("flag after an argument: %d %q %q", r.code, r.out, r.err)
	}
}

func TestCLIInitFlags(t *testing.T) {
	dir := projectDir(t, "# mine\nbox = \"x/y\"\n")
	if r := den(t, dir, "", "init", "-m", "-f", "acme/base"); r.code != 0 {
		t.Fatalf("init -m -f: %d %q", r.code, r.err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "den.hcl")); string(b) != "box = \"acme/base\"\n" {
		t.Errorf("init --minimal --force wrote %q", b)
	}
}

func TestCLIHelpAndUnknownCommands(t *testing.T) {
	dir := projectDir(t, "box = \"debian/bookworm\"\n")
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"help"}, 0, "USAGE:", ""},
		{[]string{"--help"}, 0, "USAGE:", ""},
		{[]string{"-h"}, 0, "USAGE:", ""},
		{[]string{"help", "up"}, 0, "den up - create and start machines", ""},
		{[]string{"help", "snapshot", "save"}, 0, "den snapshot save - save a snapshot", ""},
		{[]string{"help", "sssh"}, 2, "", `unknown command "sssh"; did you mean "ssh"?`},
		{[]string{"sssh"}, 2, "", `unknown command "sssh"; did you mean "ssh"?`},
		{[]string{"share"}, 2, "", `unknown command "share" (see 'den help')`},
		{[]string{"box", "ad"}, 2, "", `unknown command "box ad"; did you mean "box add"?`},
		{[]string{"snapshot"}, 0, "COMMANDS:", ""},
		{[]string{"status", "-C", dir, "--json"}, 0, `"state": "not created"`, ""},
		{[]string{"box", "add", "debian/bookworm64"}, 2, "", "den has no default catalog"},
		{[]string{"completion", "bash"}, 0, "complete -o default -F _den den", ""},
		{[]string{"__complete", "snap"}, 0, "snapshot\n", ""},
		{[]string{"__complete", "halt", ""}, 0, "default\n", ""},
	} {
		r := den(t, t.TempDir(), "", append([]string{"-C", dir}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.out, tc.out) || !strings.Contains(r.err, tc.err) {
			t.Errorf("den %s: %d\nstdout %q\nstderr %q\nwant %d, stdout with %q, stderr with %q", strings.Join(tc.args, " "), r.code, r.out, r.err, tc.code, tc.out, tc.err)
		}
	}
}

func TestCLIPort(t *testing.T) {
	dir := projectDir(t, "box = \"debian/bookworm\"\nforward {\n  guest = 80\n  host  = 8080\n}\nforward {\n  guest    = 53\n  host     = 5353\n  protocol = \"udp\"\n  host_ip  = \"0.0.0.0\"\n}\n")
	r := den(t, dir, "", "port")
	if r.code != 0 || !strings.Contains(r.out, "   80 (guest) => 8080 (host, tcp)") || !strings.Contains(r.out, "   53 (guest) => 0.0.0.0:5353 (host, udp)") {
		t.Errorf("port: %d %q %q", r.code, r.out, r.err)
	}
	if r := den(t, dir, "", "port", "--guest", "80"); r.out != "8080\n" {
		t.Errorf("port --guest 80: %q %q", r.out, r.err)
	}
}

// privileged = true is valid but warned about, at its place; nesting
// is shown.
func TestCLIValidateWarnsPrivileged(t *testing.T) {
	dir := projectDir(t, "box = \"debian/bookworm\"\nmachine \"a\" {\n  privileged = true\n}\nmachine \"b\" {\n  nesting = true\n}\nmachine \"c\" {}\n")
	r := den(t, dir, "", "validate")
	if r.code != 0 {
		t.Fatalf("validate: %d %q", r.code, r.err)
	}
	for _, want := range []string{"den.hcl:3:3: warning: Privileged machine", "  privileged = true", "root in the guest"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("validate's warning lacks %q:\n%s", want, r.err)
		}
	}
	for _, want := range []string{"a: box", "    privileged (guest root is host root)", "    unprivileged, nesting (may run containers)", "    unprivileged\n"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("validate's output lacks %q:\n%s", want, r.out)
		}
	}
	if r := den(t, projectDir(t, "box = \"x/y\"\nprivileged = \"yes\"\n"), "", "validate"); r.code != 1 || !strings.Contains(r.err, "den.hcl:2:14") {
		t.Errorf("privileged = \"yes\": %d %q", r.code, r.err)
	}
}

// validate shows each machine's store: den.hcl's, or auto.
func TestCLIValidateStorage(t *testing.T) {
	dir := projectDir(t, "box = \"debian/bookworm\"\nmachine \"a\" {\n  storage = \"overlay\"\n}\nmachine \"b\" {}\n")
	r := den(t, dir, "", "validate")
	if r.code != 0 {
		t.Fatalf("validate: %d %q", r.code, r.err)
	}
	for _, want := range []string{"    store overlay\n", "    store auto (the one DEN_HOME gets when the machine is made)\n"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("validate's output lacks %q:\n%s", want, r.out)
		}
	}
}

// TestCLITriggersAndAutostart: validate describes triggers and autostart;
// den autostart, the systemd unit's commands and the init script do
// nothing (and succeed) in a home without autostart machines.
func TestCLITriggersAndAutostart(t *testing.T) {
	dir := projectDir(t, `box = "debian/bookworm"
autostart       = true
autostart_order = 2
trigger "after" "up" {
  name     = "notify"
  on_error = "continue"
  run {
    inline = ["echo up", "echo again"]
  }
  run_remote {
    inline = ["systemctl restart app"]
  }
}
`)
	r := den(t, dir, "", "validate")
	for _, want := range []string{
		"    trigger notify (after up, on error continue): on the host 2 inline command(s), then in the guest 1 inline command(s)\n",
		"    autostart (order 2, delay 0s)\n",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("validate lacks %q:\n%s", want, r.out)
		}
	}
	for _, cmd := range []string{"up", "reload", "halt", "destroy", "provision", "suspend", "resume", "autostart", "snapshot save", "snapshot restore", "snapshot delete", "snapshot push", "snapshot pop"} {
		if r := den(t, dir, "", append(strings.Fields(cmd), "--help")...); !strings.Contains(r.out, "--no-triggers") {
			t.Errorf("den %s has no --no-triggers:\n%s", cmd, r.out)
		}
	}

	home := []string{"DEN_HOME=" + t.TempDir()}
	unit, err := os.ReadFile(filepath.Join("..", "..", "dist", "den-autostart.service"))
	if err != nil {
		t.Fatal(err)
	}
	var execs int
	for _, line := range strings.Split(string(unit), "\n") {
		cmd, ok := strings.CutPrefix(line, "ExecStart=")
		if !ok {
			cmd, ok = strings.CutPrefix(line, "ExecStop=")
		}
		if !ok {
			continue
		}
		execs++
		f := strings.Fields(cmd)
		if f[0] != "/usr/local/bin/den" {
			t.Errorf("the unit runs %q, not den", f[0])
		}
		if r := denAs(t, t.TempDir(), home, f[1:]...); r.code != 0 || !strings.Contains(r.out, "No machine of DEN_HOME") {
			t.Errorf("%s: %d\n%s%s", cmd, r.code, r.out, r.err)
		}
	}
	if execs != 2 {
		t.Errorf("the unit has %d ExecStart/ExecStop lines, want 2", execs)
	}
	src, err := os.ReadFile(filepath.Join("..", "..", "dist", "den-autostart.init"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "den-autostart")
	os.WriteFile(script, []byte(strings.Replace(string(src), "\nDEN=/usr/local/bin/den\n", "\nDEN="+e2e.bin+"\n", 1)), 0o755)
	for _, action := range []string{"start", "stop", "status"} {
		cmd := exec.Command("/bin/sh", script, action)
		cmd.Env = append(os.Environ(), home...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("den-autostart %s: %v\n%s", action, err, out)
		}
	}
	if out, _ := exec.Command("/bin/sh", script, "bogus").CombinedOutput(); !strings.Contains(string(out), "Usage:") {
		t.Errorf("den-autostart bogus: %s", out)
	}
}
