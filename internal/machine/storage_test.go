package machine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/config"
)

const twoStores = `
box = "test/box"
machine "web" {
  storage = "btrfs"
}
machine "db" {}
`

// den.hcl's storage reaches the provider in the spec of a new machine
// ("" for auto: the provider's default); status shows each machine's
// store. A created machine keeps its store when den.hcl asks for another:
// status notes it and up says so.
func TestStorageInSpec(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ms := w.machines(w.project(twoStores))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	for i, want := range []string{"btrfs", ""} {
		if spec, ok := w.prov.Spec(ms[i].Container()); !ok || spec.Storage != want {
			t.Errorf("%s: spec.Storage %q, want %q", ms[i].Name(), spec.Storage, want)
		}
	}
	st, err := w.env.Status(ctx, ms)
	must(t, err)
	if st[0].Store != "btrfs" || st[1].Store != "overlay" || st[0].Note != "" || st[1].Note != "" {
		t.Errorf("status: %+v", st)
	}

	// den.hcl changes web's store: it stays btrfs, and says so.
	ms = w.machines(w.project(strings.Replace(twoStores, `"btrfs"`, `"overlay"`, 1)))
	st, err = w.env.Status(ctx, ms)
	must(t, err)
	if st[0].Store != "btrfs" || st[0].Note != `stays btrfs: storage = "overlay" applies to a machine when it is made` {
		t.Errorf("status after den.hcl changed the store: %+v", st[0])
	}
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if !w.said("web", `den.hcl:4:13) applies to a machine when it is made: this one stays btrfs`) {
		t.Errorf("up did not say web keeps its store: %+v", w.events)
	}
	if w.said("db", "storage") {
		t.Error("up spoke of db's store, which den.hcl leaves to the provider")
	}
	if got, _ := w.prov.MachineStore(ctx, ms[0].Container()); got != "btrfs" {
		t.Errorf("web's store after up: %q", got)
	}
}

// A store the host lacks is a den.hcl error at its line, before up makes
// anything.
func TestStorageMissingOnHost(t *testing.T) {
	w := newWorld(t)
	w.prov.MissingStores = map[string]string{"btrfs": "DEN_HOME must be on a btrfs filesystem for it, and /x is not"}
	ctx := context.Background()
	ms := w.machines(w.project(twoStores))
	err := w.env.Up(ctx, ms, UpOptions{})
	var de *config.DiagError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "den.hcl:4:13: Store not available") || !strings.Contains(de.Diags[0].Detail, "DEN_HOME must be on a btrfs filesystem") {
		t.Fatalf("up with a store the host lacks: %v", err)
	}
	for _, m := range ms {
		if rec, _ := m.Record(); rec != nil {
			t.Errorf("%s has a record after a refused up", m.Name())
		}
		if _, ok := w.prov.Spec(m.Container()); ok {
			t.Errorf("%s was made", m.Name())
		}
	}
	if err := w.env.CheckHost(context.Background(), ms[0].Project, ms[1:]); err != nil {
		t.Errorf("db alone (no storage) fails the host check: %v", err)
	}
}
