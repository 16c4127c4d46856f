package lxd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/idmap"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/provider"
)

// readyKey marks an instance whose Create finished (Prepare ran): one
// without it is what a den killed half way through Create left, which
// State calls not created and the next Create replaces.
const readyKey = "user.den.ready"

// Create makes the instance from the box's image without starting it and
// runs spec.Prepare through LXD's SFTP endpoint. Before anything is made
// it checks that the server has what den.hcl names (project, profiles,
// storage pool, network, cluster member), naming the den.hcl line of
// what it lacks. A failed Create deletes what it made.
func (p *Provider) Create(ctx context.Context, spec *provider.Spec) (err error) {
	x := settings(spec.Engine)
	if pl, err := p.placed(spec.Name); err != nil {
		return err
	} else if pl != nil {
		m, err := p.forName(ctx, spec.Name)
		if err != nil {
			return err
		}
		inst, _, err := m.is.GetInstance(spec.Name)
		switch {
		case err == nil && inst.Config[readyKey] == "true":
			return fmt.Errorf("machine %q exists already on LXD remote %q", spec.Name, pl.Remote)
		case err == nil:
			// Half made by a den that was killed: start again.
			if err := p.deleteInstance(ctx, m, spec.Name); err != nil {
				return err
			}
		case !notFound(err):
			return err
		}
		if err := p.unplace(spec.Name); err != nil {
			return err
		}
	}
	m, err := p.forSpec(ctx, spec.Name, x)
	if err != nil {
		return err
	}
	if err := p.checkPlacement(ctx, m, x); err != nil {
		return err
	}
	if m.srv.local() && !spec.Privileged {
		// This host's LXD must not map machines into den's LXC id block.
		if err := idmap.SystemFiles.CheckSharedWithLXD(); err != nil {
			return errdefs.Newf(errdefs.Invalid, "%v", err)
		}
	}
	put, err := p.instancePut(ctx, m, spec, x)
	if err != nil {
		return err
	}
	fp, err := p.ensureImage(ctx, m, spec, spec.Warn)
	if err != nil {
		return err
	}
	if err := p.place(spec.Name, m.pl); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := p.deleteInstance(cctx, m, spec.Name); derr != nil {
			err = fmt.Errorf("%w (and deleting the half-made instance failed: %v; 'den destroy' tries again)", err, derr)
			return
		}
		p.unplace(spec.Name)
	}()
	is := m.is
	if x.Target != "" {
		is = is.UseTarget(x.Target)
	}
	req := api.InstancesPost{
		Name:        spec.Name,
		Type:        api.InstanceTypeContainer,
		Source:      api.InstanceSource{Type: "image", Fingerprint: fp},
		InstancePut: put,
	}
	op, err := is.CreateInstance(req)
	if err := wait(ctx, op, err, fmt.Sprintf("create instance %s on remote %q", spec.Name, m.pl.Remote)); err != nil {
		return err
	}
	if spec.Prepare != nil {
		if err := p.prepare(ctx, m, spec); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	inst, etag, err := m.is.GetInstance(spec.Name)
	if err != nil {
		return err
	}
	mark := inst.Writable()
	mark.Config[readyKey] = "true"
	op, err = m.is.UpdateInstance(spec.Name, mark, etag)
	return wait(ctx, op, err, fmt.Sprintf("mark instance %s made", spec.Name))
}

// profiles are the profiles a machine gets.
func profiles(x *config.LXD) []string {
	if x.Profiles != nil {
		return x.Profiles
	}
	return []string{"default"}
}

