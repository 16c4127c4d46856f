// Package machine is den's domain: it turns a project's den.hcl machines
// into provider calls — up (with box acquisition, address reservation and
// provisioning), halt, reload, destroy, suspend, snapshots, package,
// status, autostart — each taking its own locks, running den.hcl's
// triggers for the caller it is given (WithCaller), reporting through a
// ui.Reporter and failing with errdefs kinds. Front ends (the CLI, a
// server) only turn their input into these calls and the results into
// output.
//
// Layers (who may import whom; a lower one never imports a higher one):
//
//	cmd/den, den serve          front ends: flags/HTTP → calls → text/JSON/codes
//	internal/machine            domain: projects, machines, the index; locks, progress, typed errors
//	box, provision, provider/*  boxes, provisioners, engines (lxc; fake for tests)
//	internal/{config,sshx,fetch,forward,fsutil,lock,layout,ui,errdefs,version,host,hostcmd}  leaves
package machine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// Env is what every operation needs: den's home, its box store, the
// providers and where progress goes. One Env may serve many operations at
// once; WithReporter gives an operation its own Reporter.
type Env struct {
	Home  layout.Home
	Store *box.Store
	UI    ui.Reporter
	// ReadyTimeout bounds the wait for sshd after a start (default 90 s).
	ReadyTimeout time.Duration
	// Forwarder is the command that runs a machine's port forwarder, to
	// which den appends its flags and rules (default: this program's own
	// binary with ForwardCommand).
	Forwarder []string
	// HostFacts reads what CheckHost holds den.hcl against (default
	// config.HostFactsNow: this host).
	HostFacts func() (config.HostFacts, error)

	providers map[string]provider.Provider
	fallback  string // the provider of machines whose den.hcl names none
	shared    *shared
	caller    Caller // who the operations run for (see WithCaller)
}

// shared is what the copies WithReporter makes have in common.
type shared struct {
	mu    sync.Mutex
	boxes map[string]*sync.Mutex // one Ensure at a time per box name, in this process
}

// Options configure New.
type Options struct {
	Home      layout.Home
	Providers []provider.Provider // the first is the default
	UI        ui.Reporter         // default: ui.Discard
}

// NewEnv returns an Env over opts.
func NewEnv(opts Options) *Env {
	e := &Env{
		Home:      opts.Home,
		Store:     box.NewStore(opts.Home.Path()),
		UI:        opts.UI,
		providers: map[string]provider.Provider{},
		shared:    &shared{boxes: map[string]*sync.Mutex{}},
	}
	if e.UI == nil {
		e.UI = ui.Discard
	}
	for i, p := range opts.Providers {
		if i == 0 {
			e.fallback = p.Name()
		}
		e.providers[p.Name()] = p
	}
	return e
}

// WithReporter returns a copy of e that reports to r, for one operation.
func (e *Env) WithReporter(r ui.Reporter) *Env {
	c := *e
	c.UI = r
	return &c
}

// Provider returns the provider called name ("" = the default one).
func (e *Env) Provider(name string) (provider.Provider, error) {
	if name == "" {
		name = e.fallback
	}
	p, ok := e.providers[name]
	if !ok {
		return nil, errdefs.Newf(errdefs.Unsupported, "provider %q is not available in this den", name)
	}
	return p, nil
}

// Providers lists the providers, the default first.
func (e *Env) Providers() []provider.Provider {
	out := []provider.Provider{}
	if p, ok := e.providers[e.fallback]; ok {
		out = append(out, p)
	}
	for name, p := range e.providers {
		if name != e.fallback {
			out = append(out, p)
		}
	}
	return out
}

// boxMutex serialises Ensure of one box name within this process, so
// machines coming up in parallel build or fetch a missing box once.
func (e *Env) boxMutex(name string) *sync.Mutex {
	e.shared.mu.Lock()
	defer e.shared.mu.Unlock()
	mu, ok := e.shared.boxes[name]
	if !ok {
		mu = &sync.Mutex{}
		e.shared.boxes[name] = mu
	}
	return mu
}

// notCreated is the error for a machine that has to exist first.
func notCreated(m *Machine, what string) error {
	return errdefs.Machinef(errdefs.NotCreated, m.Name(), "machine %q is not created: nothing to %s (run 'den up %s' first)", m.Name(), what, m.Name())
}

// frozen is the error for a suspended machine that has to run.
func frozen(m *Machine) error {
	return errdefs.Machinef(errdefs.Frozen, m.Name(), "machine %q is suspended (frozen): run 'den resume %s' first", m.Name(), m.Name())
}

// named wraps err, from an operation on m, so that it names the machine
// (unless it already does) and keeps its kind.
func named(m *Machine, err error) error {
	if err == nil || errdefs.MachineOf(err) == m.Name() {
		return err
	}
	return &errdefs.Error{Kind: errdefs.KindOf(err), Machine: m.Name(), Err: fmt.Errorf("machine %q: %w", m.Name(), err)}
}

// each runs fn for every machine, all at once when parallel, and returns
// every failure, each naming its machine. One machine's failure does not
// stop the others; an interruption stops a serial run.
func each(ctx context.Context, ms []*Machine, parallel bool, fn func(*Machine) error) error {
	errs := make([]error, len(ms))
	run := func(i int) { errs[i] = named(ms[i], fn(ms[i])) }
	if !parallel || len(ms) < 2 {
		for i := range ms {
			run(i)
			if errs[i] != nil && ctx.Err() != nil {
				break
			}
		}
		return joinErrors(errs)
	}
	var wg sync.WaitGroup
	for i := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(i)
		}()
	}
	wg.Wait()
	return joinErrors(errs)
}

// joinErrors is errors.Join that returns a lone error as it is (so its
// type and kind stay at the top).
func joinErrors(errs []error) error {
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return errors.Join(out...)
}
