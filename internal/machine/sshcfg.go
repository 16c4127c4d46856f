package machine

import (
	"os"

	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/sshx"
)

// SSHConfig returns the OpenSSH config entry of created machine m (see
// sshEntry) as its .den/ records it, without a provider: for den's
// front end without root (den serve's client), which reaches machines at
// their address. Env.SSHConfig is the whole story.
func SSHConfig(m *Machine, host string) (sshx.ConfigEntry, error) {
	rec, err := m.Record()
	if err != nil {
		return sshx.ConfigEntry{}, err
	}
	if rec == nil || rec.Address == "" {
		return sshx.ConfigEntry{}, errdefs.Machinef(errdefs.NotCreated, m.Name(), "machine %q is not created: run 'den up %s'", m.Name(), m.Name())
	}
	return sshEntry(m, rec, host)
}

// sshEntry returns the OpenSSH config entry of machine m, created as rec
// says, under host (its alias when ""), with den.hcl's ssh settings, and
// (re)writes the known_hosts file it names so the entry's HostKeyAlias is
// in it.
func sshEntry(m *Machine, rec *Record, host string) (sshx.ConfigEntry, error) {
	alias := SSHAlias(m)
	if host == "" {
		host = alias
	}
	pub, err := fsutil.ReadRegular(m.State.HostKey(), maxRecord)
	if err != nil {
		return sshx.ConfigEntry{}, err
	}
	if err := writeKnownHosts(m, rec, pub); err != nil {
		return sshx.ConfigEntry{}, err
	}
	return sshx.ConfigEntry{
		Host:           host,
		HostName:       rec.IP(),
		Port:           22,
		User:           rec.User,
		IdentityFile:   m.State.Key(),
		KnownHostsFile: m.State.KnownHosts(),
		HostKeyAlias:   alias,
		ForwardAgent:   m.Config.SSH.ForwardAgent,
		SendEnv:        m.Config.SSH.ForwardEnv,
	}, nil
}

// SSHOptions are the session options den.hcl's ssh block asks for: the
// forward_env variables this process has, and agent forwarding when
// forward_agent is set or agent is.
func SSHOptions(m *Machine, agent bool) []sshx.SessionOption {
	var opts []sshx.SessionOption
	env := map[string]string{}
	for _, name := range m.Config.SSH.ForwardEnv {
		if v, ok := os.LookupEnv(name); ok {
			env[name] = v
		}
	}
	if len(env) > 0 {
		opts = append(opts, sshx.WithEnv(env))
	}
	if agent || m.Config.SSH.ForwardAgent {
		opts = append(opts, sshx.WithAgent(os.Getenv("SSH_AUTH_SOCK")))
	}
	return opts
}
