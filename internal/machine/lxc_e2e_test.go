package machine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
	lxcprovider "github.com/den-dev/den/provider/lxc"
)

// TestE2ELibraryUse is the domain used as a library, as a server would
// use it: a program that is not den's CLI brings a project up on real LXC
// containers, streams its progress as events, runs a command over the
// pinned ssh connection and tears it down. It needs root, LXC, the bridge
// and DEN_TEST_BOX; without them it skips, except under CI=true.
func TestE2ELibraryUse(t *testing.T) {
	boxFile := testenv.Box(t)
	dir, err := os.MkdirTemp("/var/tmp", "den-library-")
	if err == nil {
		err = os.Chmod(dir, 0o711) // unprivileged machines' roots pass through
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsutil.RemoveTree(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	home := layout.Home(filepath.Join(dir, "home"))
	lxc, err := lxcprovider.New(home.Machines())
	if err != nil {
		t.Fatal(err)
	}
	var events []ui.Event
	env := NewEnv(Options{Home: home, Providers: []provider.Provider{lxc}, UI: ui.NewEvents(func(e ui.Event) { events = append(events, e) })})
	ctx := context.Background()
	f, err := os.Open(boxFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.Store.Add(ctx, "debian/bookworm", f, box.AddOptions{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	project := filepath.Join(dir, "lib-project")
	writeFile(t, filepath.Join(project, config.FileName), "box = \"debian/bookworm\"\nmemory = \"256M\"\n", 0o644)
	p, err := config.Load(filepath.Join(project, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Select(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Destroy(context.Background(), ms) })

	if err := env.Up(ctx, ms, UpOptions{}); err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range events {
		if e.Kind == ui.EventSay && e.Machine == "default" {
			steps = append(steps, e.Text)
		}
	}
	if got := strings.Join(steps, " | "); !strings.Contains(got, "Creating machine from box debian/bookworm") || !strings.HasSuffix(got, "Machine booted and ready!") {
		t.Errorf("progress events: %s", got)
	}
	client, err := env.Connect(ctx, ms[0])
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	status, err := sshx.Run(ctx, client, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; hostname", nil, &out, &out)
	client.Close()
	if err != nil || status != 0 || !strings.Contains(out.String(), "lib-project") {
		t.Errorf("ssh: status %d, %v, %q", status, err, out.String())
	}
	if err := env.Destroy(ctx, ms); err != nil {
		t.Fatal(err)
	}
	st, err := env.Status(ctx, ms)
	if err != nil || st[0].State != "not created" {
		t.Errorf("after destroy: %+v, %v", st, err)
	}
}
