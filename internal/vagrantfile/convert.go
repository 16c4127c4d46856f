package vagrantfile

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/den-dev/den/internal/config"
)

// conv turns the stand-in's record into den.hcl settings, collecting notes.
type conv struct {
	vfDir, outDir string
	vfName        string // the Vagrantfile as notes name it
	home          string // the host user's home, for ~ in synced folder paths

	notes []Note
	seen  map[string]bool

	top         *level
	machines    []*machine
	byOrig      map[string]*machine
	providers   []string // providers with blocks in the Vagrantfile, for box notes
	hasInline   bool     // the note on how inline scripts run is made
	hostIPNoted bool     // the note on forwards' default address is made
}

// sv is a setting's value and where it was made.
type sv struct {
	v  any
	at at
}

// level is the settings of the top level or of one machine.
type level struct {
	box, boxVersion, boxURL, hostname *sv
	res                               []res
	folders                           []*folder
	forwards                          []*fwd
	networks                          []*network
	projectNet                        *at // a private_network of type dhcp: network = "project"
	provisions                        []*rawProv
	triggers                          []*trigger
	lxc                               []kv
	forwardAgent, forwardEnv          *sv
	override                          []event // the lxc provider's override config: applied last
	defines                           []event // machines: read after the rest, as Vagrant does

	// Decided when the whole Vagrantfile has been read.
	denBox, memory, cpus string
	provs                []*prov
}

type machine struct {
	name, orig string
	at         at
	lv         *level
	primary    bool
}

// res is memory or cpus from a provider block, as den writes it.
type res struct {
	provider, kind, value string
	at                    at
	setting               string
}

type folder struct {
	host, guest        string // host: the label den.hcl gets
	disabled, readOnly bool
	at                 at
}

type fwd struct {
	guest, host      int
	protocol, hostIP string
	at               at
}

type network struct {
	ip string
	at at
}

type kv struct{ key, value string }

// rawProv is a provisioner as the Vagrantfile gave it; provisioners with
// the same name are merged as Vagrant merges them.
type rawProv struct {
	typ, name string
	opts      []opt
	at        at
	first     event
}

// prov is a provision block of den.hcl.
type prov struct {
	typ, name  string
	inline     *string
	path       string // an HCL expression
	args       []string
	env        []kv
	privileged *bool
	run        string
	source     string // an HCL expression
	dest       string
	at         at
}

// trigger is a den trigger block (issue 14's shape).
type trigger struct {
	when, command  string
	name           string
	run, runRemote *action
	onError        string
	onlyOn         []any
	onlyOnAt       at
	at             at
}

type action struct {
	inline     *string
	path       string // an HCL expression
	args       []string
	env        []kv
	privileged *bool
}

func newConv(vfDir, outDir, vfName string) *conv {
	home, _ := os.UserHomeDir()
	return &conv{vfDir: vfDir, outDir: outDir, vfName: vfName, home: home, seen: map[string]bool{}, top: &level{}, byOrig: map[string]*machine{}}
}

// where is "Vagrantfile:12", the file relative to the den.hcl's folder.
func (c *conv) where(a at) string {
	if a.line > 0 {
		return fmt.Sprintf("%s:%d", c.file(a.file), a.line)
	}
	return c.file(a.file)
}

// file names a Ruby file of the project relative to the den.hcl's folder.
func (c *conv) file(f string) string {
	if f == "" {
		return c.vfName
	}
	if !filepath.IsAbs(f) {
		f = filepath.Join(c.vfDir, f)
	}
	return rel(c.outDir, f)
}

// note records a note once.
func (c *conv) note(k NoteKind, a at, setting, reason string, args ...any) {
	n := Note{Kind: k, File: c.file(a.file), Line: a.line, Setting: setting, Reason: fmt.Sprintf(reason, args...)}
	key := fmt.Sprintf("%d|%s", k, n)
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	c.notes = append(c.notes, n)
}

