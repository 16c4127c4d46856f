package lxd

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/provider"
)

// TestKilledCreateIsReplaced: what a den killed in the middle of Create
// leaves (den's note of the machine, an instance without den's mark) is
// "not created", and the next Create replaces it.
func TestKilledCreateIsReplaced(t *testing.T) {
	home, b := testHome(t)
	p := New(home)
	ctx := context.Background()
	name := fmt.Sprintf("den-killed-%d", time.Now().UnixNano()%100000)
	spec := &provider.Spec{Name: name, Rootfs: b.Rootfs(), Box: b.Name, BoxVersion: b.Version, Hostname: "killed"}
	t.Cleanup(func() {
		if err := p.Destroy(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	m, err := p.forSpec(ctx, name, settings(nil))
	if err != nil {
		t.Fatal(err)
	}
	fp, err := p.ensureImage(ctx, m, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The half: placed, and the instance made, but never prepared.
	if err := p.place(name, m.pl); err != nil {
		t.Fatal(err)
	}
	op, err := m.is.CreateInstance(api.InstancesPost{Name: name, Type: api.InstanceTypeContainer, Source: api.InstanceSource{Type: "image", Fingerprint: fp}})
	if err := wait(ctx, op, err, "create"); err != nil {
		t.Fatal(err)
	}
	if st, err := p.State(ctx, name); err != nil || st != provider.NotCreated {
		t.Fatalf("State of a half-made machine = %v, %v; want not created", st, err)
	}
	var wrote bool
	spec.Prepare = func(ctx context.Context, g provider.GuestFS) error {
		wrote = true
		return g.WriteFile("etc/den-recovered", []byte("yes"), 0o644, 0, 0)
	}
	if err := p.Create(ctx, spec); err != nil {
		t.Fatalf("Create over a half-made machine: %v", err)
	}
	if st, err := p.State(ctx, name); err != nil || st != provider.Stopped || !wrote {
		t.Fatalf("after Create: %v, %v (prepared: %v)", st, err, wrote)
	}
	if err := p.Create(ctx, spec); err == nil {
		t.Fatal("a second Create of a made machine succeeded")
	}
}
