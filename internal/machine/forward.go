package machine

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/forward"
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
// for a running machine is kept when keep is set.
func (e *Env) startForwards(m *Machine, rec *Record, keep bool) error {
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
	if err := forward.CheckFree(rules); err != nil {
		return errdefs.Machinef(errdefs.Exists, name, "cannot forward ports: %v; free the port or change host in %s", err, m.Project.File)
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
	for _, r := range rules {
		argv = append(argv, r.Arg())
	}
	e.UI.Say(name, "Forwarding ports...")
	for _, f := range m.Config.Forwards {
		e.UI.Detail(name, "%d (guest) => %s:%d (host, %s)", f.Guest, f.HostIP, f.Host, f.Protocol)
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
