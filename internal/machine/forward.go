package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/forward"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/provider"
)

// ForwardCommand is the hidden den command that runs a machine's port
// forwarder: den runs itself as `den __forward --pidfile F RULE...`.
const ForwardCommand = "__forward"

// forwardRules turns the machine's forward blocks into rules to its
// current address.
func forwardRules(m *Machine, rec *Record) []forward.Rule {
	var rules []forward.Rule
	for _, f := range m.Config.Forwards {
		rules = append(rules, forward.Rule{Protocol: f.Protocol, HostIP: f.HostIP, HostPort: f.Host, GuestIP: rec.IP(), GuestPort: f.Guest})
	}
	return rules
}

// startForwards (re)starts the machine's port forwarder for the forwards
// den.hcl names now, before the machine boots, so a host port that is
// taken is an error before anything starts. A forwarder already running
// for a running machine is kept when keep is set. When the engine
// forwards the ports itself (a PortForwarder: LXD's proxy devices), den
// runs no forwarder: the provider applies them at start. When den cannot
// reach the machine's address (a Dialer: a remote LXD server), its
// forwarder tunnels each connection through the machine's ssh
// connection.
func (e *Env) startForwards(ctx context.Context, m *Machine, rec *Record, prov provider.Provider, keep bool) error {
	pidfile := m.State.ForwardPid()
	if _, ok := forward.Running(pidfile); ok && keep {
		return nil
	}
	if err := forward.Stop(pidfile); err != nil {
		return err
	}
	rules := forwardRules(m, rec)
	if len(rules) == 0 {
		return nil
	}
	name := m.Name()
	engine := false
	if pf, ok := prov.(provider.PortForwarder); ok {
		var err error
		if engine, err = pf.ForwardsPorts(ctx, &provider.Spec{Name: rec.Container, Engine: m.Config.Engine()}); err != nil {
			return err
		}
	}
	if engine && keep {
		return nil // the engine's forwards live with the running machine
	}
	if err := forward.CheckFree(rules); err != nil {
		return errdefs.Machinef(errdefs.Exists, name, "cannot forward ports:\n%s", portClash(m, err))
	}
	e.UI.Say(name, "Forwarding ports...")
	for _, f := range m.Config.Forwards {
		e.UI.Detail(name, "%d (guest) => %s:%d (host, %s)", f.Guest, f.HostIP, f.Host, f.Protocol)
	}
	if engine {
		return nil
	}
	argv := slices.Clone(e.Forwarder)
	if len(argv) == 0 {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find den's own binary to run the port forwarder: %w", err)
		}
		argv = []string{self, ForwardCommand}
	}
	argv = append(argv, "--pidfile", pidfile)
	if _, ok := prov.(provider.Dialer); ok {
		for _, f := range m.Config.Forwards {
			if f.Protocol == "udp" {
				return errdefs.Machinef(errdefs.Unsupported, name, "machine %q: udp port %d cannot be forwarded: den reaches this machine through ssh, which carries tcp only (%s)", name, f.Host, config.Location(f.DefRange))
			}
		}
		argv = append(argv, "--project", m.Project.Dir, "--machine", name)
		// Through ssh, the guest's port is reached on its own loopback.
		for i := range rules {
			rules[i].GuestIP = "127.0.0.1"
		}
	}
	for _, r := range rules {
		argv = append(argv, r.Arg())
	}
	if _, err := forward.Spawn(argv, pidfile, m.State.ForwardLog(), 5*time.Second); err != nil {
		return fmt.Errorf("start the port forwarder: %w", err)
	}
	return nil
}

// stopForwards ends the machine's port forwarder, if it runs.
func (e *Env) stopForwards(m *Machine) error {
	if err := forward.Stop(m.State.ForwardPid()); err != nil {
		return fmt.Errorf("stop the port forwarder: %w", err)
	}
	return nil
}

// portClash says, for each host port CheckFree found taken, which forward
// block of den.hcl asks for it and who holds it: a den machine (its
// forwarder, found by the pidfile on its command line) or another program.
func portClash(m *Machine, err error) string {
	var lines []string
	for _, e := range unwrapAll(err) {
		var be *forward.BindError
		if !errors.As(e, &be) {
			lines = append(lines, "  "+e.Error())
			continue
		}
		where := m.Project.File
		for _, f := range m.Config.Forwards {
			if f.Host == be.Rule.HostPort && f.Protocol == be.Rule.Protocol && f.DefRange.Filename != "" {
				where = config.Location(f.DefRange)
			}
		}
		who := portHolder(be.Rule)
		if who == "" {
			who = "another program"
		}
		lines = append(lines, fmt.Sprintf("  %s: host port %s:%d (%s) is in use by %s; free it or change host there", where, be.Rule.HostIP, be.Rule.HostPort, be.Rule.Protocol, who))
	}
	return strings.Join(lines, "\n")
}

// denForwarder names the den machine whose forwarder cmd is ("den machine
// "web" of /src/app"), or "".
func denForwarder(cmd []string) string {
	i := slices.Index(cmd, "--pidfile")
	if i < 1 || i+1 >= len(cmd) || cmd[i-1] != ForwardCommand {
		return ""
	}
	st := filepath.Dir(cmd[i+1]) // PROJECT/.den/MACHINE
	if filepath.Base(filepath.Dir(st)) != layout.StateDirName {
		return ""
	}
	return fmt.Sprintf("den machine %q of %s", filepath.Base(st), filepath.Dir(filepath.Dir(st)))
}

// unwrapAll lists the errors a joined error holds, or err itself.
func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
