package machine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

func (w *world) rec(m *Machine) *Record {
	w.t.Helper()
	r, err := m.Record()
	if err != nil || r == nil {
		w.t.Fatalf("record of %s: %v %v", m.Name(), r, err)
	}
	return r
}

func (w *world) indexBase(container string) uint32 {
	w.t.Helper()
	entries, err := ReadIndex(w.env.Home)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Container == container {
			return e.IDBase
		}
	}
	w.t.Fatalf("%s is not in the index", container)
	return 0
}

func (w *world) guestPasswd(m *Machine) string {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.prov.Rootfs(m.Container()), "etc/passwd"))
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}

// A machine is unprivileged unless den.hcl says otherwise: it gets an id
// range of its own, recorded in .den/ and in the index, kept across
// starts; its login user keeps the box's ids (the provider maps the
// project's owner to them), and status says so.
func TestUnprivilegedByDefault(t *testing.T) {
	w := newWorld(t)
	p := w.project(twoMachines)
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	seen := map[uint32]string{}
	for _, m := range ms {
		rec := w.rec(m)
		if rec.IDBase == 0 || rec.IDBase%provider.IDRangeSize != 0 {
			t.Fatalf("%s: id base %d", m.Name(), rec.IDBase)
		}
		if other, dup := seen[rec.IDBase]; dup {
			t.Errorf("%s and %s share the id range %d", m.Name(), other, rec.IDBase)
		}
		seen[rec.IDBase] = m.Name()
		if got := w.indexBase(rec.Container); got != rec.IDBase {
			t.Errorf("%s: index has id base %d, record %d", m.Name(), got, rec.IDBase)
		}
		spec, _ := w.prov.Spec(rec.Container)
		if spec.IDBase != rec.IDBase || spec.GuestUID != 1000 || spec.GuestGID != 1000 {
			t.Errorf("%s: started with id base %d, guest %d:%d; want %d, 1000:1000", m.Name(), spec.IDBase, spec.GuestUID, spec.GuestGID, rec.IDBase)
		}
		if rec.UID != 1000 || rec.GID != 1000 {
			t.Errorf("%s: recorded login user %d:%d", m.Name(), rec.UID, rec.GID)
		}
		if pw := w.guestPasswd(m); !strings.Contains(pw, "den:x:1000:1000:") {
			t.Errorf("%s: the login user's ids changed:\n%s", m.Name(), pw)
		}
	}
	all, err := w.env.Status(ctx, ms)
	must(t, err)
	for _, s := range all {
		if s.Privileged || !strings.Contains(s.IDs, "-") || s.Note != "" {
			t.Errorf("status of %s: %+v", s.Name, s)
		}
	}
	// halt and up keep the range.
	web := ms[0]
	before := w.rec(web).IDBase
	must(t, w.env.Halt(ctx, ms[:1], false, 0))
	must(t, w.env.Up(ctx, ms[:1], UpOptions{}))
	if after := w.rec(web).IDBase; after != before {
		t.Errorf("the id range changed across halt and up: %d -> %d", before, after)
	}

	// A machine of another den home never gets a range this home gave.
	other := NewEnv(Options{Home: layout.Home(t.TempDir()), Providers: []provider.Provider{w.prov}, UI: ui.Discard})
	other.Store = w.env.Store
	other.Forwarder, other.ReadyTimeout = w.env.Forwarder, w.env.ReadyTimeout
	dir2 := filepath.Join(t.TempDir(), "second")
	must(t, os.MkdirAll(dir2, 0o755))
	must(t, os.WriteFile(filepath.Join(dir2, "den.hcl"), []byte("box = \"test/box\"\n"), 0o644))
	p2, err := config.Load(filepath.Join(dir2, "den.hcl"))
	must(t, err)
	ms2 := w.machines(p2)
	must(t, other.Up(ctx, ms2, UpOptions{}))
	rec2, err := ms2[0].Record()
	must(t, err)
	if _, dup := seen[rec2.IDBase]; dup || rec2.IDBase == 0 {
		t.Errorf("a machine of another home got id range %d; this home's: %v", rec2.IDBase, seen)
	}
	must(t, other.Destroy(ctx, ms2))
	must(t, w.env.Destroy(ctx, ms))
}

// privileged = true is an opt-in: no range, the login user takes the
// project owner's ids as before, and up warns, naming where it is set.
func TestPrivilegedOptIn(t *testing.T) {
	w := newWorld(t)
	p := w.project("box = \"test/box\"\nprivileged = true\n")
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].Summary, "Privileged") || p.Warnings[0].Subject.Start.Line != 2 {
		t.Errorf("warnings of privileged = true: %v", p.Warnings)
	}
	ctx := context.Background()
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	rec := w.rec(ms[0])
	if rec.IDBase != 0 || w.indexBase(rec.Container) != 0 {
		t.Errorf("a privileged machine has id range %d (index %d)", rec.IDBase, w.indexBase(rec.Container))
	}
	if spec, _ := w.prov.Spec(rec.Container); spec.IDBase != 0 {
		t.Errorf("a privileged machine started with id base %d", spec.IDBase)
	}
	if !w.said("default", "den.hcl:2:1)") {
		t.Errorf("up did not warn about privileged = true with its place: %+v", w.events)
	}
	all, err := w.env.Status(ctx, ms)
	must(t, err)
	if !all[0].Privileged || all[0].IDs != "" || all[0].Note != "" {
		t.Errorf("status of a privileged machine: %+v", all[0])
	}
	must(t, w.env.Destroy(ctx, ms))
}

