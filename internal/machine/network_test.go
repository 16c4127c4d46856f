package machine

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/provider"
)

// projectAt writes den.hcl in a folder of its own (another project of the
// same den home) and loads it.
func (w *world) projectAt(name, hcl string) *config.Project {
	w.t.Helper()
	dir := filepath.Join(filepath.Dir(w.dir), name)
	must(w.t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, config.FileName)
	must(w.t, os.WriteFile(path, []byte(hcl), 0o644))
	p, err := config.Load(path)
	must(w.t, err)
	return p
}

func (w *world) networks() []provider.ProjectNetwork {
	w.t.Helper()
	nets, err := w.prov.Networks(context.Background())
	must(w.t, err)
	return nets
}

func TestProjectNetworks(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	a := w.machines(w.project("box = \"test/box\"\nnetwork = \"project\"\nmachine \"web\" {}\nmachine \"db\" {}\n"))
	b := w.machines(w.projectAt("other", "box = \"test/box\"\nnetwork = \"project\"\n"))
	plain := w.machines(w.projectAt("plain", "box = \"test/box\"\n"))
	must(t, w.env.Up(ctx, a, UpOptions{Parallel: true}))
	must(t, w.env.Up(ctx, b, UpOptions{}))
	must(t, w.env.Up(ctx, plain, UpOptions{}))

	nets := w.networks()
	if len(nets) != 2 || nets[0].Subnet.Overlaps(nets[1].Subnet) || nets[0].Bridge == nets[1].Bridge {
		t.Fatalf("two projects, networks %+v", nets)
	}
	web, db, other := w.rec(a[0]), w.rec(a[1]), w.rec(b[0])
	if web.Bridge != db.Bridge || web.Network != config.NetworkProject || other.Bridge == web.Bridge {
		t.Errorf("bridges: web %s (%s), db %s, other %s", web.Bridge, web.Network, db.Bridge, other.Bridge)
	}
	for _, rec := range []*Record{web, db, other} {
		var pn provider.ProjectNetwork
		for _, n := range nets {
			if n.Bridge == rec.Bridge {
				pn = n
			}
		}
		addr := netip.MustParsePrefix(rec.Address)
		if !pn.Subnet.Contains(addr.Addr()) || rec.Gateway != pn.Subnet.Addr().Next().String() {
			t.Errorf("%s: address %s gateway %s on %+v", rec.Machine, rec.Address, rec.Gateway, pn)
		}
		spec, _ := w.prov.Spec(rec.Container)
		if spec.Network.Bridge != rec.Bridge {
			t.Errorf("%s attached to %q, recorded %q", rec.Machine, spec.Network.Bridge, rec.Bridge)
		}
	}
	if p := w.rec(plain[0]); p.Bridge != config.DefaultBridge || p.Network != "" {
		t.Errorf("a machine without network = \"project\" is on %s (%s)", p.Bridge, p.Network)
	}
	// The guest's DNS server is its gateway: the host on its network.
	resolv, err := os.ReadFile(filepath.Join(w.prov.Rootfs(web.Container), "etc/resolv.conf"))
	must(t, err)
	if !strings.Contains(string(resolv), "nameserver "+web.Gateway+"\n") {
		t.Errorf("web's resolv.conf:\n%s", resolv)
	}
	entries, _ := ReadIndex(w.env.Home)
	for _, e := range entries {
		if e.Container == web.Container && e.Bridge != web.Bridge {
			t.Errorf("index entry %+v does not name the bridge", e)
		}
	}

	// The network stays while one machine is on it, goes with the last.
	must(t, w.env.Destroy(ctx, a[:1]))
	if len(w.networks()) != 2 {
		t.Errorf("the project's network went with one of its two machines: %+v", w.networks())
	}
	must(t, w.env.Destroy(ctx, a[1:]))
	if nets := w.networks(); len(nets) != 1 || nets[0].Bridge != other.Bridge {
		t.Errorf("after the project's last destroy: %+v", nets)
	}
	// A halted project keeps its network and its addresses.
	must(t, w.env.Halt(ctx, b, false, 0))
	must(t, w.env.Up(ctx, b, UpOptions{}))
	if again := w.rec(b[0]); again.Address != other.Address || again.Bridge != other.Bridge {
		t.Errorf("after halt and up: %s on %s, was %s on %s", again.Address, again.Bridge, other.Address, other.Bridge)
	}
	must(t, w.env.Destroy(ctx, b))
	must(t, w.env.Destroy(ctx, plain))
	if nets := w.networks(); len(nets) != 0 {
		t.Errorf("networks left: %+v", nets)
	}
}

