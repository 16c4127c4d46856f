package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/client"
	"github.com/den-dev/den/internal/testenv"
)

// TestOtherUsers acts as two users who are not root: each may use only a
// project folder of their own, sees nothing of the other's, and may not
// run a den.hcl that reaches beyond what they could reach themselves.
func TestOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "the test chowns a project folder to another user: needs root")
	}
	ts := newTestServer(t, Config{})
	for d := ts.dir; d != "/"; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()+"/") {
			os.Chmod(d, 0o755)
		}
	}
	secret := t.TempDir()
	os.Chmod(secret, 0o700) // root's alone
	hcl := "box = \"test/box\"\nprivileged = true\nsynced_folder \"" + secret + "\" {\n  guest = \"/secret\"\n  read_only = true\n}\nforward {\n  guest = 80\n  host  = 8080\n  host_ip = \"0.0.0.0\"\n}\n"
	if err := os.WriteFile(filepath.Join(ts.dir, "den.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ts.dir, 54321, 54321); err != nil {
		t.Fatal(err)
	}
	alice := ts.as(&caller{uid: 54321, gid: 54321, known: true, groups: []int{54321}})
	bob := ts.as(&caller{uid: 54322, gid: 54322, known: true, groups: []int{54322}})
	ctx := context.Background()

	if _, err := bob.RegisterProject(ctx, ts.dir); err == nil || err.(*client.Error).Code != 403 {
		t.Errorf("bob registering alice's folder: %v", err)
	}
	p, err := alice.RegisterProject(ctx, ts.dir)
	if err != nil {
		t.Fatalf("alice registering her folder: %v", err)
	}
	_, err = alice.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	ce, _ := err.(*client.Error)
	if ce == nil || ce.Code != 403 || ce.Kind() != KindForbidden {
		t.Fatalf("alice's up with a root-only folder: %v", err)
	}
	var lines []string
	for _, d := range ce.Detail.Diagnostics {
		lines = append(lines, d.Summary)
	}
	want := "Privileged machine,Synced folder not allowed,Public forward"
	if strings.Join(lines, ",") != want {
		t.Errorf("refusals %v, want %s", lines, want)
	}
	if d := ce.Detail.Diagnostics[1]; d.File != "den.hcl" || d.Start.Line != 3 {
		t.Errorf("the synced folder refusal is at %s:%d, want den.hcl:3", d.File, d.Start.Line)
	}

	// An LXD machine: den serve would reach LXD with root's access, and
	// an lxd block's raw keys and devices (a disk device of /) are root's
	// to choose.
	os.WriteFile(filepath.Join(ts.dir, "den.hcl"), []byte("box = \"test/box\"\nprovider = \"lxd\"\nlxd {\n  devices = { host = { type = \"disk\", source = \"/\", path = \"/host\" } }\n}\n"), 0o644)
	_, err = alice.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	if ce, _ := err.(*client.Error); ce == nil || ce.Code != 403 || len(ce.Detail.Diagnostics) != 1 || ce.Detail.Diagnostics[0].Summary != "LXD machine not allowed" || ce.Detail.Diagnostics[0].Start.Line != 2 {
		t.Fatalf("alice's up of an LXD machine: %v", err)
	}

	// An unprivileged machine (the default) with a den.hcl within her
	// reach: she may.
	os.WriteFile(filepath.Join(ts.dir, "den.hcl"), []byte("box = \"test/box\"\n"), 0o644)
	op, err := alice.Action(ctx, p.ID, api.StatePut{Action: api.ActionUp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Wait(ctx, -1); err != nil {
		t.Fatalf("alice's up: %v", err)
	}
	// .den/ and the machine's key are hers now (den ssh as her).
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ts.dir, ".den", "default", "id_ed25519"), &st); err != nil || st.Uid != 54321 {
		t.Errorf("the machine's key is owned by %d (%v), want 54321", st.Uid, err)
	}

	// Bob sees nothing of it; root sees everything.
	if _, err := bob.Project(ctx, p.ID); err == nil || err.(*client.Error).Code != 404 {
		t.Errorf("bob reading alice's project: %v", err)
	}
	if ms, err := bob.GlobalStatus(ctx); err != nil || len(ms) != 0 {
		t.Errorf("bob's global status: %v %v", ms, err)
	}
	if _, err := bob.GetOperation(ctx, op.Op.ID); err == nil {
		t.Error("bob sees alice's operation")
	}
	if ms, err := ts.c.GlobalStatus(ctx); err != nil || len(ms) != 1 {
		t.Errorf("root's global status: %v %v", ms, err)
	}
	if ms, err := alice.GlobalStatus(ctx); err != nil || len(ms) != 1 {
		t.Errorf("alice's global status: %v %v", ms, err)
	}
	if _, err := bob.RemoveBox(ctx, "test/box", "", false); err == nil || err.(*client.Error).Code != 403 {
		t.Errorf("bob removing a shared box: %v", err)
	}
}