// A privileged machine whose den.hcl no longer asks for it (one made
// before den ran machines unprivileged) is converted at its next up, and
// stays unprivileged when privileged = true comes back.
func TestPrivilegedMachineConverted(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ms := w.machines(w.project("box = \"test/box\"\nprivileged = true\n"))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	must(t, w.env.Halt(ctx, ms, false, 0))
	// Before den recorded them: no login user ids either.
	rec := w.rec(ms[0])
	rec.UID, rec.GID = 0, 0
	must(t, writeJSON(ms[0].State.Record(), rec, 0o600))

	ms = w.machines(w.project("box = \"test/box\"\n"))
	all, err := w.env.Status(ctx, ms)
	must(t, err)
	if !all[0].Privileged || !strings.Contains(all[0].Note, "converts") {
		t.Errorf("status before the conversion: %+v", all[0])
	}
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if !w.said("default", "Converting the machine") {
		t.Errorf("up did not say it converts the machine")
	}
	rec = w.rec(ms[0])
	spec, _ := w.prov.Spec(rec.Container)
	if rec.IDBase == 0 || spec.IDBase != rec.IDBase || w.indexBase(rec.Container) != rec.IDBase {
		t.Errorf("converted machine: record %d, spec %d, index %d", rec.IDBase, spec.IDBase, w.indexBase(rec.Container))
	}
	if rec.UID != 1000 || spec.GuestUID != 1000 {
		t.Errorf("login user's ids after the conversion: record %d, spec %d", rec.UID, spec.GuestUID)
	}
	must(t, w.env.Halt(ctx, ms, false, 0))
	ms = w.machines(w.project("box = \"test/box\"\nprivileged = true\n"))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if !w.said("default", "stays unprivileged") {
		t.Errorf("up did not say the machine stays unprivileged")
	}
	if spec, _ := w.prov.Spec(rec.Container); spec.IDBase != rec.IDBase {
		t.Errorf("privileged = true made a converted machine privileged again")
	}
	must(t, w.env.Destroy(ctx, ms))
}

// A machine made privileged whose login user got a project owner's uid
// beyond 65535 cannot run unprivileged: it stays privileged, says why,
// gives its range back and is not tried again.
func TestPrivilegedMachineWithHighUIDStays(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ms := w.machines(w.project("box = \"test/box\"\nprivileged = true\n"))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	must(t, w.env.Halt(ctx, ms, false, 0))
	container := ms[0].Container()
	passwd := filepath.Join(w.prov.Rootfs(container), "etc/passwd")
	must(t, os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/bash\nden:x:1500001234:1500001234::/home/den:/bin/bash\n"), 0o644))
	rec := w.rec(ms[0])
	rec.UID, rec.GID = 0, 0
	must(t, writeJSON(ms[0].State.Record(), rec, 0o600))

	ms = w.machines(w.project("box = \"test/box\"\n"))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if !w.said("default", "stays privileged") {
		t.Errorf("up did not say why the machine stays privileged")
	}
	rec = w.rec(ms[0])
	spec, _ := w.prov.Spec(container)
	if rec.IDBase != 0 || spec.IDBase != 0 || w.indexBase(container) != 0 || rec.UID != 1500001234 {
		t.Errorf("machine with a high uid: record %d (uid %d), spec %d, index %d", rec.IDBase, rec.UID, spec.IDBase, w.indexBase(container))
	}
	all, err := w.env.Status(ctx, ms)
	must(t, err)
	if !all[0].Privileged || !strings.Contains(all[0].Note, "stays privileged") {
		t.Errorf("status: %+v", all[0])
	}
	must(t, w.env.Destroy(ctx, ms))
}

// A record's id range is data: one that is not a whole range is refused.
func TestTamperedIDBase(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ms := w.machines(w.project("box = \"test/box\"\n"))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	path := ms[0].State.Record()
	b, err := os.ReadFile(path)
	must(t, err)
	var raw map[string]any
	must(t, json.Unmarshal(b, &raw))
	raw["id_base"] = 1000
	b, _ = json.Marshal(raw)
	must(t, os.WriteFile(path, b, 0o600))
	if _, err := ms[0].Record(); err == nil || !strings.Contains(err.Error(), "id range 1000") {
		t.Errorf("a record with id_base 1000: %v", err)
	}
	must(t, os.Remove(path))
	must(t, w.prov.Destroy(ctx, ms[0].Container()))
}