func TestPrivateAddress(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	// db has no address of its own and comes up first: it must leave
	// .254, web's, to web.
	p := w.project("box = \"test/box\"\nmachine \"db\" {\n  network = \"project\"\n}\nmachine \"web\" {\n  network \"private\" {\n    ip = \"10.99.7.254\"\n  }\n}\n")
	ms := w.machines(p)
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	db, web := w.rec(ms[0]), w.rec(ms[1])
	if web.Address != "10.99.7.254/24" || web.Gateway != "10.99.7.1" {
		t.Errorf("web: %s via %s, want 10.99.7.254/24 via 10.99.7.1", web.Address, web.Gateway)
	}
	if !netip.MustParsePrefix("10.99.7.0/24").Contains(netip.MustParsePrefix(db.Address).Addr()) || db.Bridge != web.Bridge {
		t.Errorf("db: %s on %s, web on %s", db.Address, db.Bridge, web.Bridge)
	}
	// Another project cannot have that subnet.
	o := w.machines(w.projectAt("other", "box = \"test/box\"\nnetwork \"private\" {\n  ip = \"10.99.7.20\"\n}\n"))
	err := w.env.Up(ctx, o, UpOptions{})
	if !errors.Is(err, errdefs.Exists) || !strings.Contains(err.Error(), `machine "db" of `+w.dir) {
		t.Errorf("a second project on 10.99.7.0/24: %v", err)
	}
	// Nor a subnet the host has.
	w.prov.HostNetworks = []netip.Prefix{netip.MustParsePrefix("10.99.8.0/24")}
	h := w.machines(w.projectAt("host", "box = \"test/box\"\nnetwork \"private\" {\n  ip = \"10.99.8.20\"\n}\n"))
	if err := w.env.Up(ctx, h, UpOptions{}); !errors.Is(err, errdefs.Exists) {
		t.Errorf("a subnet of the host's: %v", err)
	}
	must(t, w.env.Destroy(ctx, o))
	must(t, w.env.Destroy(ctx, h))
	if nets := w.networks(); len(nets) != 1 {
		t.Errorf("failed ups left networks: %+v", nets)
	}
	// Moving web's address moves it at its next start.
	must(t, w.env.Halt(ctx, ms, false, 0))
	p = w.project("box = \"test/box\"\nmachine \"db\" {\n  network = \"project\"\n}\nmachine \"web\" {\n  network \"private\" {\n    ip = \"10.99.7.30\"\n  }\n}\n")
	ms = w.machines(p)
	must(t, w.env.Up(ctx, ms[1:], UpOptions{}))
	if web := w.rec(ms[1]); web.Address != "10.99.7.30/24" || !w.said("web", "The machine moves to the project's network") {
		t.Errorf("web after its address changed: %s", web.Address)
	}
	must(t, w.env.Destroy(ctx, ms))
	if nets := w.networks(); len(nets) != 0 {
		t.Errorf("networks left: %+v", nets)
	}
}

// A den killed after it made the network, before the index named the
// machine: the next destroy (of a machine never made) removes it.
func TestKilledNetworkCleared(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ms := w.machines(w.project("box = \"test/box\"\nnetwork = \"project\"\n"))
	if _, err := w.prov.EnsureNetwork(ctx, projectNetworkID(w.dir), netip.Prefix{}, false, nil); err != nil {
		t.Fatal(err)
	}
	must(t, w.env.Destroy(ctx, ms))
	if nets := w.networks(); len(nets) != 0 {
		t.Errorf("networks left: %+v", nets)
	}
	// And an up adopts it.
	if _, err := w.prov.EnsureNetwork(ctx, projectNetworkID(w.dir), netip.Prefix{}, false, nil); err != nil {
		t.Fatal(err)
	}
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if nets := w.networks(); len(nets) != 1 || nets[0].Bridge != w.rec(ms[0]).Bridge {
		t.Errorf("networks after up: %+v", nets)
	}
	must(t, w.env.Destroy(ctx, ms))
}

// A machine moved between a host bridge and its project's network gets
// the new network's address and DNS server at its next start.
func TestMoveToProjectNetwork(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ms := w.machines(w.project("box = \"test/box\"\n"))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	was := w.rec(ms[0])
	ms = w.machines(w.project("box = \"test/box\"\nnetwork = \"project\"\n"))
	must(t, w.env.Up(ctx, ms, UpOptions{}))
	if !w.said("default", "den.hcl changed network (bridge lxcbr0 -> the project's network)") {
		t.Error("up of the running machine did not name the network change")
	}
	must(t, w.env.Reload(ctx, ms, UpOptions{}, time.Second))
	now := w.rec(ms[0])
	if now.Network != config.NetworkProject || now.Gateway == was.Gateway {
		t.Fatalf("after reload: %+v", now)
	}
	resolv, err := os.ReadFile(filepath.Join(w.prov.Rootfs(now.Container), "etc/resolv.conf"))
	must(t, err)
	if !strings.Contains(string(resolv), "nameserver "+now.Gateway+"\n") {
		t.Errorf("resolv.conf after the move:\n%s", resolv)
	}
	must(t, w.env.Destroy(ctx, ms))
	if nets := w.networks(); len(nets) != 0 {
		t.Errorf("networks left: %+v", nets)
	}
}
