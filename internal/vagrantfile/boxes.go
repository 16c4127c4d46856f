package vagrantfile

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/den-dev/den/internal/config"
)

// denBuilds reports whether den builds box itself (den box build).
func denBuilds(box string) bool {
	return box == "debian/bookworm" || box == "debian/trixie"
}

// publishers says which providers the boxes of well-known Vagrant Cloud
// publishers are for.
var publishers = map[string]string{
	"debian":         "VirtualBox and libvirt",
	"generic":        "VirtualBox, libvirt, VMware, Hyper-V and Parallels",
	"bento":          "VirtualBox, VMware and Parallels",
	"ubuntu":         "VirtualBox",
	"hashicorp":      "VirtualBox",
	"centos":         "VirtualBox and libvirt",
	"almalinux":      "VirtualBox, libvirt and VMware",
	"rockylinux":     "VirtualBox and libvirt",
	"fedora":         "VirtualBox and libvirt",
	"opensuse":       "VirtualBox and libvirt",
	"archlinux":      "VirtualBox and libvirt",
	"roboxes":        "VirtualBox, libvirt, VMware, Hyper-V and Parallels",
	"peru":           "VirtualBox and libvirt",
	"alvistack":      "VirtualBox and libvirt",
	"gusztavvargadr": "VirtualBox, VMware and Hyper-V",
}

var (
	bookwormRE = regexp.MustCompile(`(?i)debian.*(bookworm|12)|bookworm`)
	trixieRE   = regexp.MustCompile(`(?i)debian.*(trixie|13)|trixie`)
	debianRE   = regexp.MustCompile(`(?i)debian|jessie|stretch|buster|bullseye`)
)

// boxes decides each level's box. An LXC box is kept; a box for another
// provider becomes the closest box den builds, and its box_version and
// box_url are dropped. A machine left without a box gets debian/bookworm.
func (c *conv) boxes() {
	levels := []*level{c.top}
	for _, m := range c.machines {
		levels = append(levels, m.lv)
	}
	for _, lv := range levels {
		if lv.box == nil {
			// box_version and box_url without a box apply to the box the
			// level inherits, in den.hcl as in Vagrant.
			c.boxSource(lv)
			continue
		}
		name, ok := str(lv.box.v)
		if !ok || strings.TrimSpace(name) == "" {
			c.drop(lv.box.at, "vm.box", "%s is not a box name", ruby(lv.box.v))
			c.boxSource(lv)
			continue
		}
		lv.denBox = c.box(name, lv)
	}
	needDefault := len(c.machines) == 0 && c.top.denBox == ""
	for _, m := range c.machines {
		if m.lv.denBox == "" && c.top.denBox == "" {
			needDefault = true
		}
	}
	if needDefault {
		c.top.denBox = config.DefaultBox
		c.note(Changed, at{}, "vm.box", "the Vagrantfile names no box (for den's provider); written as %q, a box den builds itself", config.DefaultBox)
	}
}

// box returns the box den.hcl names for the Vagrant box name.
func (c *conv) box(name string, lv *level) string {
	setting := fmt.Sprintf("vm.box %q", name)
	if denBuilds(name) {
		c.boxSource(lv)
		return name
	}
	if strings.Contains(strings.ToLower(name), "lxc") {
		c.boxSource(lv)
		if lv.boxURL == nil {
			c.note(Changed, lv.box.at, setting, "an LXC box, written as it is; den has no default catalog, so den up needs its box_url (or den box add %s URL)", name)
		}
		return name
	}
	closest, why := config.DefaultBox, "den builds Debian boxes only, and debian/bookworm is the closest"
	switch {
	case bookwormRE.MatchString(name):
		why = "the same Debian release, which den builds itself"
	case trixieRE.MatchString(name):
		closest, why = "debian/trixie", "the same Debian release, which den builds itself"
	case debianRE.MatchString(name):
		why = "a newer Debian release, which den builds itself"
	}
	c.note(Changed, lv.box.at, setting, "a Vagrant box for %s, which den cannot use (den runs LXC containers): written as %q, %s", c.boxProviders(name), closest, why)
	c.dropBoxSource(lv, name)
	return closest
}

// boxProviders says which providers a Vagrant box is for.
func (c *conv) boxProviders(name string) string {
	publisher, _, _ := strings.Cut(name, "/")
	if p, ok := publishers[strings.ToLower(publisher)]; ok {
		return p
	}
	var names []string
	for _, p := range c.providers {
		if n := providerName(p); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	switch len(names) {
	case 0:
		return "another provider (VirtualBox by default)"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// boxSource checks box_version and box_url of a box den keeps.
func (c *conv) boxSource(lv *level) {
	if lv.boxURL != nil {
		u, ok := str(lv.boxURL.v)
		if l, isList := strList(lv.boxURL.v); !ok && isList && len(l) > 0 {
			u, ok = l[0], true
			if len(l) > 1 {
				c.drop(lv.boxURL.at, "vm.box_url", "den takes one box_url: the first is written")
			}
		}
		switch {
		case !ok || u == "":
			c.drop(lv.boxURL.at, "vm.box_url", "%s is not a URL", ruby(lv.boxURL.v))
			lv.boxURL = nil
		case strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://"):
			lv.boxURL = &sv{u, lv.boxURL.at}
		case strings.Contains(u, "://"):
			c.drop(lv.boxURL.at, "vm.box_url", "den fetches boxes over http and https only")
			lv.boxURL = nil
		default:
			lv.boxURL = &sv{c.projectPath(strings.TrimPrefix(u, "file://")), lv.boxURL.at}
		}
	}
	if lv.boxVersion != nil {
		if _, ok := str(lv.boxVersion.v); !ok {
			c.drop(lv.boxVersion.at, "vm.box_version", "%s is not a version constraint", ruby(lv.boxVersion.v))
			lv.boxVersion = nil
		}
	}
}

// dropBoxSource drops box_version and box_url of a box den does not use.
func (c *conv) dropBoxSource(lv *level, box string) {
	if lv.boxVersion != nil {
		c.drop(lv.boxVersion.at, "vm.box_version", "belongs to %q, which den does not use", box)
		lv.boxVersion = nil
	}
	if lv.boxURL != nil {
		c.drop(lv.boxURL.at, "vm.box_url", "belongs to %q, which den does not use", box)
		lv.boxURL = nil
	}
}
