package machine

import (
	"context"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/provision"
)

// ProvisionMode says when `up` runs a machine's provisioners.
type ProvisionMode int

// The provisioning modes of `up`, as in Vagrant.
const (
	// ProvisionAuto runs every provisioner on the machine's first up and
	// the run = "always" ones on later ups.
	ProvisionAuto ProvisionMode = iota
	// ProvisionForce runs every provisioner (--provision).
	ProvisionForce
	// ProvisionNever runs none (--no-provision).
	ProvisionNever
)

// ProvisionOptions pick what Provision runs.
type ProvisionOptions struct {
	Only  []string // run just these, by name (--provision-with)
	Force bool     // run "once" provisioners again
	// AlwaysOnly runs only the run = "always" provisioners (a later up).
	AlwaysOnly bool
}

// provision runs the provisioners opts selects over client.
func (e *Env) provision(ctx context.Context, m *Machine, client *ssh.Client, opts ProvisionOptions) error {
	name := m.Name()
	provs := m.Config.Provisions
	if opts.AlwaysOnly {
		provs = nil
		for _, p := range m.Config.Provisions {
			if p.Run == config.RunAlways {
				provs = append(provs, p)
			}
		}
	}
	if len(provs) == 0 && len(opts.Only) == 0 {
		if !opts.AlwaysOnly {
			e.UI.Say(name, "No provisioners in %s.", m.Project.File)
		}
		return nil
	}
	out := e.UI.Output(name, false)
	defer out.Close()
	errw := e.UI.Output(name, true)
	defer errw.Close()
	err := provision.Run(ctx, sshx.NewComm(client), provs, provision.Options{
		Machine: name,
		Only:    opts.Only,
		Force:   opts.Force,
		Record:  m.State.Provisioned(),
		Out:     out,
		Err:     errw,
		Say:     func(format string, args ...any) { e.UI.Say(name, format, args...) },
	})
	if err != nil {
		return fmt.Errorf("%w; the machine is still running: look inside with 'den ssh %s', then run 'den provision %s'", err, name, name)
	}
	return nil
}
