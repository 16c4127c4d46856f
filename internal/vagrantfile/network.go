package vagrantfile

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/den-dev/den/internal/config"
)

// network reads config.vm.network TYPE, options.
func (c *conv) network(e event, lv *level) {
	kind := e.arg(0)
	opts := e.options()
	setting := fmt.Sprintf("vm.network %q", kind)
	switch kind {
	case "forwarded_port":
		c.forward(e, opts, lv)
	case "private_network":
		var ip string
		var dhcp bool
		for _, o := range opts {
			switch v, _ := str(o.value); o.key {
			case "ip":
				ip = v
			case "type":
				dhcp = v == "dhcp"
				if !dhcp {
					c.drop(o.at, setting+", type: "+ruby(o.value), "den has no such network type")
				}
			case "netmask":
				if v != "255.255.255.0" && v != "24" {
					c.drop(o.at, setting+", netmask: "+ruby(o.value), "den's private network is the /24 of the machine's address")
				}
			default:
				c.drop(o.at, setting+", "+o.key+": "+ruby(o.value), "den's private networks have no such option")
			}
		}
		switch {
		case ip != "":
			if a, err := netip.ParsePrefix(ip); err == nil {
				c.drop(e.at(), fmt.Sprintf("%s, ip: %q", setting, ip), "a private network in den.hcl takes an address (its /24 is the network): written as %q", a.Addr())
				ip = a.Addr().String()
			}
			if _, err := netip.ParseAddr(ip); err != nil {
				c.drop(e.at(), setting, "%q is not an IP address", ip)
				return
			}
			if len(lv.networks) > 0 {
				c.drop(e.at(), fmt.Sprintf("%s, ip: %q", setting, ip), "a den machine has one address, on its project's network: the first private network (line %d) is written", lv.networks[0].at.line)
				return
			}
			lv.networks = append(lv.networks, &network{ip, e.at()})
		case dhcp:
			if lv.projectNet == nil {
				at := e.at()
				lv.projectNet = &at
				c.note(Changed, at, setting+", type: \"dhcp\"", "written as network = \"project\": den picks the machine's address on a network of the project's own")
			}
		default:
			c.drop(e.at(), setting, "names no ip")
		}
	case "public_network":
		c.drop(e.at(), setting, `den machines join a host bridge (bridge = "lxcbr0" by default) behind NAT; forward blocks open their ports to the network`)
	default:
		c.drop(e.at(), setting, "den has no such network")
	}
}

// forward reads config.vm.network "forwarded_port", guest: G, host: H.
func (c *conv) forward(e event, opts []opt, lv *level) {
	f := &fwd{protocol: "tcp", at: e.at()}
	setting := `vm.network "forwarded_port"`
	bad := false
	port := func(o opt) int {
		n, ok := integer(o.value)
		if !ok || n < 1 || n > 65535 {
			c.drop(o.at, setting+", "+o.key+": "+ruby(o.value), "not a port number: the forward is not written")
			bad = true
			return 0
		}
		return int(n)
	}
	for _, o := range opts {
		v, _ := str(o.value)
		switch o.key {
		case "guest":
			f.guest = port(o)
		case "host":
			f.host = port(o)
		case "protocol":
			if v != "tcp" && v != "udp" {
				c.drop(o.at, setting+", protocol: "+ruby(o.value), "den forwards tcp and udp")
				return
			}
			f.protocol = v
		case "host_ip":
			ip, err := netip.ParseAddr(v)
			if err != nil || ip.Zone() != "" {
				c.drop(o.at, setting+", host_ip: "+ruby(o.value), "not an IP address of this host")
				return
			}
			f.hostIP = ip.String()
		case "id":
			if v == "ssh" {
				c.drop(o.at, setting+`, id: "ssh"`, "den ssh reaches the machine at its own address: Vagrant's ssh port is not needed")
				return
			}
		case "auto_correct":
			if b, _ := boolean(o.value); b {
				c.drop(o.at, setting+", auto_correct: true", "den does not move a forwarded port that clashes: a port in use is an error at up")
			}
		case "guest_ip":
			c.drop(o.at, setting+", guest_ip: "+ruby(o.value), "den forwards to the machine's own address")
		default:
			c.drop(o.at, setting+", "+o.key+": "+ruby(o.value), "den's forward blocks have no such option")
		}
	}
	if bad {
		return
	}
	if f.guest == 0 || f.host == 0 {
		c.drop(e.at(), setting, "needs both guest and host ports")
		return
	}
	if f.hostIP == "" && !c.hostIPNoted {
		c.hostIPNoted = true
		c.note(Changed, e.at(), setting, "Vagrant listens on every host address when host_ip is not given; den listens on 127.0.0.1 (host_ip = \"0.0.0.0\" opens the port to the network): this holds for every forward without host_ip")
	}
	lv.forwards = append(lv.forwards, f)
}

