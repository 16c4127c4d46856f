package server

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/machine"
)

// userLXCKeys are the raw LXC keys a caller who is not root may set in
// `lxc { config }`: limits on its own machine and settings inside the
// guest. Nothing that adds a device, a mount, a hook, a capability, a
// namespace share or a security profile.
var userLXCKeys = []string{
	"lxc.environment",
	"lxc.signal.halt",
	"lxc.signal.reboot",
	"lxc.signal.stop",
	"lxc.tty.max",
	"lxc.pty.max",
	"lxc.console.size",
	"lxc.init.cmd",
	"lxc.init.cwd",
	"lxc.init.uid",
	"lxc.init.gid",
	"lxc.cap.drop",
	"lxc.cgroup.pids.max",
	"lxc.cgroup2.pids.max",
	"lxc.cgroup.cpu.shares",
	"lxc.cgroup.cpu.cfs_quota_us",
	"lxc.cgroup.cpu.cfs_period_us",
	"lxc.cgroup2.cpu.weight",
	"lxc.cgroup2.cpu.max",
	"lxc.cgroup.blkio.weight",
	"lxc.cgroup2.io.weight",
}

// checkProjectAccess refuses a caller who may not act on the project in
// dir: an administrator may; anyone else must own the folder or be able
// to write it, and read its den.hcl.
func checkProjectAccess(c *caller, dir string) error {
	if c.admin() {
		return nil
	}
	if !c.authenticated() {
		return forbid("not authorized")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return forbid("project folder %s: %v", dir, err)
	}
	if int(st.Uid) != c.uid {
		if err := can(c, dir, mayWrite|mayEnter); err != nil {
			return forbid("%s may not use the project in %s: the folder is not theirs and they cannot write it", c, dir)
		}
	}
	if err := can(c, filepath.Join(dir, config.FileName), mayRead); err != nil {
		return forbid("%s cannot read %s: %v", c, filepath.Join(dir, config.FileName), err)
	}
	return nil
}

// policy checks what den.hcl makes den do for a caller who is not root
// against what that user could do themselves; it returns every refusal,
// located in den.hcl. Administrators pass.
func (s *Server) policy(c *caller, p *config.Project, ms []*machine.Machine) error {
	if c.admin() {
		return nil
	}
	var diags hcl.Diagnostics
	refuse := func(r hcl.Range, summary, format string, args ...any) {
		if r.Filename == "" {
			r = hcl.Range{Filename: config.FileName, Start: hcl.InitialPos, End: hcl.InitialPos}
		}
		for _, d := range diags {
			if d.Subject != nil && *d.Subject == r && d.Summary == summary {
				return
			}
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: r.Ptr()})
	}
	who := c.String()
	for _, m := range ms {
		mc := m.Config
		if mc.Provider == config.ProviderLXD {
			// den serve reaches LXD with root's access (the socket, root's
			// client certificate): its projects, profiles, raw keys and
			// devices would be root's to choose.
			refuse(mc.ProviderRange, "LXD machine not allowed",
				"machine %q has provider \"lxd\", which den serve runs for root only: it would reach LXD with root's access; LXD gives users access of their own (its lxd group, or a trusted client certificate on a remote)", mc.Name)
			continue
		}
		if machine.Privileged(m) && !s.cfg.AllowPrivileged {
			refuse(mc.DefRange, "Privileged machine",
				"machine %q would be a privileged container (root in it is root on this host), which only root may run; this den serve does not allow them for other users (its administrator can, with --allow-privileged)", mc.Name)
		}
		for _, sf := range mc.Synced {
			mode := uint32(mayRead | mayEnter)
			what := "read"
			if !sf.ReadOnly {
				mode |= mayWrite
				what = "read and write"
			}
			if err := can(c, sf.Host, mode); err != nil {
				refuse(sf.Range, "Synced folder not allowed",
					"%s cannot %s %s themselves (%v), so den will not share it with their machine%s", who, what, sf.Host, err, roHint(sf))
			}
		}
		for _, kv := range mc.LXCConfig {
			if !slices.Contains(userLXCKeys, kv.Key) {
				refuse(kv.Range, "LXC key not allowed",
					"%q is not among the LXC keys a user other than root may set (limits and settings inside the guest: %s)", kv.Key, strings.Join(userLXCKeys, ", "))
			}
		}
		for _, f := range mc.Forwards {
			if f.Host < 1024 {
				refuse(f.DefRange, "Privileged port",
					"host port %d is below 1024, which only root may bind; use a port from 1024 up", f.Host)
			}
			if ip, err := netip.ParseAddr(f.HostIP); err == nil && !ip.IsLoopback() && !s.cfg.AllowPublicForwards {
				refuse(f.DefRange, "Public forward",
					"host_ip %q opens the port beyond this host; this den serve allows users other than root loopback addresses only (127.0.0.1, ::1)", f.HostIP)
			}
		}
		// A project's own network is den's (a bridge of its own, isolated):
		// the policy's bridges are about the host's.
		if mc.Network != config.NetworkProject && !slices.Contains(s.cfg.Bridges, mc.Bridge) {
			refuse(mc.DefRange, "Bridge not allowed",
				"machine %q attaches to bridge %q; this den serve lets users other than root use %s", mc.Name, mc.Bridge, strings.Join(s.cfg.Bridges, ", "))
		}
		for _, pr := range mc.Provisions {
			for _, path := range []string{pr.Path, pr.Source} {
				if path == "" {
					continue
				}
				if err := can(c, path, mayRead); err != nil {
					refuse(pr.DefRange, "Provisioner file not readable",
						"%s cannot read %s themselves (%v), so den will not copy it into their machine", who, path, err)
				}
			}
		}
		if u := mc.BoxURL; u != "" {
			local := u
			if pu, err := url.Parse(u); err == nil && pu.Scheme == "file" {
				local = pu.Path
			} else if err == nil && pu.Scheme != "" {
				local = ""
			}
			if local != "" {
				if err := can(c, local, mayRead); err != nil {
					refuse(mc.BoxRange, "Box file not readable", "%s cannot read box_url %s themselves (%v)", who, local, err)
				}
			}
		}
	}
	if len(diags) == 0 {
		return nil
	}
	return &forbidden{
		msg:   fmt.Sprintf("%s may not run this den.hcl through den serve: %s", who, firstDiag(diags)),
		diags: diags,
	}
}

func roHint(sf config.SyncedFolder) string {
	if sf.ReadOnly {
		return ""
	}
	return " (read_only = true needs read access only)"
}

func firstDiag(diags hcl.Diagnostics) string {
	d := diags[0]
	s := d.Summary + ": " + d.Detail
	if r := d.Subject; r != nil {
		s = fmt.Sprintf("%s:%d:%d: %s", r.Filename, r.Start.Line, r.Start.Column, s)
	}
	if len(diags) > 1 {
		s += fmt.Sprintf(" (and %d more)", len(diags)-1)
	}
	return s
}
