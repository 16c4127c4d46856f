package main

// End-to-end tests of interruptions (Ctrl-C and kill -9 at several points
// of an operation) and of machines that left den.hcl, on real containers.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// interrupted starts den in dir with args, waits until its output shows a
// line containing at, then sends it sig (after delay) and waits for it to
// end. It reports whether the line came before den ended by itself.
func interrupted(t *testing.T, dir string, sig syscall.Signal, at string, delay time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(e2e.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEN_HOME="+e2e.home)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan bool, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !found && strings.Contains(sc.Text(), at) {
				found = true
				seen <- true
			}
		}
		if !found {
			seen <- false
		}
	}()
	hit := <-seen
	if hit {
		time.Sleep(delay)
		cmd.Process.Signal(sig)
	}
	err = cmd.Wait()
	t.Logf("den %s, %v at %q (+%s): %v\n%s", strings.Join(args, " "), sig, at, delay, err, log.String())
	return hit
}

// provisioningState reads state and provisioning of the only machine.
func provisioningState(t *testing.T, dir string) (string, string) {
	t.Helper()
	var s []struct{ State, Provisioning string }
	if err := json.Unmarshal([]byte(mustDen(t, dir, "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s[0].State, s[0].Provisioning
}

// TestE2EInterruptedFirstUp interrupts a first up at each of its steps,
// with Ctrl-C (SIGINT) and with kill -9, and checks that the next up
// finishes it: a running machine whose every provisioner ran.
func TestE2EInterruptedFirstUp(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-interrupt", `box = "debian/bookworm"
memory = "256M"
provision "shell" {
  name   = "first"
  inline = ["echo one >> /tmp/provisioned"]
}
provision "shell" {
  name   = "slow"
  inline = ["sleep 2", "echo two >> /tmp/provisioned"]
}
`)
	for i, tc := range []struct {
		sig   syscall.Signal
		at    string
		delay time.Duration
	}{
		{syscall.SIGINT, "Creating machine", 0},
		{syscall.SIGKILL, "Creating machine", 20 * time.Millisecond},
		{syscall.SIGKILL, "Starting machine", 0},
		{syscall.SIGINT, "Waiting for machine to boot", 0},
		{syscall.SIGKILL, "Waiting for machine to boot", 100 * time.Millisecond},
		{syscall.SIGINT, "Running provisioner: slow", 200 * time.Millisecond},
		{syscall.SIGKILL, "Running provisioner: slow", 200 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%d-%v-%s", i, tc.sig, strings.ReplaceAll(tc.at, " ", "-")), func(t *testing.T) {
			if !interrupted(t, dir, tc.sig, tc.at, tc.delay, "up") {
				t.Fatalf("up never reached %q", tc.at)
			}
			st, prov := provisioningState(t, dir)
			if st != "not created" && prov != "unfinished" {
				t.Errorf("after the interruption: state %s, provisioning %q; want it marked unfinished", st, prov)
			}
			out := mustDen(t, dir, "up")
			if st != "not created" && !strings.Contains(out, "first provisioning did not finish") {
				t.Errorf("the next up did not say it finishes the provisioning:\n%s", out)
			}
			got := mustDen(t, dir, "ssh", "-c", "sort -u /tmp/provisioned")
			if got != "one\ntwo\n" {
				t.Errorf("after the next up the guest holds %q, want both provisioners' lines", got)
			}
			if st, prov := provisioningState(t, dir); st != "running" || prov != "" {
				t.Errorf("after the next up: state %s, provisioning %q", st, prov)
			}
			mustDen(t, dir, "destroy", "-f")
			if names := lxcNames(t); strings.Contains(names, "test-interrupt") {
				t.Errorf("containers left after destroy: %s", names)
			}
		})
	}
}

// TestE2EKilledSnapshotSave kills snapshot save at several points of its
// copy (the machine frozen meanwhile) and checks that resume, halt and
// destroy work whatever state the kill left.
func TestE2EKilledSnapshotSave(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-killsave", `box = "debian/bookworm"
memory = "256M"
`)
	mustDen(t, dir, "up")
	// A layer large enough for the copy to take a while.
	mustDen(t, dir, "ssh", "-c", "head -c 200M /dev/urandom > ~/big && sync")
	for i, delay := range []time.Duration{0, 20 * time.Millisecond, 60 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		if !interrupted(t, dir, syscall.SIGKILL, "Snapshotting the machine", delay, "snapshot", "save", fmt.Sprintf("s%d", i)) {
			t.Fatalf("snapshot save never started")
		}
		st := status(t, dir)[0].State
		switch {
		case st == "frozen" && i%2 == 0:
			r, _ := denGuarded(t, dir, "resume")
			if r.code != 0 {
				t.Fatalf("resume after a killed snapshot save (frozen): %d %s", r.code, r.err)
			}
		case st == "frozen":
			r, _ := denGuarded(t, dir, "halt", "-f")
			if r.code != 0 {
				t.Fatalf("halt -f after a killed snapshot save (frozen): %d %s", r.code, r.err)
			}
			mustDen(t, dir, "up")
		case st != "running":
			t.Fatalf("after a killed snapshot save the machine is %s", st)
		}
		if r, _ := denGuarded(t, dir, "ssh", "-c", "true"); r.code != 0 {
			t.Fatalf("ssh after a killed snapshot save: %d %s", r.code, r.err)
		}
	}
	// What the kills left is never a snapshot, and a save works again.
	mustDen(t, dir, "snapshot", "save", "whole")
	var snaps []struct{ Name string }
	json.Unmarshal([]byte(mustDen(t, dir, "snapshot", "list", "--json")), &snaps)
	for _, s := range snaps {
		if s.Name != "whole" && !strings.HasPrefix(s.Name, "s") {
			t.Errorf("unexpected snapshot %q", s.Name)
		}
	}
	// A last kill, then destroy straight away.
	interrupted(t, dir, syscall.SIGKILL, "Snapshotting the machine", 30*time.Millisecond, "snapshot", "save", "last")
	if r, _ := denGuarded(t, dir, "destroy", "-f"); r.code != 0 {
		t.Fatalf("destroy after a killed snapshot save: %d %s", r.code, r.err)
	}
}

// TestE2EOrphanedMachine removes a running machine's block from den.hcl:
// status shows it orphaned, global-status ids reach it, destroy removes
// it; then, with den.hcl broken, status, halt and destroy work from .den/.
func TestE2EOrphanedMachine(t *testing.T) {
	needE2E(t)
	dir := newProject(t, "test-orphan", `box = "debian/bookworm"
memory = "256M"
machine "a" {}
machine "b" {}
`)
	mustDen(t, dir, "up")
	hcl := filepath.Join(dir, "den.hcl")
	if err := os.WriteFile(hcl, []byte("box = \"debian/bookworm\"\nmemory = \"256M\"\nmachine \"a\" {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st []struct {
		Name, State, Container string
		Orphaned               bool
	}
	if err := json.Unmarshal([]byte(mustDen(t, dir, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[1].Name != "b" || !st[1].Orphaned || st[1].State != "running" {
		t.Fatalf("status after b left den.hcl: %+v", st)
	}
	if out := mustDen(t, dir, "status"); !strings.Contains(out, "orphaned") {
		t.Errorf("status text does not say b is orphaned:\n%s", out)
	}
	if r := den(t, dir, "", "up", "b"); r.code == 0 || !strings.Contains(r.err, "no longer in") {
		t.Errorf("up of an orphan: %d %q", r.code, r.err)
	}
	// b by its global-status id, from another folder.
	var id string
	for _, g := range globalStatus(t) {
		if g.Container == st[1].Container {
			id = g.ID
		}
	}
	if got := mustDen(t, t.TempDir(), "ssh", id, "-c", "hostname"); got != "b\n" {
		t.Errorf("ssh by global id %s: %q", id, got)
	}
	mustDen(t, t.TempDir(), "destroy", "-f", id)
	if strings.Contains(lxcNames(t), st[1].Container) {
		t.Errorf("b's container survived its destroy")
	}
	// den.hcl broken: status, halt and destroy still work, from .den/.
	if err := os.WriteFile(hcl, []byte("box = \"debian/bookworm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := den(t, dir, "", "status")
	if r.code != 0 || !strings.Contains(r.err, "working from the machines recorded in .den/") || !strings.Contains(r.out, "running") {
		t.Errorf("status with a broken den.hcl: %d %q %q", r.code, r.out, r.err)
	}
	mustDen(t, dir, "halt")
	mustDen(t, dir, "destroy", "-f")
	if strings.Contains(lxcNames(t), "test-orphan") {
		t.Errorf("containers left: %s", lxcNames(t))
	}
	os.WriteFile(hcl, []byte("box = \"debian/bookworm\"\n"), 0o644)
}