// checkPlacement checks that the server has what x names, before den
// makes anything there.
func (p *Provider) checkPlacement(ctx context.Context, m *machine, x *config.LXD) error {
	r := m.pl.Remote
	if x.Project != "" {
		if _, _, err := m.srv.c.GetProject(x.Project); notFound(err) {
			return x.Errorf("project", "Unknown LXD project", "remote %q has no project %q ('lxc project list' on it shows them).", r, x.Project)
		} else if err != nil {
			return fmt.Errorf("remote %q: project %q: %w", r, x.Project, err)
		}
	}
	for _, name := range profiles(x) {
		if _, _, err := m.is.GetProfile(name); notFound(err) {
			return x.Errorf("profiles", "Unknown LXD profile", "remote %q has no profile %q%s ('lxc profile list' on it shows them).", r, name, inProject(x))
		} else if err != nil {
			return fmt.Errorf("remote %q: profile %q: %w", r, name, err)
		}
	}
	if x.StoragePool != "" {
		if _, _, err := m.is.GetStoragePool(x.StoragePool); notFound(err) {
			return x.Errorf("storage_pool", "Unknown LXD storage pool", "remote %q has no storage pool %q ('lxc storage list' on it shows them).", r, x.StoragePool)
		} else if err != nil {
			return fmt.Errorf("remote %q: storage pool %q: %w", r, x.StoragePool, err)
		}
	}
	if x.Target != "" {
		if !m.srv.clustered {
			return x.Errorf("target", "LXD remote is not a cluster", "remote %q is a single server, not a cluster: leave target out.", r)
		}
		if group, ok := strings.CutPrefix(x.Target, "@"); ok {
			if _, _, err := m.srv.c.GetClusterGroup(group); notFound(err) {
				return x.Errorf("target", "Unknown cluster group", "cluster %q has no group %q ('lxc cluster group list' shows them).", r, group)
			} else if err != nil {
				return fmt.Errorf("remote %q: cluster group %q: %w", r, group, err)
			}
		} else if _, _, err := m.srv.c.GetClusterMember(x.Target); notFound(err) {
			names, _ := m.srv.c.GetClusterMemberNames()
			return x.Errorf("target", "Unknown cluster member", "cluster %q has no member %q (its members: %s).", r, x.Target, strings.Join(names, ", "))
		} else if err != nil {
			return fmt.Errorf("remote %q: cluster member %q: %w", r, x.Target, err)
		}
	}
	if x.Network != "" {
		if _, err := p.network(m, x.Network, memberOf(x)); err != nil {
			if notFound(err) {
				return x.Errorf("network", "Unknown LXD network", "remote %q has no network or bridge %q ('lxc network list' on it shows them).", r, x.Network)
			}
			return err
		}
	}
	return nil
}

func inProject(x *config.LXD) string {
	if x.Project == "" {
		return ""
	}
	return " in project " + strconv.Quote(x.Project)
}

// memberOf is the cluster member x names ("" for none or a group).
func memberOf(x *config.LXD) string {
	if strings.HasPrefix(x.Target, "@") {
		return ""
	}
	return x.Target
}

// netInfo is what den needs of the network eth0 joins.
type netInfo struct {
	managed bool
	subnet  netip.Prefix // the network's subnet, masked
	gateway netip.Addr   // the bridge's own address (on the member for unmanaged bridges)
	own     []netip.Addr // every address the bridge has (on every member)
}

