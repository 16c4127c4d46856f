package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/testenv"
)

// TestCLIInitFrom: den init --from Vagrantfile writes a den.hcl that
// validates, says that the Vagrantfile's code runs and what was not carried
// over, and says so plainly when Ruby is missing.
func TestCLIInitFrom(t *testing.T) {
	if _, err := exec.LookPath("ruby"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ruby is not installed (apt-get install ruby); CI must run this test")
		}
		testenv.Skip(t, "ruby is not installed (apt-get install ruby)")
	}
	dir := projectDir(t, "")
	vf := "Vagrant.configure(\"2\") do |config|\n  config.vm.box = \"debian/bookworm64\"\n  config.vm.box_check_update = false\n  config.vm.provider \"virtualbox\" do |vb|\n    vb.memory = 1024\n  end\nend\n"
	os.WriteFile(filepath.Join(dir, "Vagrantfile"), []byte(vf), 0o644)

	if r := den(t, dir, "", "init", "--from", "Vagrantfile", "extra/box"); r.code != 2 {
		t.Errorf("init --from with a box: %d, want a usage error", r.code)
	}
	r := den(t, dir, "", "init", "--from", "Vagrantfile")
	if r.code != 0 {
		t.Fatalf("init --from: %d %s", r.code, r.err)
	}
	for _, want := range []string{"runs its Ruby code on this host", "Vagrantfile:3: vm.box_check_update:", "Vagrantfile:2: vm.box \"debian/bookworm64\":"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	if r := den(t, dir, "", "validate"); r.code != 0 || !strings.Contains(r.out, "box debian/bookworm, memory 1.0 GiB") {
		t.Errorf("validate of the converted den.hcl: %d %q %q", r.code, r.out, r.err)
	}
	if r := den(t, dir, "", "init", "--from", "Vagrantfile"); r.code != 1 || !strings.Contains(r.err, "already exists") {
		t.Errorf("second init --from: %d %q", r.code, r.err)
	}

	// Without Ruby on PATH, nothing runs and den says what to install.
	os.Remove(filepath.Join(dir, "den.hcl"))
	t.Setenv("PATH", t.TempDir())
	if r := den(t, dir, "", "init", "--from", "Vagrantfile"); r.code != 1 || !strings.Contains(r.err, "needs Ruby") || !strings.Contains(r.err, "apt-get install ruby") {
		t.Errorf("init --from without ruby: %d %q", r.code, r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "den.hcl")); err == nil {
		t.Error("init --from without ruby wrote a den.hcl")
	}
}
