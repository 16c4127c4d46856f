package machine

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// orphaned is the error for an operation that needs den.hcl's settings on
// a machine den.hcl no longer names.
func orphaned(m *Machine) error {
	return errdefs.Machinef(errdefs.NotFound, m.Name(), "machine %q is no longer in %s (its state is in %s): add its machine block back, or remove it with 'den destroy %s'", m.Name(), m.Project.File, m.State.Path(), m.Name())
}

// appliedOf is what a start with spec applies.
func appliedOf(spec *provider.Spec) Applied {
	a := Applied{Memory: spec.Memory, CPUs: spec.CPUs, Hostname: spec.Hostname, Bridge: spec.Network.Bridge, Unprivileged: spec.IDBase != 0, Nesting: spec.Nesting}
	for _, mt := range spec.Mounts {
		ro := "rw"
		if mt.ReadOnly {
			ro = "ro"
		}
		a.Mounts = append(a.Mounts, fmt.Sprintf("%s -> %s (%s)", mt.Source, mt.Target, ro))
	}
	for _, kv := range spec.RawConfig {
		a.Config = append(a.Config, kv[0]+" = "+kv[1])
	}
	return a
}

// applyLive compares what the running machine was started with to what
// den.hcl says now: memory and CPUs change at once (when the provider can),
// the rest waits for 'den reload', and up says which is which.
func (e *Env) applyLive(ctx context.Context, m *Machine, rec *Record, prov provider.Provider) error {
	if rec.Applied == nil {
		return nil
	}
	name := m.Name()
	b, err := e.Store.Get(rec.Box, rec.BoxVersion)
	if err != nil {
		return nil // the start that made it running had its box; nothing to compare with
	}
	spec, err := e.spec(m, b, rec)
	if err != nil {
		return err
	}
	spec.Network.Bridge = m.Config.Bridge
	if spec.Network.Bridge == "" {
		spec.Network.Bridge = rec.Bridge // the provider chose (LXD: the profiles' network)
	}
	now, was := appliedOf(spec), *rec.Applied
	if m.Config.Network == config.NetworkProject {
		now.Bridge, now.Network = was.Bridge, config.NetworkProject
		if m.Config.PrivateIP.IsValid() && rec.IP() != m.Config.PrivateIP.String() {
			now.Bridge = "address " + m.Config.PrivateIP.String()
		}
	}
	if now.Memory != was.Memory || now.CPUs != was.CPUs {
		lim, ok := prov.(provider.Limiter)
		if !ok {
			e.UI.Say(name, "den.hcl changed memory or cpus; 'den reload' applies them.")
		} else {
			if err := lim.SetLimits(ctx, rec.Container, now.Memory, now.CPUs); err != nil {
				return err
			}
			e.UI.Say(name, "Applied den.hcl's new limits to the running machine: memory %s, cpus %s.", limitText(now.Memory, ui.Bytes), limitText(int64(now.CPUs), func(n int64) string { return fmt.Sprint(n) }))
			was.Memory, was.CPUs = now.Memory, now.CPUs
			rec.Applied = &was
			if err := writeJSON(m.State.Record(), rec, 0o600); err != nil {
				return err
			}
		}
	}
	var changed []string
	if now.Hostname != was.Hostname {
		changed = append(changed, fmt.Sprintf("hostname (%s -> %s)", was.Hostname, now.Hostname))
	}
	if now.Network != was.Network || now.Bridge != was.Bridge {
		changed = append(changed, fmt.Sprintf("network (%s -> %s)", appliedNetwork(was), appliedNetwork(now)))
	}
	if !slices.Equal(now.Mounts, was.Mounts) {
		changed = append(changed, "synced folders")
	}
	if !slices.Equal(now.Config, was.Config) {
		changed = append(changed, "lxc config")
	}
	if now.Nesting != was.Nesting {
		changed = append(changed, fmt.Sprintf("nesting (%v -> %v)", was.Nesting, now.Nesting))
	}
	if _, ok := prov.(provider.Isolator); ok && !was.Unprivileged && !m.Config.Privileged && !tooHigh(rec) {
		changed = append(changed, "privileged -> unprivileged")
	}
	if len(changed) > 0 {
		e.UI.Say(name, "den.hcl changed %s since the machine started; 'den reload' applies them.", strings.Join(changed, ", "))
	}
	return nil
}

// appliedNetwork names the network of a start: the host bridge, or the
// project's own network.
func appliedNetwork(a Applied) string {
	switch {
	case a.Network != config.NetworkProject:
		return "bridge " + a.Bridge
	case strings.HasPrefix(a.Bridge, "address "):
		return "the project's network, " + a.Bridge
	}
	return "the project's network"
}

// networkName names the network rec is on, for messages.
func networkName(rec *Record) string {
	if rec.Network == config.NetworkProject {
		return fmt.Sprintf("the project's network (bridge %s)", rec.Bridge)
	}
	return "bridge " + rec.Bridge
}

func limitText(n int64, format func(int64) string) string {
	if n == 0 {
		return "no limit"
	}
	return format(n)
}

// updatePeers rewrites /etc/hosts in the project's other running machines
// when the machines of the project changed (m was made or destroyed), so
// they reach each other by name without a reload. A peer another den
// holds is left alone: its next start rewrites it.
func (e *Env) updatePeers(ctx context.Context, m *Machine) {
	for _, c := range m.Project.Machines {
		if c.Name == m.Name() {
			continue
		}
		peer := New(m.Project, c)
		if err := e.updateHosts(ctx, peer); err != nil {
			e.UI.Warn(peer.Name(), "could not update /etc/hosts with the project's machines: %v ('den reload %s' does)", err, peer.Name())
		}
	}
}

func (e *Env) updateHosts(ctx context.Context, m *Machine) error {
	if rec, err := m.Record(); err != nil || rec == nil {
		return err // never made: nothing to update, and no .den/ to make
	}
	// No wait: a peer whose lock is held is busy with a command of its
	// own — in a parallel up, its own up, which wrote its /etc/hosts with
	// every reserved address — and that command deals with it. Waiting
	// here held each machine of a three-machine up 0.2 s past its ready.
	lk, err := lock.Acquire(ctx, m.State.Lock(), "den up (updating /etc/hosts)", 0)
	if err != nil {
		return nil
	}
	defer lk.Unlock()
	rec, prov, st, err := e.current(ctx, m)
	if err != nil || st != provider.Running {
		return err
	}
	hosts := hostsFile(m.Config.Hostname, e.peers(m))
	if hosts == rec.Hosts {
		return nil
	}
	client, err := e.dial(ctx, m, rec, prov)
	if err != nil {
		return err
	}
	defer client.Close()
	var stderr strings.Builder
	status, err := sshx.Run(ctx, client, "sudo -n sh -c 'cat > /etc/hosts.den && mv /etc/hosts.den /etc/hosts'", strings.NewReader(hosts), io.Discard, &stderr)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d: %s", status, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return err
	}
	rec.Hosts = hosts
	e.UI.Say(m.Name(), "Updated /etc/hosts with the project's machines.")
	return writeJSON(m.State.Record(), rec, 0o600)
}