func (c *conv) drop(a at, setting, reason string, args ...any) {
	c.note(Dropped, a, setting, reason, args...)
}

func (c *conv) sortedNotes() []Note {
	out := slices.Clone(c.notes)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		if out[i].File != out[j].File {
			return out[i].File == c.vfName || out[j].File != c.vfName && out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// settingName is how notes name what an event did: vm.box_check_update,
// vmx["memsize"], vm.network "public_network".
func settingName(e event) string {
	name := strings.Join(append(slices.Clone(e.Path), e.Name), ".")
	switch e.Op {
	case "index":
		return strings.Join(e.Path, ".") + "[" + ruby(e.Key) + "]"
	case "call":
		var args []string
		for _, a := range e.Args {
			args = append(args, ruby(a))
		}
		if len(args) > 0 {
			return name + " " + strings.Join(args, ", ")
		}
	}
	return name
}

// convert reads the record.
func (c *conv) convert(out *output) {
	c.level(out.Events, c.top, false)
	for _, cmd := range out.Commands {
		c.note(Computed, at{cmd.File, cmd.Line}, "", "ran %q on this host (as vagrant would): what the Vagrantfile made of it is written as a fixed value", cmd.Command)
	}
	for _, e := range out.Env {
		state := "unset"
		if e.Set {
			state = "set"
		}
		c.note(Computed, at{e.File, e.Line}, "", `reads the environment variable %s (%s now): what the Vagrantfile made of it is written as a fixed value; den.hcl can read the variable at each use with env("%s", "default")`, e.Name, state, e.Name)
	}
	for _, p := range out.Plugins {
		c.note(Computed, at{p.File, p.Line}, "", `Vagrant.has_plugin?(%q) was answered true, so that the plugin's settings are listed here rather than skipped; den loads no Vagrant plugins`, p.Name)
	}
	c.finish()
}

// level reads the events of the top level or of a machine's block.
func (c *conv) level(events []event, lv *level, inMachine bool) {
	for _, e := range events {
		ns := strings.Join(e.Path, ".")
		switch {
		case ns == "vm" && e.Op == "set":
			c.vmSet(e, lv)
		case ns == "vm" && e.Op == "call" && e.Name == "define":
			if inMachine {
				c.drop(e.at(), settingName(e), "a machine cannot define machines: move this block to the top level")
				continue
			}
			lv.defines = append(lv.defines, e)
		case ns == "vm" && e.Op == "call" && e.Name == "provider":
			c.provider(e, lv)
		case ns == "vm" && e.Op == "call" && e.Name == "network":
			c.network(e, lv)
		case ns == "vm" && e.Op == "call" && e.Name == "synced_folder":
			c.folder(e, lv)
		case ns == "vm" && e.Op == "call" && e.Name == "provision":
			c.provision(e, lv)
		case ns == "ssh" && e.Op == "set" && (e.Name == "forward_agent" || e.Name == "forward_env"):
			c.ssh(e, lv)
		case ns == "trigger" && e.Op == "call" && (e.Name == "before" || e.Name == "after"):
			c.trigger(e, lv)
		default:
			c.drop(e.at(), settingName(e), "%s", reasonFor(e))
		}
	}
	// The lxc provider's override config wins over the level's own, as
	// Vagrant applies it last.
	if ov := lv.override; len(ov) > 0 {
		lv.override = nil
		c.level(ov, lv, inMachine)
	}
	// Machines are read last: Vagrant runs define blocks after the rest.
	defines := lv.defines
	lv.defines = nil
	for _, e := range defines {
		c.define(e)
	}
}

var vmReasons = map[string]string{
	"box_check_update":              "den looks for newer box versions only when asked: den box outdated",
	"box_download_checksum":         "den checks the checksums a catalog gives; for a box file use den box add NAME URL --checksum TYPE:HEX",
	"box_download_checksum_type":    "den checks the checksums a catalog gives; for a box file use den box add NAME URL --checksum TYPE:HEX",
	"box_download_insecure":         "den always verifies TLS certificates",
	"box_download_ca_cert":          "den uses the host's certificate authorities",
	"box_download_ca_path":          "den uses the host's certificate authorities",
	"box_download_client_cert":      "den box add has no client certificates",
	"box_download_location_trusted": "den box add has no such option",
	"box_download_options":          "den box add has no such option",
	"box_server_url":                "den has no default box catalog: box_url names one",
	"box_architecture":              "den takes the host's architecture from a catalog",
	"communicator":                  "den reaches every machine over ssh",
	"guest":                         "den machines are Linux containers",
	"boot_timeout":                  "den waits for ssh itself (a container boots in about a second)",
	"graceful_halt_timeout":         "den halt --timeout sets it for one halt",
	"post_up_message":               "den prints no message after up",
	"usable_port_range":             "den does not move a forwarded port that clashes: a port in use is an error at up",
	"base_mac":                      "den derives each machine's MAC from its address",
	"base_address":                  "den picks each machine's address on its bridge",
	"allowed_synced_folder_types":   "den bind-mounts every synced folder",
	"ignore_box_vagrantfile":        "den reads no Vagrantfile inside a box",
	"allow_hosts_modification":      "den writes the machines' names into each guest's /etc/hosts",
	"allow_fstab_modification":      "den bind-mounts synced folders from the host, without the guest's fstab",
	"disk":                          "a container has no disks of its own: it uses the host's filesystem",
	"cloud_init":                    "den runs no cloud-init: use a provision block",
}

var sshReasons = map[string]string{
	"username":         "den logs in as the box's user, with a key of its own for each machine",
	"password":         "den logs in with a key of its own for each machine",
	"private_key_path": "den makes a key for each machine and keeps it in .den/",
	"insert_key":       "den makes a key for each machine and keeps it in .den/",
	"keys_only":        "den logs in with its own key only",
	"verify_host_key":  "den always pins each machine's host key",
	"paranoid":         "den always pins each machine's host key",
	"host":             "den reaches each machine at its own address, port 22",
	"port":             "den reaches each machine at its own address, port 22",
	"guest_port":       "den reaches each machine at its own address, port 22",
	"shell":            "den runs commands with the login user's shell",
	"forward_x11":      "den ssh does not forward X11",
	"pty":              "den ssh gives a terminal when it has one; provisioners run without one",
}

// reasonFor says why den has no place for a setting it does not read.
func reasonFor(e event) string {
	ns := ""
	if len(e.Path) > 0 {
		ns = e.Path[0]
	}
	switch ns {
	case "vm":
		if r, ok := vmReasons[e.Name]; ok && len(e.Path) == 1 {
			return r
		}
		return "den has no such setting"
	case "ssh":
		if r, ok := sshReasons[e.Name]; ok {
			return r
		}
		return "den's ssh has no such option"
	case "trigger":
		return "den triggers are before or after blocks"
	case "vagrant":
		if e.Name == "plugins" {
			return "den loads no Vagrant plugins"
		}
		return "den has no such setting"
	case "winrm", "winssh":
		return "den machines are Linux containers, reached over ssh"
	case "push":
		return "den has no push"
	case "package":
		return "den package --output names the box file"
	case "":
		return "den has no such setting"
	}
	return fmt.Sprintf("config.%s is a Vagrant plugin's setting; den loads no plugins", ns)
}

// vmSet reads config.vm.NAME = value.
func (c *conv) vmSet(e event, lv *level) {
	v := &sv{e.Value, e.at()}
	switch e.Name {
	case "box":
		lv.box = v
	case "box_version":
		lv.boxVersion = v
	case "box_url":
		lv.boxURL = v
	case "hostname":
		h, ok := str(e.Value)
		switch {
		case e.Value == nil:
			lv.hostname = nil
		case !ok || !config.ValidHostname(h):
			c.drop(e.at(), "vm.hostname", "%s is not a hostname den accepts (letters, digits and hyphens, 1 to 63 per dot-separated label)", ruby(e.Value))
		default:
			lv.hostname = v
		}
	default:
		c.drop(e.at(), settingName(e), "%s", reasonFor(e))
	}
}

// define reads config.vm.define NAME do |m| ... end.
func (c *conv) define(e event) {
	orig := e.arg(0)
	m := c.byOrig[orig]
	if m == nil {
		m = &machine{name: c.machineName(orig, e.at()), orig: orig, at: e.at(), lv: &level{}}
		c.byOrig[orig] = m
		c.machines = append(c.machines, m)
	}
	for _, kv := range e.Opts {
		k, _ := str(kv[0])
		setting := fmt.Sprintf("vm.define %q, %s: %s", orig, k, ruby(kv[1]))
		switch k {
		case "primary":
			if b, _ := boolean(kv[1]); b {
				m.primary = true
			}
		case "autostart":
			if b, ok := boolean(kv[1]); ok && !b {
				c.drop(e.at(), setting, "den up without names starts every machine: name the ones to start (den up web db)")
			}
		default:
			c.drop(e.at(), setting, "den has no such machine option")
		}
	}
	if len(e.Blocks) > 0 {
		c.level(e.Blocks[0], m.lv, true)
	}
}

var nameJunkRE = regexp.MustCompile(`[^a-z0-9]+`)

// machineName is a den machine name for a Vagrant one, noted when it differs.
func (c *conv) machineName(orig string, a at) string {
	name := strings.Trim(nameJunkRE.ReplaceAllString(strings.ToLower(orig), "-"), "-")
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = strings.TrimSuffix("m-"+name, "-")
	}
	if len(name) > 31 {
		name = strings.TrimRight(name[:31], "-")
	}
	base := name
	for i := 2; slices.ContainsFunc(c.machines, func(m *machine) bool { return m.name == name }); i++ {
		suffix := fmt.Sprintf("-%d", i)
		name = strings.TrimRight(base[:min(len(base), 31-len(suffix))], "-") + suffix
	}
	if name != orig {
		c.note(Changed, a, fmt.Sprintf("vm.define %q", orig), `den machine names are 1 to 31 lower-case letters, digits and hyphens, starting with a letter: written as machine %q`, name)
	}
	return name
}

// ssh reads config.ssh.forward_agent and forward_env.
func (c *conv) ssh(e event, lv *level) {
	v := &sv{e.Value, e.at()}
	if e.Name == "forward_agent" {
		if _, ok := boolean(e.Value); !ok {
			c.drop(e.at(), "ssh.forward_agent", "%s is not true or false", ruby(e.Value))
			return
		}
		lv.forwardAgent = v
		return
	}
	if _, ok := strList(e.Value); !ok {
		c.drop(e.at(), "ssh.forward_env", "%s is not a list of variable names", ruby(e.Value))
		return
	}
	lv.forwardEnv = v
}

// finish decides what depends on the whole Vagrantfile: boxes, memory and
// cpus, provisioners, forwards that would clash, triggers' machines.
func (c *conv) finish() {
	levels := []*level{c.top}
	for _, m := range c.machines {
		levels = append(levels, m.lv)
	}
	c.boxes()
	c.resources(levels)
	home := "/home/den"
	for _, lv := range levels {
		if lv.denBox != "" && !denBuilds(lv.denBox) {
			home = "/home/vagrant"
		}
	}
	for _, lv := range levels {
		lv.provs = nil
		for _, rp := range lv.provisions {
			if lv != c.top && rp.name != "" {
				// A machine's provisioner named like a top-level one is merged
				// into it, as Vagrant merges them.
				if i := slices.IndexFunc(c.top.provisions, func(t *rawProv) bool { return t.name == rp.name }); i >= 0 {
					t := c.top.provisions[i]
					merged := *rp
					merged.opts = append(slices.Clone(t.opts), rp.opts...)
					merged.typ = t.typ
					rp = &merged
				}
			}
			if p := c.prov(rp, home); p != nil {
				lv.provs = append(lv.provs, p)
			}
		}
	}
	c.forwards()
	c.hostnames()
}

// resources picks memory and cpus: each from the best-ranked provider that
// sets it anywhere; the other providers' values are noted.
func (c *conv) resources(levels []*level) {
	for _, kind := range []string{"memory", "cpus"} {
		best := ""
		for _, lv := range levels {
			for _, r := range lv.res {
				if r.kind == kind && (best == "" || rank(r.provider) < rank(best)) {
					best = r.provider
				}
			}
		}
		for _, lv := range levels {
			for _, r := range lv.res {
				if r.kind != kind {
					continue
				}
				if r.provider != best {
					c.drop(r.at, r.setting, "the %s provider's %s is written instead", providerName(best), kind)
					continue
				}
				if kind == "memory" {
					lv.memory = r.value
				} else {
					lv.cpus = r.value
				}
			}
		}
	}
}

// forwards moves top-level forwards into the first machine when there are
// several (den forwards a host port to one machine) and drops a forward
// whose host port another one already takes.
func (c *conv) forwards() {
	if len(c.machines) > 1 && len(c.top.forwards) > 0 {
		first := c.machines[0]
		for _, f := range c.top.forwards {
			c.note(Changed, f.at, fmt.Sprintf(`vm.network "forwarded_port", guest: %d, host: %d`, f.guest, f.host),
				"written in machine %q only: every machine inherits a top-level forward, and a host port can reach one machine", first.name)
		}
		first.lv.forwards = append(slices.Clone(c.top.forwards), first.lv.forwards...)
		c.top.forwards = nil
	}
	type taken struct {
		f       *fwd
		machine string
	}
	var all []taken
	levels := []*level{c.top}
	names := []string{"default"}
	for _, m := range c.machines {
		levels = append(levels, m.lv)
		names = append(names, m.name)
	}
	for i, lv := range levels {
		lv.forwards = slices.DeleteFunc(lv.forwards, func(f *fwd) bool {
			for _, t := range all {
				if t.f.host == f.host && t.f.protocol == f.protocol && overlap(t.f.hostIP, f.hostIP) {
					c.drop(f.at, fmt.Sprintf(`vm.network "forwarded_port", guest: %d, host: %d`, f.guest, f.host),
						"host port %d/%s is forwarded to machine %q already (%s)", f.host, f.protocol, t.machine, c.where(t.f.at))
					return true
				}
			}
			all = append(all, taken{f, names[i]})
			return false
		})
	}
}

// overlap reports whether two listen addresses ("" is 127.0.0.1) share a port.
func overlap(a, b string) bool {
	if a == "" {
		a = config.DefaultForwardIP
	}
	if b == "" {
		b = config.DefaultForwardIP
	}
	any := func(s string) bool { return s == "0.0.0.0" || s == "::" }
	return a == b || any(a) || any(b)
}

// hostnames notes machines that get one hostname (as in Vagrant, where a
// for loop's variable is shared by the blocks it defines).
func (c *conv) hostnames() {
	by := map[string][]string{}
	where := map[string]at{}
	for _, m := range c.machines {
		h := c.top.hostname
		if m.lv.hostname != nil {
			h = m.lv.hostname
		}
		if h == nil {
			continue
		}
		s, _ := str(h.v)
		by[s] = append(by[s], m.name)
		where[s] = h.at
	}
	for _, h := range slices.Sorted(maps.Keys(by)) {
		if ms := by[h]; len(ms) > 1 {
			c.note(Changed, where[h], "vm.hostname", "machines %s all get the hostname %q, as in Vagrant: a for loop's variable is shared by the define blocks it makes (each block runs after the loop); (1..n).each do |i| gives each its own", strings.Join(quoteAll(ms), ", "), h)
		}
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}