// network reads network name on m's server: a managed network's subnet
// from its config, a host bridge's from its addresses (on member, or on
// every member of a cluster).
func (p *Provider) network(m *machine, name, member string) (*netInfo, error) {
	is := m.is
	if member != "" {
		is = is.UseTarget(member)
	}
	n, _, err := is.GetNetwork(name)
	if err != nil {
		return nil, err
	}
	info := &netInfo{managed: n.Managed}
	if n.Managed {
		a := n.Config["ipv4.address"]
		pfx, err := netip.ParsePrefix(a)
		if err != nil {
			return info, fmt.Errorf("remote %q: network %q has no IPv4 subnet (ipv4.address is %q): den gives machines IPv4 addresses", m.pl.Remote, name, a)
		}
		info.subnet, info.gateway, info.own = pfx.Masked(), pfx.Addr(), []netip.Addr{pfx.Addr()}
		return info, nil
	}
	members := []string{member}
	if m.srv.clustered {
		if names, err := m.srv.c.GetClusterMemberNames(); err == nil {
			members = names
			slices.SortFunc(members, func(a, b string) int {
				// the target member first: its bridge address is the gateway
				return boolCmp(b == member, a == member)
			})
		}
	}
	for _, mem := range members {
		is := m.is
		if mem != "" {
			is = is.UseTarget(mem)
		}
		st, err := is.GetNetworkState(name)
		if err != nil {
			return info, fmt.Errorf("remote %q: state of bridge %q: %w", m.pl.Remote, name, err)
		}
		for _, a := range st.Addresses {
			if a.Family != "inet" {
				continue
			}
			addr, err := netip.ParseAddr(a.Address)
			bits, err2 := strconv.Atoi(a.Netmask)
			if err != nil || err2 != nil {
				continue
			}
			info.own = append(info.own, addr)
			if !info.gateway.IsValid() {
				info.gateway, info.subnet = addr, netip.PrefixFrom(addr, bits).Masked()
			}
		}
	}
	if !info.gateway.IsValid() {
		return info, fmt.Errorf("remote %q: bridge %q has no IPv4 address: den gives machines addresses in the bridge's subnet", m.pl.Remote, name)
	}
	return info, nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// instancePut is the instance's configuration from spec and x: den's own
// keys and devices, then x's raw config and devices.
func (p *Provider) instancePut(ctx context.Context, m *machine, spec *provider.Spec, x *config.LXD) (api.InstancePut, error) {
	cfg := map[string]string{"user.den.hostname": spec.Hostname}
	// As with LXC: unprivileged in ids no other machine has, unless
	// den.hcl says privileged = true; nesting = true lets the guest run
	// containers of its own.
	if spec.Privileged {
		cfg["security.privileged"] = "true"
	} else {
		cfg["security.idmap.isolated"] = "true"
	}
	if spec.Nesting {
		cfg["security.nesting"] = "true"
	}
	if spec.Memory > 0 {
		cfg["limits.memory"] = strconv.FormatInt(spec.Memory, 10)
	}
	if spec.CPUs > 0 {
		cfg["limits.cpu"] = strconv.Itoa(spec.CPUs)
	}
	devices := map[string]map[string]string{}
	var rawLXC []string
	if n := spec.Network; n.Bridge != "" && n.Address.IsValid() {
		info, err := p.network(m, n.Bridge, memberOf(x))
		if err != nil {
			return api.InstancePut{}, err
		}
		nic := map[string]string{"type": "nic", "name": "eth0", "hwaddr": n.MAC}
		if info.managed {
			// A static lease too, so LXD's dnsmasq never hands the address out.
			nic["network"], nic["ipv4.address"] = n.Bridge, n.Address.Addr().String()
		} else {
			nic["nictype"], nic["parent"] = "bridged", n.Bridge
		}
		devices["eth0"] = nic
		// liblxc sets the address before init runs, as den's LXC provider
		// does: no DHCP wait, and no box needs udev or networkd.
		rawLXC = append(rawLXC,
			"lxc.net.0.ipv4.address = "+n.Address.String()+" "+broadcast(n.Address),
			"lxc.net.0.ipv4.gateway = "+n.Gateway.String())
	}
	if x.StoragePool != "" {
		devices["root"] = map[string]string{"type": "disk", "path": "/", "pool": x.StoragePool}
	}
	if len(spec.Mounts) > 0 && !m.srv.local() {
		return api.InstancePut{}, errdefs.Newf(errdefs.Unsupported, "remote %q is not this host: it cannot mount this host's %s at %s; make that synced folder type = \"rsync\"", m.pl.Remote, spec.Mounts[0].Source, spec.Mounts[0].Target)
	}
	var uids, gids []int
	for i, mt := range spec.Mounts {
		d := map[string]string{"type": "disk", "source": mt.Source, "path": mt.Target}
		if mt.ReadOnly {
			d["readonly"] = "true"
		}
		devices[fmt.Sprintf("den-mount-%d", i)] = d
		if mt.File {
			continue // the guards: den.hcl belongs to the project's owner anyway
		}
		var st syscall.Stat_t
		if err := syscall.Stat(mt.Source, &st); err == nil {
			if st.Uid != 0 && !slices.Contains(uids, int(st.Uid)) {
				uids = append(uids, int(st.Uid))
			}
			if st.Gid != 0 && !slices.Contains(gids, int(st.Gid)) {
				gids = append(gids, int(st.Gid))
			}
		}
	}
	if idmap := rawIDMap(uids, gids); idmap != "" {
		cfg["raw.idmap"] = idmap
	}
	if m.srv.local() {
		// LXD's proxy connects inside the guest, to its loopback (its
		// forkproxy does not reach the guest's own eth0 address).
		guest := "127.0.0.1"
		for i, f := range spec.Forwards {
			devices[fmt.Sprintf("den-forward-%d", i)] = map[string]string{
				"type": "proxy", "bind": "host",
				"listen":  f.Protocol + ":" + net.JoinHostPort(f.HostIP, strconv.Itoa(f.HostPort)),
				"connect": f.Protocol + ":" + net.JoinHostPort(guest, strconv.Itoa(f.GuestPort)),
			}
		}
	}
	for _, kv := range x.Config {
		if kv.Key == "raw.lxc" {
			rawLXC = append(rawLXC, kv.Value)
			continue
		}
		cfg[kv.Key] = kv.Value
	}
	if len(rawLXC) > 0 {
		cfg["raw.lxc"] = strings.Join(rawLXC, "\n") + "\n"
	}
	for _, name := range sortedKeys(x.Devices) {
		devices[name] = x.Devices[name]
	}
	return api.InstancePut{Config: cfg, Devices: devices, Profiles: profiles(x)}, nil
}

// rawIDMap maps the owners of synced folders 1:1 into the guest, so the
// login user (who gets the project owner's ids) owns what it writes there.
func rawIDMap(uids, gids []int) string {
	var lines []string
	for _, u := range uids {
		if slices.Contains(gids, u) {
			lines = append(lines, fmt.Sprintf("both %d %d", u, u))
		} else {
			lines = append(lines, fmt.Sprintf("uid %d %d", u, u))
		}
	}
	for _, g := range gids {
		if !slices.Contains(uids, g) {
			lines = append(lines, fmt.Sprintf("gid %d %d", g, g))
		}
	}
	return strings.Join(lines, "\n")
}

// broadcast is the broadcast address of a's subnet (liblxc otherwise
// gives the guest "brd 0.0.0.255").
func broadcast(a netip.Prefix) string {
	b := a.Addr().As4()
	mask := net.CIDRMask(a.Bits(), 32)
	for i := range b {
		b[i] |= ^mask[i]
	}
	return netip.AddrFrom4(b).String()
}

// prepare runs spec.Prepare on the instance's filesystem over SFTP.
func (p *Provider) prepare(ctx context.Context, m *machine, spec *provider.Spec) error {
	c, err := m.is.GetInstanceFileSFTP(spec.Name)
	if err != nil {
		return fmt.Errorf("prepare machine %q: open its files: %w", spec.Name, err)
	}
	defer c.Close()
	if err := spec.Prepare(ctx, sftpFS{c}); err != nil {
		return fmt.Errorf("prepare machine %q: %w", spec.Name, err)
	}
	return nil
}

// Start applies spec (limits, network, mounts, forwards, den.hcl's raw
// keys and devices), runs spec.Prepare when set, and starts the instance.
func (p *Provider) Start(ctx context.Context, spec *provider.Spec) error {
	m, err := p.forName(ctx, spec.Name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("machine %q does not exist", spec.Name)
	}
	inst, etag, err := m.is.GetInstance(spec.Name)
	if notFound(err) {
		return fmt.Errorf("machine %q does not exist on remote %q", spec.Name, m.pl.Remote)
	}
	if err != nil {
		return err
	}
	if mapState(inst.StatusCode) != provider.Stopped {
		return nil
	}
	x := settings(spec.Engine)
	put, err := p.instancePut(ctx, m, spec, x)
	if err != nil {
		return err
	}
	// What LXD keeps in the instance's config stays, and den's mark.
	for k, v := range inst.Config {
		if strings.HasPrefix(k, "volatile.") || strings.HasPrefix(k, "image.") || k == readyKey {
			put.Config[k] = v
		}
	}
	put.Architecture, put.Ephemeral, put.Stateful, put.Description = inst.Architecture, inst.Ephemeral, inst.Stateful, inst.Description
	op, err := m.is.UpdateInstance(spec.Name, put, etag)
	if err := wait(ctx, op, err, fmt.Sprintf("configure instance %s", spec.Name)); err != nil {
		return err
	}
	if spec.Prepare != nil {
		if err := p.prepare(ctx, m, spec); err != nil {
			return err
		}
	}
	if idmap := put.Config["raw.idmap"]; idmap != "" && m.srv.local() {
		if err := allowIDs(ctx, idmap, spec.Warn); err != nil {
			return err
		}
	}
	op, err = m.is.UpdateInstanceState(spec.Name, api.InstanceStatePut{Action: "start", Timeout: -1}, "")
	if err := wait(ctx, op, err, fmt.Sprintf("start instance %s on remote %q", spec.Name, m.pl.Remote)); err != nil {
		return p.withLog(m, spec.Name, err)
	}
	return nil
}

// withLog adds the ERROR lines of the instance's LXC log to err.
func (p *Provider) withLog(m *machine, name string, err error) error {
	rc, lerr := m.is.GetInstanceLogfile(name, "lxc.log")
	if lerr != nil {
		return fmt.Errorf("%w (see '%s')", err, p.Hints(name).Log)
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(rc, 1<<20))
	for sc.Scan() {
		if strings.Contains(sc.Text(), " ERROR ") {
			lines = append(lines, "  "+sc.Text())
		}
	}
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	if len(lines) == 0 {
		return fmt.Errorf("%w (see '%s')", err, p.Hints(name).Log)
	}
	return fmt.Errorf("%w; LXC said:\n%s\n(full log: '%s')", err, strings.Join(lines, "\n"), p.Hints(name).Log)
}

// Stop shuts the instance down within timeout, then stops it by force
// (at once when force). A frozen instance is thawed first.
func (p *Provider) Stop(ctx context.Context, name string, force bool, timeout time.Duration) error {
	m, err := p.forName(ctx, name)
	if err != nil || m == nil {
		return err
	}
	return p.stop(ctx, m, name, force, timeout)
}

func (p *Provider) stop(ctx context.Context, m *machine, name string, force bool, timeout time.Duration) error {
	st, _, err := m.is.GetInstanceState(name)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	switch mapState(st.StatusCode) {
	case provider.Stopped:
		return nil
	case provider.Frozen:
		if err := p.setState(ctx, m, name, "unfreeze"); err != nil {
			return err
		}
	}
	if !force {
		secs := int(max(time.Second, timeout.Round(time.Second)) / time.Second)
		op, err := m.is.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Timeout: secs}, "")
		if wait(ctx, op, err, "stop") == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	op, err := m.is.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Force: true, Timeout: -1}, "")
	if err := wait(ctx, op, err, fmt.Sprintf("stop instance %s", name)); err != nil {
		if st, _, serr := m.is.GetInstanceState(name); serr == nil && st.StatusCode == api.Stopped {
			return nil
		}
		return err
	}
	return nil
}

