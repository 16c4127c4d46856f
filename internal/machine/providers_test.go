package machine

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provider/fake"
)

// renamed is a fake provider under another name (a second engine).
type renamed struct {
	*fake.Provider
	name string
}

func (r renamed) Name() string { return r.name }

// TestProviderFromDenHCL: a new machine goes to the provider den.hcl
// names, and stays with the one its record names once it is created.
func TestProviderFromDenHCL(t *testing.T) {
	w := newWorld(t)
	second := renamed{fake.New(filepath.Join(w.env.Home.Path(), "second")), config.ProviderLXD}
	w.env = NewEnv(Options{Home: w.env.Home, Providers: []provider.Provider{w.prov, second}, UI: w.env.UI})
	w.env.Forwarder = []string{"/bin/false"}
	ctx := context.Background()
	p := w.project(`box = "test/box"
machine "a" {
}
machine "b" {
  provider = "lxd"
}
`)
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{Parallel: true}))
	st, err := w.env.Status(ctx, ms)
	must(t, err)
	if st[0].Provider != "fake" || st[1].Provider != "lxd" {
		t.Fatalf("providers: %+v", st)
	}
	if _, ok := second.Spec(ms[1].Container()); !ok {
		t.Errorf("machine b is not in the provider den.hcl names")
	}
	rec, err := ms[1].Record()
	must(t, err)
	if rec.Provider != "lxd" {
		t.Errorf("b's record names provider %q", rec.Provider)
	}
	// The spec carries the box and den.hcl's engine settings.
	spec, _ := second.Spec(ms[1].Container())
	if spec.Box != "test/box" || spec.BoxVersion != "1.0" {
		t.Errorf("spec box %q %q", spec.Box, spec.BoxVersion)
	}
	if x, ok := spec.Engine.(*config.LXD); !ok || x.Remote != config.LocalRemote {
		t.Errorf("spec engine %#v, want b's lxd settings", spec.Engine)
	}

	// den.hcl changing its mind does not move a created machine.
	p2 := w.project(`box = "test/box"
machine "a" {
}
machine "b" {
}
`)
	st, err = w.env.Status(ctx, w.machines(p2))
	must(t, err)
	if st[1].Provider != "lxd" || st[1].State != "running" {
		t.Errorf("after den.hcl dropped provider: %+v", st[1])
	}

	// ssh-config: the fake is a Dialer, so OpenSSH goes through den.
	entries, err := w.env.SSHConfig(ctx, ms, "")
	must(t, err)
	if len(entries) != 2 {
		t.Fatalf("ssh-config entries: %+v", entries)
	}
	pc := entries[1].ProxyCommand
	if !slices.Contains(pc, ProxyCommand) || !slices.Contains(pc, "b") || !slices.Contains(pc, w.dir) {
		t.Errorf("ProxyCommand %q does not run den's proxy for b in %s", pc, w.dir)
	}
}

func TestRsyncExcludes(t *testing.T) {
	w := newWorld(t)
	p := w.project(`box = "test/box"
synced_folder "." {
  guest   = "/den"
  type    = "rsync"
  exclude = ["node_modules/"]
}
synced_folder "/" {
  guest = "/host"
  type  = "rsync"
}
`)
	m := w.machines(p)[0]
	got := rsyncExcludes(m, m.Config.Synced[0])
	if strings.Join(got, " ") != "/.den/ /den.hcl node_modules/" {
		t.Errorf("excludes of the project folder: %q", got)
	}
	got = rsyncExcludes(m, m.Config.Synced[1])
	rel := strings.TrimPrefix(w.dir, "/")
	if strings.Join(got, " ") != "/"+rel+"/.den/ /"+rel+"/den.hcl" {
		t.Errorf("excludes of / (holding the project): %q", got)
	}
}