// folder reads config.vm.synced_folder HOST, GUEST, options.
func (c *conv) folder(e event, lv *level) {
	host, guest := e.arg(0), e.arg(1)
	setting := fmt.Sprintf("vm.synced_folder %q, %q", host, guest)
	f := &folder{at: e.at()}
	for _, o := range e.options() {
		oset := setting + ", " + o.key + ": " + ruby(o.value)
		switch o.key {
		case "disabled":
			f.disabled, _ = boolean(o.value)
		case "type":
			switch t, _ := str(o.value); t {
			case "", "lxc", "virtualbox":
			default:
				c.note(Changed, o.at, oset, "den bind-mounts every synced folder: host and guest see each change at once")
			}
		case "mount_options":
			opts, _ := strList(o.value)
			var others []string
			for _, m := range opts {
				for _, w := range strings.Split(m, ",") {
					if w == "ro" {
						f.readOnly = true
					} else if w != "rw" {
						others = append(others, w)
					}
				}
			}
			if len(others) > 0 {
				c.drop(o.at, oset, "den's bind mounts take no mount options but read_only")
			}
		case "owner", "group":
			c.drop(o.at, oset, "den gives the login user the uid and gid of the project folder's owner instead")
		case "create":
			if b, _ := boolean(o.value); b {
				c.drop(o.at, oset, "den does not create host folders: create it before den up")
			}
		default:
			c.drop(o.at, oset, "den's synced folders have no such option")
		}
	}
	if host == "" || guest == "" {
		c.drop(e.at(), setting, "needs a host and a guest path")
		return
	}
	label, ok := c.hostLabel(host, e.at(), setting)
	if !ok {
		return
	}
	f.host = label
	f.guest = filepath.Clean(guest)
	if !f.disabled {
		if err := config.CheckGuestPath(f.guest); err != nil {
			c.drop(e.at(), setting, "%s", err)
			return
		}
	} else if !strings.HasPrefix(f.guest, "/") {
		f.guest = ""
	}
	lv.folders = slices.DeleteFunc(lv.folders, func(o *folder) bool { return o.guest == f.guest && f.guest != "" })
	lv.folders = append(lv.folders, f)
}

// hostLabel is a synced folder's host path as den.hcl's block label
// (labels are literal: ~ is expanded now).
func (c *conv) hostLabel(p string, a at, setting string) (string, bool) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if c.home == "" {
			c.drop(a, setting, "names the home folder, and this host user has none")
			return "", false
		}
		abs := filepath.Join(c.home, strings.TrimPrefix(p, "~"))
		c.note(Changed, a, setting, "~ written as %s: a block label in den.hcl cannot read the environment", abs)
		return abs, true
	}
	if strings.HasPrefix(p, "~") {
		c.drop(a, setting, "den reads ~ only for the current user's home")
		return "", false
	}
	return c.projectPath(p), true
}

// projectPath is a path of the Vagrantfile's project as den.hcl writes it:
// relative to the den.hcl's folder when inside it, else absolute.
func (c *conv) projectPath(p string) string {
	abs := p
	if !filepath.IsAbs(p) {
		abs = filepath.Join(c.vfDir, p)
	}
	abs = filepath.Clean(abs)
	if r, err := filepath.Rel(c.outDir, abs); err == nil && (r == "." || filepath.IsLocal(r)) {
		return r
	}
	return abs
}

// pathExpr is a host path as an HCL expression: ~ reads $HOME with env().
func (c *conv) pathExpr(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		return `"${env("HOME")}` + config.Quote(strings.TrimPrefix(p, "~"))[1:]
	}
	return config.Quote(c.projectPath(p))
}
