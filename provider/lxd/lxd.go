// Package lxd runs den's machines as LXD system containers through LXD's
// REST API: on this host's server (its unix socket) or on a remote server
// or cluster over HTTPS with a client certificate den makes. A box becomes
// an LXD image once per box version and server; every change is an API
// operation den waits on; files reach a machine before its first boot
// through LXD's SFTP endpoint; a remote machine's sshd is reached through
// an exec stream, so only the API port needs to be open, and den exec runs
// commands through the same exec API, without sshd.
//
// den connects to a server only when a machine uses it: a den whose
// machines are all LXC never talks to LXD.
package lxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/provider"
)

// Name is this provider's name in den.hcl and den's index.
const Name = config.ProviderLXD

// Provider reaches LXD servers for den's machines. It keeps, per machine,
// which remote and LXD project the machine lives on
// (DEN_HOME/lxd/machines/NAME.json, written before the instance is
// made and removed after it is deleted), so every call naming a machine
// goes to its server. It is safe for concurrent use.
type Provider struct {
	dir string // DEN_HOME/lxd

	mu      sync.Mutex
	servers map[string]*server     // by remote name, connected on first use
	locks   map[string]*sync.Mutex // named in-process locks (image imports)
}

var (
	_ provider.Provider      = (*Provider)(nil)
	_ provider.Addresser     = (*Provider)(nil)
	_ provider.Dialer        = (*Provider)(nil)
	_ provider.PortForwarder = (*Provider)(nil)
	_ provider.Locator       = (*Provider)(nil)
	_ provider.Snapshotter   = (*Provider)(nil)
	_ provider.Exporter      = (*Provider)(nil)
	_ provider.Execer        = (*Provider)(nil)
	_ provider.Limiter       = (*Provider)(nil)
)

// New returns the provider of the den home home. It connects to nothing.
func New(home string) *Provider {
	return &Provider{dir: filepath.Join(home, "lxd"), servers: map[string]*server{}, locks: map[string]*sync.Mutex{}}
}

// Name returns "lxd".
func (p *Provider) Name() string { return Name }

// Describe names the client and the remotes, without contacting them.
func (p *Provider) Describe() string {
	names := []string{config.LocalRemote}
	if rs, err := p.Remotes(); err == nil {
		names = names[:0]
		for _, r := range rs {
			names = append(names, r.Name)
		}
	}
	return "LXD over its REST API (remotes: " + strings.Join(names, ", ") + ")"
}

// CheckHost has nothing to check on this host: den reaches LXD through
// its API, and a server is checked when a machine first uses it.
func (p *Provider) CheckHost(ctx context.Context, networks []string) error { return nil }

// Hints names LXD's own client commands for the machine.
func (p *Provider) Hints(name string) provider.Hints {
	ref, proj := name, ""
	if pl, _ := p.placed(name); pl != nil {
		if pl.Remote != config.LocalRemote {
			ref = pl.Remote + ":" + name // as LXD's client names the remote
		}
		if pl.Project != "" {
			proj = " --project " + pl.Project
		}
	}
	return provider.Hints{
		Shell:  fmt.Sprintf("lxc exec%s %s -- bash", proj, ref),
		Remove: fmt.Sprintf("lxc delete%s --force %s", proj, ref),
		Log:    fmt.Sprintf("lxc info%s --show-log %s", proj, ref),
	}
}

// placement is where a machine lives: a remote and an LXD project.
type placement struct {
	Remote  string `json:"remote"`
	Project string `json:"project,omitempty"`
}

var machineNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

func (p *Provider) placementPath(name string) (string, error) {
	if !machineNameRE.MatchString(name) {
		return "", fmt.Errorf("%q is not an LXD instance name", name)
	}
	return filepath.Join(p.dir, "machines", name+".json"), nil
}

// placed returns where machine name lives, or nil when den has not placed
// it (it was never created, or it was destroyed).
func (p *Provider) placed(name string) (*placement, error) {
	path, err := p.placementPath(name)
	if err != nil {
		return nil, err
	}
	b, err := fsutil.ReadRegular(path, 1<<16)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pl placement
	if err := json.Unmarshal(b, &pl); err != nil || !remoteNameRE.MatchString(pl.Remote) {
		return nil, errdefs.Newf(errdefs.Tampered, "%s is damaged (%v): if machine %s is gone, delete that file", path, err, name)
	}
	return &pl, nil
}

// place records where machine name lives, before it is made there.
func (p *Provider) place(name string, pl placement) error {
	path, err := p.placementPath(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(pl)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// unplace forgets machine name, after it was deleted.
func (p *Provider) unplace(name string) error {
	path, err := p.placementPath(name)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// settings returns den.hcl's lxd settings from a spec's Engine, or the
// defaults (this host's server) when there are none.
func settings(engine any) *config.LXD {
	if x, ok := engine.(*config.LXD); ok && x != nil {
		return x
	}
	return &config.LXD{Remote: config.LocalRemote}
}

// machine is one machine's instance server: its remote's connection in
// its LXD project.
type machine struct {
	srv *server
	is  lxdclient.InstanceServer
	pl  placement
}

// forName connects to the server of the placed machine name; nil when
// den has not placed it.
func (p *Provider) forName(ctx context.Context, name string) (*machine, error) {
	pl, err := p.placed(name)
	if err != nil || pl == nil {
		return nil, err
	}
	srv, err := p.server(ctx, pl.Remote, nil)
	if err != nil {
		return nil, err
	}
	return &machine{srv: srv, is: srv.project(pl.Project), pl: *pl}, nil
}

// forSpec connects to the server a new machine goes to (x), or to the
// one it lives on when it is placed already.
func (p *Provider) forSpec(ctx context.Context, name string, x *config.LXD) (*machine, error) {
	if m, err := p.forName(ctx, name); m != nil || err != nil {
		return m, err
	}
	srv, err := p.server(ctx, x.Remote, x)
	if err != nil {
		return nil, err
	}
	pl := placement{Remote: x.Remote, Project: x.Project}
	return &machine{srv: srv, is: srv.project(x.Project), pl: pl}, nil
}

// lock returns the in-process mutex called key.
func (p *Provider) lock(key string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	mu, ok := p.locks[key]
	if !ok {
		mu = &sync.Mutex{}
		p.locks[key] = mu
	}
	return mu
}

// notFound reports whether err is LXD's 404.
func notFound(err error) bool { return api.StatusErrorCheck(err, http.StatusNotFound) }

// wait waits for an LXD operation (den never polls late: LXD forgets a
// finished operation within seconds) and names what it was doing.
func wait(ctx context.Context, op lxdclient.Operation, err error, what string) error {
	if err == nil {
		err = op.WaitContext(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
