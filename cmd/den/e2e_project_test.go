package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/host"
)

// twoMachines is a project of two machines with every kind of provisioner:
// web copies a folder with "file" and runs inline scripts, db runs a script
// file with args and env as the login user.
const twoMachines = `box    = "debian/bookworm"
memory = "256M"
cpus   = 1

# In an unprivileged machine only the login user writes in /den.
provision "shell" {
  name       = "hello"
  inline     = ["echo provisioned >> /den/provisioned-$(hostname).txt"]
  privileged = false
}

machine "web" {
  provision "file" {
    name        = "conf"
    source      = "conf"
    destination = "/etc/webconf"
  }
  provision "shell" {
    name       = "always"
    run        = "always"
    inline     = ["echo up >> /den/always-web.txt"]
    privileged = false
  }
  provision "shell" {
    name   = "fail"
    run    = "never"
    inline = ["echo failing on purpose >&2", "exit 7"]
  }
}

machine "db" {
  memory = "384M"
  cpus   = 2
  provision "shell" {
    name       = "setup"
    path       = "scripts/setup.sh"
    args       = ["one", "two words"]
    env        = { GREETING = "hi there" }
    privileged = false
  }
}
`

func writeProjectFile(t *testing.T, dir, name, data string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	for d := p; d != dir; d = filepath.Dir(d) {
		os.Chown(d, 1234, 1234)
	}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.Count(string(b), "\n")
}

func TestE2EProvisionTwoMachines(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-provision", twoMachines)
	writeProjectFile(t, dir, "scripts/setup.sh", "#!/bin/sh\nset -e\necho \"$GREETING|$1|$2|$(id -un)\" > /den/db-setup.txt\n", 0o755)
	writeProjectFile(t, dir, "conf/app.conf", "listen 80\n", 0o640)
	writeProjectFile(t, dir, "conf/bin/run", "#!/bin/sh\necho run\n", 0o755)

	// Both machines come up in parallel and each is provisioned once.
	up := mustDen(t, dir, "up")
	for _, want := range []string{"==> web: Machine booted and ready!", "==> db: Machine booted and ready!", "==> web: Running provisioner: conf (file)...", "==> db: Running provisioner: setup (shell)..."} {
		if !strings.Contains(up, want) {
			t.Errorf("up output lacks %q", want)
		}
	}
	for _, m := range []string{"web", "db"} {
		if n := lines(t, filepath.Join(dir, "provisioned-"+m+".txt")); n != 1 {
			t.Errorf("hello ran %d times on %s", n, m)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "db-setup.txt")); string(b) != "hi there|one|two words|den\n" {
		t.Errorf("db's setup script wrote %q", b)
	}
	if got := mustDen(t, dir, "ssh", "web", "-c", "stat -c '%a %n' /etc/webconf/app.conf /etc/webconf/bin/run; cat /etc/webconf/app.conf"); got != "640 /etc/webconf/app.conf\n755 /etc/webconf/bin/run\nlisten 80\n" {
		t.Errorf("web's copied folder: %q", got)
	}

	// web reaches db by name; both names resolve to db's address.
	st := status(t, dir)
	var dbAddr string
	containers := map[string]string{}
	for _, s := range st {
		containers[s.Name] = s.Container
		if s.Name == "db" {
			dbAddr = s.Address
		}
	}
	if got := mustDen(t, dir, "ssh", "web", "-c", "getent hosts db | cut -d' ' -f1; ping -c1 -W2 db >/dev/null && echo reachable"); got != dbAddr+"\nreachable\n" {
		t.Errorf("web resolving and pinging db (%s): %q", dbAddr, got)
	}

	// Limits per machine, read back from each container's cgroup and nproc.
	for _, tc := range []struct {
		name string
		mem  int
		cpus int
	}{{"web", 256 << 20, 1}, {"db", 384 << 20, 2}} {
		if got := cgroupValue(t, containers[tc.name], "memory", "memory.limit_in_bytes", "memory.max"); got != strconv.Itoa(tc.mem) {
			t.Errorf("%s memory limit %s, want %d", tc.name, got, tc.mem)
		}
		set := cgroupValue(t, containers[tc.name], "cpuset", "cpuset.cpus", "cpuset.cpus.effective")
		if cpus, _ := host.ParseCPUList(set); len(cpus) != tc.cpus {
			t.Errorf("%s cpuset %q has %d CPUs, want %d", tc.name, set, len(cpus), tc.cpus)
		}
		if got := strings.TrimSpace(mustDen(t, dir, "ssh", tc.name, "-c", "nproc")); got != strconv.Itoa(tc.cpus) {
			t.Errorf("nproc in %s = %s, want %d", tc.name, got, tc.cpus)
		}
	}

	// A second up runs only the "always" provisioner.
	mustDen(t, dir, "up")
	if n := lines(t, filepath.Join(dir, "provisioned-web.txt")); n != 1 {
		t.Errorf("a second up ran hello again (%d lines)", n)
	}
	if n := lines(t, filepath.Join(dir, "always-web.txt")); n != 2 {
		t.Errorf("the always provisioner ran %d times after two ups", n)
	}
	// den provision runs them again; --provision-with picks one.
	mustDen(t, dir, "provision", "web")
	if n := lines(t, filepath.Join(dir, "provisioned-web.txt")); n != 2 {
		t.Errorf("den provision web: hello ran %d times in all", n)
	}
	mustDen(t, dir, "provision", "web", "--provision-with", "always")
	if n, m := lines(t, filepath.Join(dir, "provisioned-web.txt")), lines(t, filepath.Join(dir, "always-web.txt")); n != 2 || m != 4 {
		t.Errorf("--provision-with always: hello %d, always %d lines", n, m)
	}
	if n := lines(t, filepath.Join(dir, "provisioned-db.txt")); n != 1 {
		t.Errorf("provisioning web touched db (%d lines)", n)
	}

	// A failing provisioner: up exits with its status, naming it, and the
	// machine stays up.
	r := den(t, dir, "", "up", "web", "--provision-with", "fail")
	if r.code != 7 || !strings.Contains(r.err, `provisioner "fail"`) || !strings.Contains(r.err, "failing on purpose") {
		t.Errorf("failing provisioner: exit %d, stderr %q", r.code, r.err)
	}
	if st := status(t, dir); st[0].State != "running" {
		t.Errorf("web after a failed provisioner: %+v", st)
	}
	// Unknown names are refused before anything runs.
	if r := den(t, dir, "", "provision", "web", "--provision-with", "nope"); r.code == 0 || !strings.Contains(r.err, `no provisioner called "nope"`) {
		t.Errorf("unknown provisioner: exit %d, %q", r.code, r.err)
	}
	if r := den(t, dir, "", "ssh"); r.code != 2 || !strings.Contains(r.err, "several machines") {
		t.Errorf("ssh without a machine name: exit %d, %q", r.code, r.err)
	}
}