func (p *Provider) setState(ctx context.Context, m *machine, name, action string) error {
	op, err := m.is.UpdateInstanceState(name, api.InstanceStatePut{Action: action, Timeout: -1}, "")
	return wait(ctx, op, err, fmt.Sprintf("%s instance %s", action, name))
}

// Destroy stops and deletes the instance (its snapshots go with it), then
// forgets where it lived. Synced folders are disk devices LXD unmounts at
// stop; LXD deletes only the instance's own volume.
func (p *Provider) Destroy(ctx context.Context, name string) error {
	m, err := p.forName(ctx, name)
	if err != nil || m == nil {
		return err
	}
	if err := p.deleteInstance(ctx, m, name); err != nil {
		return err
	}
	return p.unplace(name)
}

func (p *Provider) deleteInstance(ctx context.Context, m *machine, name string) error {
	if err := p.stop(ctx, m, name, true, 0); err != nil {
		return err
	}
	// LXD refuses while another operation on the instance runs (the stop
	// that follows a failed start): retry for a while.
	for try := 0; ; try++ {
		op, err := m.is.DeleteInstance(name)
		if notFound(err) {
			return nil
		}
		err = wait(ctx, op, err, fmt.Sprintf("delete instance %s on remote %q", name, m.pl.Remote))
		if err == nil || notFound(errors.Unwrap(err)) {
			return nil
		}
		if !strings.Contains(err.Error(), "is busy") || try == 50 || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// State maps LXD's status; a machine den did not place, or whose instance
// is gone, is not created.
func (p *Provider) State(ctx context.Context, name string) (provider.State, error) {
	m, err := p.forName(ctx, name)
	if err != nil {
		return provider.Unknown, err
	}
	if m == nil {
		return provider.NotCreated, nil
	}
	inst, _, err := m.is.GetInstance(name)
	if notFound(err) {
		return provider.NotCreated, nil
	}
	if err != nil {
		return provider.Unknown, err
	}
	if inst.Config[readyKey] != "true" {
		return provider.NotCreated, nil // half made: the next Create replaces it
	}
	return mapState(inst.StatusCode), nil
}

func mapState(c api.StatusCode) provider.State {
	switch c {
	case api.Stopped:
		return provider.Stopped
	case api.Running, api.Starting, api.Stopping, api.Aborting, api.Thawed, api.Ready:
		return provider.Running
	case api.Frozen, api.Freezing:
		return provider.Frozen
	}
	return provider.Unknown
}

// Inspect reads the state, where the instance runs and, when it runs, the
// limits in force from its cgroup (read inside it: LXD's API has no such
// field).
func (p *Provider) Inspect(ctx context.Context, name string) (provider.Info, error) {
	info := provider.Info{LogFile: "'" + p.Hints(name).Log + "'"}
	m, err := p.forName(ctx, name)
	if err != nil || m == nil {
		if m == nil && err == nil {
			info.State = provider.NotCreated
		}
		return info, err
	}
	inst, _, err := m.is.GetInstance(name)
	if notFound(err) {
		info.State = provider.NotCreated
		return info, nil
	}
	if err != nil {
		return info, err
	}
	info.State = mapState(inst.StatusCode)
	if inst.Config[readyKey] != "true" {
		info.State = provider.NotCreated
	}
	if info.State != provider.Running {
		return info, nil
	}
	// Right after a start the guest's init may still be mounting its
	// cgroup hierarchies, and LXD pins the CPUs of limits.cpu a moment
	// after the start: a few tries.
	want, _ := strconv.Atoi(inst.ExpandedConfig["limits.cpu"])
	var out string
	for try := 0; try < 10; try++ {
		out, err = p.output(ctx, m, name, []string{"sh", "-c", limitsScript})
		if ctx.Err() != nil {
			break
		}
		if err == nil {
			_, cpus, _ := strings.Cut(out, "cpu ")
			n, perr := host.ParseCPUList(strings.TrimSpace(cpus))
			if want == 0 || (perr == nil && len(n) == want) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return info, nil // the limits are a courtesy; the state is what counts
	}
	for l := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch k {
		case "mem":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n < 1<<62 {
				info.MemoryLimit = n
			}
		case "cpu":
			info.CPUs = v
		}
	}
	return info, nil
}

// SetLimits changes the running instance's limits.memory (bytes) and
// limits.cpu (a count) in its config; LXD applies them to the running
// container at once and keeps them for later starts. 0 removes the key
// (no limit, unless a profile sets one). Each update carries the ETag of
// the config it changed, so a change made meanwhile is not overwritten.
// The two keys go in two updates, memory first: LXD 5.0.2 left the
// container's CPUs pinned after one update that changed limits.memory and
// removed limits.cpu (every try here), and rebalances them after an
// update of limits.cpu alone.
func (p *Provider) SetLimits(ctx context.Context, name string, memory int64, cpus int) error {
	m, err := p.forName(ctx, name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("machine %q does not exist", name)
	}
	if err := p.setLimit(ctx, m, name, "limits.memory", memory); err != nil {
		if memory > 0 && ctx.Err() == nil {
			return fmt.Errorf("%w (memory in use above the new limit cannot be taken back: 'den reload' restarts the machine with it)", err)
		}
		return err
	}
	return p.setLimit(ctx, m, name, "limits.cpu", int64(cpus))
}

// setLimit sets key of the running instance to n, or removes it for 0,
// unless it is so already.
func (p *Provider) setLimit(ctx context.Context, m *machine, name, key string, n int64) error {
	inst, etag, err := m.is.GetInstance(name)
	if err != nil {
		return err
	}
	if st := mapState(inst.StatusCode); st != provider.Running {
		return fmt.Errorf("set limits of %q: it is %s", name, st)
	}
	put := inst.Writable()
	put.Config = maps.Clone(put.Config) // Writable shares inst's map
	if put.Config == nil {
		put.Config = map[string]string{}
	}
	what := fmt.Sprintf("remove %s of instance %s", key, name)
	if n > 0 {
		put.Config[key] = strconv.FormatInt(n, 10)
		what = fmt.Sprintf("set %s of instance %s to %d", key, name, n)
	} else {
		delete(put.Config, key)
	}
	if maps.Equal(put.Config, inst.Config) {
		return nil
	}
	op, err := m.is.UpdateInstance(name, put, etag)
	return wait(ctx, op, err, what)
}

// Location is the remote the machine lives on, and its cluster member:
// "" on this host's server, "ci", "ci/node2".
func (p *Provider) Location(ctx context.Context, name string) (string, error) {
	m, err := p.forName(ctx, name)
	if err != nil || m == nil {
		return "", err
	}
	if !m.srv.clustered {
		if m.pl.Remote == config.LocalRemote {
			return "", nil
		}
		return m.pl.Remote, nil
	}
	inst, _, err := m.is.GetInstance(name)
	if err != nil {
		return m.pl.Remote, err
	}
	return m.pl.Remote + "/" + inst.Location, nil
}

// limitsScript prints the guest's memory limit and cpuset from its own
// cgroup (v2, else v1).
const limitsScript = `for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do [ -r $f ] && { echo mem $(cat $f); break; }; done
for f in /sys/fs/cgroup/cpuset.cpus.effective /sys/fs/cgroup/cpuset/cpuset.cpus; do [ -r $f ] && { echo cpu $(cat $f); break; }; done`

// output runs cmd in the instance (as root, no terminal, no input) and
// returns its standard output.
func (p *Provider) output(ctx context.Context, m *machine, name string, cmd []string) (string, error) {
	var out bytes.Buffer
	x, err := startExec(m.is, name, api.InstanceExecPost{Command: cmd}, lxdclient.InstanceExecArgs{
		Stdin: bytes.NewReader(nil), Stdout: &out, Stderr: io.Discard,
	})
	if err != nil {
		return "", err
	}
	rc, err := x.wait(ctx)
	if err != nil {
		return "", err
	}
	if rc != 0 {
		return out.String(), fmt.Errorf("%s exited with status %d", cmd[0], rc)
	}
	return out.String(), nil
}

// Freeze suspends every process of the instance (LXD's freeze).
func (p *Provider) Freeze(ctx context.Context, name string) error {
	m, err := p.forName(ctx, name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("machine %q does not exist", name)
	}
	return p.setState(ctx, m, name, "freeze")
}

// Unfreeze resumes a frozen instance.
func (p *Provider) Unfreeze(ctx context.Context, name string) error {
	m, err := p.forName(ctx, name)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("machine %q does not exist", name)
	}
	return p.setState(ctx, m, name, "unfreeze")
}

// subIDLock serialises den's edits of /etc/subuid and /etc/subgid.
const subIDLock = "/run/lock/den-subid.lock"

// allowIDs makes sure root may map the host ids of idmap (raw.idmap
// lines) into containers: newuidmap, which LXD uses, allows only the
// ranges /etc/subuid and /etc/subgid give root. Missing "root:ID:1"
// lines are added (den runs as root for a local server; LXD need not be
// restarted: newuidmap reads the files at each start). Without root it
// says what to run.
func allowIDs(ctx context.Context, idmap string, warn func(string, ...any)) error {
	need := map[string][]int{}
	for l := range strings.Lines(idmap) {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		id, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		if f[0] == "uid" || f[0] == "both" {
			need["/etc/subuid"] = append(need["/etc/subuid"], id)
		}
		if f[0] == "gid" || f[0] == "both" {
			need["/etc/subgid"] = append(need["/etc/subgid"], id)
		}
	}
	missing := map[string][]int{}
	for file, ids := range need {
		for _, id := range ids {
			if !subIDAllowed(file, id) {
				missing[file] = append(missing[file], id)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		var cmds []string
		for _, file := range sortedKeys(missing) {
			for _, id := range missing[file] {
				cmds = append(cmds, fmt.Sprintf("echo root:%d:1 | sudo tee -a %s", id, file))
			}
		}
		return errdefs.Newf(errdefs.HostNotReady, "synced folders map their owner into the guest, which LXD may do only for ids root is given in /etc/subuid and /etc/subgid; run:\n  %s", strings.Join(cmds, "\n  "))
	}
	if err := os.MkdirAll(filepath.Dir(subIDLock), 0o755); err != nil {
		return err
	}
	lk, err := lock.Acquire(ctx, subIDLock, "den up (allowing ids for synced folders)", 10*time.Second)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	for _, file := range sortedKeys(missing) {
		for _, id := range missing[file] {
			if subIDAllowed(file, id) {
				continue
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(f, "root:%d:1\n", id)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("add root:%d:1 to %s: %w", id, file, err)
			}
			if warn != nil {
				warn("added root:%d:1 to %s, so LXD may map the synced folder's owner into the guest", id, file)
			}
		}
	}
	return nil
}

// subIDAllowed reports whether file (/etc/subuid or /etc/subgid) gives
// root a range holding id.
func subIDAllowed(file string, id int) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for l := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(l), ":")
		if len(f) != 3 || (f[0] != "root" && f[0] != "0") {
			continue
		}
		start, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && id >= start && id < start+n {
			return true
		}
	}
	return false
}
