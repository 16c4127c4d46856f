// Package config finds, decodes and validates den's project file, den.hcl,
// and renders its diagnostics as file:line:col, the source line and a caret.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/den-dev/den/internal/version"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// FileName is the name of den's project file.
const FileName = "den.hcl"

// DefaultBridge is the host bridge a machine attaches to when den.hcl names none.
const DefaultBridge = "lxcbr0"

// DefaultGuest is where the project folder is mounted in the guest unless
// den.hcl says otherwise.
const DefaultGuest = "/den"

// MinMemory is the smallest memory limit den accepts, in bytes.
const MinMemory = 32 << 20

// Project is a decoded and validated den.hcl.
type Project struct {
	File     string     // absolute path of den.hcl
	Dir      string     // absolute project folder
	Machines []*Machine // in file order; exactly one, "default", without machine blocks
	// Warnings are diagnostics about settings that are valid but worth a
	// second look (privileged = true); Files holds the sources their
	// snippets come from (WriteDiagnostics).
	Warnings hcl.Diagnostics
	Files    map[string]*hcl.File
}

// Machine returns the machine called name.
func (p *Project) Machine(name string) (*Machine, bool) {
	for _, m := range p.Machines {
		if m.Name == name {
			return m, true
		}
	}
	return nil, false
}

// Machine is one machine of a project, with the top-level settings merged in.
type Machine struct {
	Name       string
	Box        string
	BoxRange   hcl.Range // the box value, for errors reported later (e.g. box not installed)
	BoxVersion string    // box_version as written, e.g. ">= 1.2, < 2" (valid for version.ParseConstraints); "" allows any
	BoxURL     string    // box_url: where up gets a missing box, an http(s) URL (catalog or box file) or an absolute path; "" unset
	Memory     int64     // bytes; 0 = no limit
	CPUs       int       // 0 = no limit
	Hostname   string
	Bridge     string // the LXC bridge; for provider lxd, LXD.Network
	// Provider is the engine den.hcl names for the machine: ProviderLXC,
	// ProviderLXD, or "" for den's default (lxc); ProviderRange is where
	// den.hcl chose it (the machine's header when it did not).
	Provider      string
	ProviderRange hcl.Range
	LXD           *LXD // provider lxd's settings; nil for lxc
	Synced        []SyncedFolder
	LXCConfig     []KV        // raw LXC keys in source order, machine keys overriding top-level ones
	Provisions    []Provision // top-level ones, then the machine's own (one named like a top-level one takes its place)
	Forwards      []Forward   // top-level ones first, then the machine's own
	DefRange      hcl.Range   // the machine block's header; the start of the file for "default"
	Primary       bool        // the machine ssh and other single-machine commands pick when none is named
	SSH           SSH         // ssh { forward_agent, forward_env }

	// Where memory, cpus and bridge were set (the top level's or the
	// machine block's); the zero Range when unset.
	MemoryRange, CPUsRange, BridgeRange hcl.Range
	// Network is where eth0 joins: NetworkBridge (the default: the host
	// bridge Bridge names) or NetworkProject (the project's own network).
	// NetworkRange is where it was set (zero when unset).
	Network      string
	NetworkRange hcl.Range
	// PrivateIP is the machine's fixed address on the project's network
	// (network "private" { ip = "..." }); the zero Addr when none.
	// PrivateRange is where it was set.
	PrivateIP    netip.Addr
	PrivateRange hcl.Range
	// Privileged runs the machine without a user namespace of its own:
	// guest root is host root. An explicit opt-in, which validate warns
	// about; PrivilegedRange is where it was set.
	Privileged      bool
	PrivilegedRange hcl.Range
	// Nesting lets the machine run containers (LXC, Docker, Podman) itself.
	Nesting  bool
	Triggers []Trigger // the top level's that are for this machine, then its own, in file order

	// Storage is the store provider lxc makes the machine's filesystem in:
	// StorageOverlay, StorageBtrfs, or "" (storage = "auto", the default:
	// the store DEN_HOME gets). A machine keeps the store it was made
	// with. StorageRange is where it was set (zero when unset).
	Storage      string
	StorageRange hcl.Range

	// Autostart marks a machine 'den autostart' brings up when the host
	// boots; machines of a lower AutostartOrder come up first, and after
	// each group den waits the longest AutostartDelay of its machines
	// (LXC's lxc.start.auto, lxc.start.order and lxc.start.delay).
	Autostart      bool
	AutostartOrder int
	AutostartDelay time.Duration
}

// SyncedFolder is a host folder shown in the guest: bind-mounted, or
// copied with rsync (type = "rsync", as Vagrant's).
type SyncedFolder struct {
	Host     string // absolute, cleaned
	Guest    string // absolute, cleaned
	ReadOnly bool
	Range    hcl.Range // the block's host label; zero for the default /den folder
	Type     string    // FolderBind or FolderRsync
	Exclude  []string  // rsync only: patterns rsync leaves out (--exclude)
	DefRange hcl.Range // the synced_folder block; zero for the default one
}

// The synced folder types.
const (
	FolderBind  = "bind"  // the host folder itself, mounted (a server on this host)
	FolderRsync = "rsync" // a copy made at up and reload, and by 'den rsync'
)

// KV is one raw LXC configuration key and its value.
type KV struct {
	Key   string
	Value string
	Range hcl.Range // where the key is written (lxc config keys)
}

// Find returns the den.hcl in dir or in its nearest parent.
func Find(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", FileName, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		p := filepath.Join(d, FileName)
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			return p, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission):
			return "", fmt.Errorf("find %s: %w", FileName, err)
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s in %q or any parent; run 'den init' to create one", FileName, abs)
		}
	}
}

// settingsSchema is what den.hcl's top level and a machine block may hold.
var settingsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "box"}, {Name: "box_version"}, {Name: "box_url"}, {Name: "memory"}, {Name: "cpus"}, {Name: "hostname"}, {Name: "bridge"}, {Name: "primary"}, {Name: "privileged"}, {Name: "nesting"},
		{Name: "autostart"}, {Name: "autostart_order"}, {Name: "autostart_delay"}, {Name: "network"}, {Name: "provider"}, {Name: "storage"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "synced_folder", LabelNames: []string{"host"}},
		{Type: "lxc"},
		{Type: "lxd"},
		{Type: "provision", LabelNames: []string{"type"}},
		{Type: "forward"},
		{Type: "machine", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "ssh"},
		{Type: "trigger", LabelNames: []string{"when", "command"}},
		{Type: "network", LabelNames: []string{"type"}},
	},
}

var folderSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "guest"}, {Name: "read_only"}, {Name: "disabled"}, {Name: "type"}, {Name: "exclude"}},
}

var lxcSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "config", Required: true}},
}

// layer is the validated settings of the top level or of one machine block.
type layer struct {
	ssh          *sshLayer
	privileged   *bool
	privRange    hcl.Range
	nesting      *bool
	primary      *bool
	primaryRange hcl.Range
	box          *string
	boxRange     hcl.Range
	boxVersion   *string
	boxURL       *string
	memory       *int64
	cpus         *int
	hostname     *string
	bridge       *string
	folders      []folder
	lxc          []KV
	provisions   []provision
	forwards     []Forward

	// the values' ranges, for diagnostics made after decoding
	memoryRange, cpusRange, bridgeRange hcl.Range
	triggers                            []trigger
	network                             *string
	networkRange                        hcl.Range
	privateIP                           netip.Addr
	privateRange                        hcl.Range
	autostart                           *bool
	order                               *int
	delay                               *time.Duration
	provider                            *string
	provRange                           hcl.Range
	lxcRange                            *hcl.Range // the lxc block, when there is one
	lxd                                 *lxdLayer
	storage                             *string // "" for "auto"
	storageRange                        hcl.Range
}

// folder is a validated synced_folder block.
type folder struct {
	SyncedFolder
	hasGuest bool
	disabled bool
}

// Load reads, decodes and validates the den.hcl at path. Any problem is
// returned as a *DiagError; its ranges name the file as path was given, or
// relative to the current folder when it lies below it. env() reads this
// process's environment.
func Load(path string) (*Project, error) { return LoadWith(path, LoadOptions{}) }

// LoadOptions tune LoadWith, for a front end that loads den.hcl on
// someone else's behalf (den serve).
type LoadOptions struct {
	// Name is how diagnostics name the file (default: as Load does).
	Name string
	// Getenv is what env() reads (default os.Getenv); a server passes the
	// environment its client sent, never its own.
	Getenv func(string) string
}

// LoadWith is Load with options.
func LoadWith(path string, opts LoadOptions) (*Project, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &DiagError{Diags: hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot find the current folder",
			Detail:   err.Error(),
		}}}
	}
	name := displayName(path, abs)
	if opts.Name != "" {
		name = opts.Name
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		return nil, &DiagError{Diags: hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read " + name,
			Detail:   err.Error(),
		}}}
	}
	parser := hclparse.NewParser()
	f, diags := parser.ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, &DiagError{Files: parser.Files(), Diags: parseErrors(src, name, diags)}
	}
	ctx := EvalContext()
	if opts.Getenv != nil {
		ctx.Functions["env"] = newEnvFunc(opts.Getenv)
	}
	l := &loader{dir: filepath.Dir(abs), ctx: ctx, files: parser.Files()}
	p := l.project(f.Body)
	l.checkForwards(p)
	p.File = abs
	p.Warnings, p.Files = l.warnings, parser.Files()
	if l.diags.HasErrors() {
		sort.SliceStable(l.diags, func(i, j int) bool {
			return subjectByte(l.diags[i]) < subjectByte(l.diags[j])
		})
		return nil, &DiagError{Files: parser.Files(), Diags: l.diags}
	}
	return p, nil
}

func subjectByte(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return -1
	}
	return d.Subject.Start.Byte
}

// displayName is how diagnostics name the file: as given when relative,
// else relative to the current folder when below it, else absolute.
func displayName(path, abs string) string {
	if !filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, abs); err == nil && filepath.IsLocal(rel) {
			return rel
		}
	}
	return abs
}

// EvalContext is the context den.hcl expressions are evaluated in: it has
// the env function and no variables. Decode Forward bodies with it.
func EvalContext() *hcl.EvalContext {
	return &hcl.EvalContext{Functions: map[string]function.Function{"env": envFunc}}
}

// envFunc is env("NAME") (empty when unset) and env("NAME", "default")
// (the default when unset or empty).
var envFunc = newEnvFunc(os.Getenv)

// newEnvFunc is env() reading getenv.
func newEnvFunc(getenv func(string) string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable, or a default when it is unset or empty.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 2 {
				return cty.NilVal, function.NewArgErrorf(2, "env takes a name and an optional default, not %d arguments", len(args))
			}
			v := getenv(args[0].AsString())
			if v == "" && len(args) == 2 {
				v = args[1].AsString()
			}
			return cty.StringVal(v), nil
		},
	})
}

type loader struct {
	dir      string
	ctx      *hcl.EvalContext
	diags    hcl.Diagnostics
	warnings hcl.Diagnostics
	files    map[string]*hcl.File
}

// errorf adds an error diagnostic, unless the same one is already there
// (settings of the top level are checked again for each machine).
func (l *loader) errorf(subject hcl.Range, summary, detail string, args ...any) {
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detail, args...),
		Subject:  subject.Ptr(),
	}
	for _, e := range l.diags {
		if e.Subject != nil && *e.Subject == subject && e.Summary == d.Summary && e.Detail == d.Detail {
			return
		}
	}
	l.diags = append(l.diags, d)
}

var machineNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

func (l *loader) project(body hcl.Body) *Project {
	p := &Project{Dir: l.dir}
	top, machines := l.layer(body, true)
	if len(machines) == 0 {
		start := body.MissingItemRange()
		m := l.machine("default", top, &layer{}, start)
		if m.Box == "" && !l.diags.HasErrors() {
			l.errorf(start, "Missing box", `%s must name the box to create the machine from, e.g. box = "debian/bookworm"; 'den box list' shows the installed boxes.`, start.Filename)
		}
		p.Machines = append(p.Machines, m)
		l.checkNetworks(p)
		l.checkTriggerMachines(p, top.triggers, nil)
		l.checkHostScripts(p, top.triggers)
		l.checkEngineBlocks(top, p)
		return p
	}
	seen := map[string]hcl.Range{}
	var primary hcl.Range
	own := map[string][]trigger{}
	allTriggers := top.triggers
	for _, b := range machines {
		name := b.Labels[0]
		if !machineNameRE.MatchString(name) {
			l.errorf(b.LabelRanges[0], "Invalid machine name",
				"%q is not a machine name: use 1 to 31 lower-case letters, digits and hyphens, starting with a letter, e.g. \"db\".", name)
		}
		if first, dup := seen[name]; dup {
			l.errorf(b.DefRange, "Duplicate machine",
				"A machine named %q is already defined at %s; machine names must be unique.", name, loc(first))
		} else {
			seen[name] = b.DefRange
		}
		ly, _ := l.layer(b.Body, false)
		m := l.machine(name, top, ly, b.DefRange)
		if _, dup := own[name]; !dup {
			own[name] = ly.triggers
		}
		allTriggers = append(allTriggers, ly.triggers...)
		if m.Box == "" && !l.diags.HasErrors() {
			l.errorf(b.DefRange, "Missing box", `Machine %q has no box: set box = "debian/bookworm" at the top level (every machine inherits it) or in this block.`, name)
		}
		if ly.primary != nil && *ly.primary {
			if primary.Filename != "" {
				l.errorf(ly.primaryRange, "Two primary machines", "Only one machine can be primary; another is marked at %s.", loc(primary))
			}
			m.Primary, primary = true, ly.primaryRange
		}
		p.Machines = append(p.Machines, m)
		l.checkEngineBlocks(ly, &Project{Machines: []*Machine{m}})
	}
	l.checkNetworks(p)
	l.checkTriggerMachines(p, top.triggers, own)
	l.checkHostScripts(p, allTriggers)
	l.checkEngineBlocks(top, p)
	return p
}

// checkEngineBlocks refuses an lxc or lxd block of ly (the top level, or a
// machine block) when none of machines uses that provider: its settings
// would do nothing.
func (l *loader) checkEngineBlocks(ly *layer, p *Project) {
	uses := map[string]bool{}
	for _, m := range p.Machines {
		uses[cmp.Or(m.Provider, ProviderLXC)] = true
	}
	if ly.lxcRange != nil && !uses[ProviderLXC] {
		l.errorf(*ly.lxcRange, "lxc block without an lxc machine", `The lxc block sets LXC keys, but no machine it applies to uses provider "lxc": remove it, or use an lxd block's config for provider "lxd".`)
	}
	if ly.lxd != nil && !uses[ProviderLXD] {
		l.errorf(ly.lxd.def, "lxd block without an lxd machine", `The lxd block applies to machines with provider = "lxd", and none it applies to has it: add provider = "lxd" beside it, or remove it.`)
	}
}

// machine merges a machine block's settings over the top level's.
func (l *loader) machine(name string, top, own *layer, def hcl.Range) *Machine {
	m := &Machine{Name: name, DefRange: def, Bridge: DefaultBridge, Network: NetworkBridge, Hostname: sanitizeHostname(name), ProviderRange: def}
	if name == "default" {
		m.Hostname = sanitizeHostname(filepath.Base(l.dir))
	}
	for _, ly := range []*layer{top, own} {
		if ly.box != nil {
			m.Box, m.BoxRange = *ly.box, ly.boxRange
		}
		if ly.boxVersion != nil {
			m.BoxVersion = *ly.boxVersion
		}
		if ly.boxURL != nil {
			m.BoxURL = *ly.boxURL
		}
		if ly.memory != nil {
			m.Memory, m.MemoryRange = *ly.memory, ly.memoryRange
		}
		if ly.cpus != nil {
			m.CPUs, m.CPUsRange = *ly.cpus, ly.cpusRange
		}
		if ly.hostname != nil {
			m.Hostname = *ly.hostname
		}
		if ly.bridge != nil {
			m.Bridge, m.BridgeRange = *ly.bridge, ly.bridgeRange
		}
		if ly.privileged != nil {
			m.Privileged, m.PrivilegedRange = *ly.privileged, ly.privRange
		}
		if ly.network != nil {
			m.Network, m.NetworkRange = *ly.network, ly.networkRange
		}
		if ly.privateIP.IsValid() {
			m.PrivateIP, m.PrivateRange = ly.privateIP, ly.privateRange
		}
		if ly.nesting != nil {
			m.Nesting = *ly.nesting
		}
		if ly.storage != nil {
			m.Storage, m.StorageRange = *ly.storage, ly.storageRange
		}
		if ly.autostart != nil {
			m.Autostart = *ly.autostart
		}
		if ly.order != nil {
			m.AutostartOrder = *ly.order
		}
		if ly.delay != nil {
			m.AutostartDelay = *ly.delay
		}
		ly.ssh.merge(&m.SSH)
		if ly.provider != nil {
			m.Provider, m.ProviderRange = *ly.provider, ly.provRange
		}
		m.Forwards = append(m.Forwards, ly.forwards...)
		for _, kv := range ly.lxc {
			if i := slices.IndexFunc(m.LXCConfig, func(e KV) bool { return e.Key == kv.Key }); i >= 0 {
				m.LXCConfig[i] = kv
			} else {
				m.LXCConfig = append(m.LXCConfig, kv)
			}
		}
	}
	if m.Provider == ProviderLXD {
		m.LXD = mergeLXD(l.files, m.ProviderRange, top.lxd, own.lxd)
		m.Bridge = m.LXD.Network
		m.LXCConfig = nil
	}
	l.checkStorage(m, own.storage == nil)
	m.Synced = l.checkFolderTypes(m, mergeFolders(l.dir, top.folders, own.folders))
	m.Provisions = l.mergeProvisions(top.provisions, own.provisions)
	m.Triggers = mergeTriggers(name, top.triggers, own.triggers)
	return m
}

// layer decodes and validates the settings of body: den.hcl's top level, or
// a machine block. It returns the machine blocks found at the top level.
func (l *loader) layer(body hcl.Body, top bool) (*layer, []*hcl.Block) {
	content, diags := body.Content(settingsSchema)
	l.diags = append(l.diags, diags...)
	ly := &layer{}
	attrs := content.Attributes
	l.locals(content.Blocks.OfType("locals"), top)

	if a := attrs["box"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			box := v.AsString()
			ly.box, ly.boxRange = &box, a.Expr.Range()
			if strings.TrimSpace(box) == "" {
				l.errorf(a.Expr.Range(), "Empty box", `box must name a box, e.g. "debian/bookworm"; 'den box list' shows the installed boxes.`)
			} else if !validBoxName(box) {
				l.errorf(a.Expr.Range(), "Invalid box name",
					`%q is not a box name: write NAME or ORG/NAME with letters, digits, '.', '_' and '-', each part starting with a letter or digit, e.g. "debian/bookworm".`, box)
			}
		}
	}
	if a := attrs["box_version"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			cs := strings.TrimSpace(v.AsString())
			if _, err := version.ParseConstraints(cs); err != nil {
				msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("box_version %q: ", cs))
				l.errorf(a.Expr.Range(), "Invalid box_version",
					`%s. Write conditions separated by commas, each an operator (=, !=, >, <, >=, <=, ~>) and a version, e.g. ">= 1.2, < 2" or "~> 1.2".`, msg)
			} else {
				ly.boxVersion = &cs
			}
		}
	}
	if a := attrs["box_url"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			if u, err := l.boxURL(v.AsString()); err != nil {
				l.errorf(a.Expr.Range(), "Invalid box_url", "%s.", err)
			} else {
				ly.boxURL = &u
			}
		}
	}
	if a := attrs["memory"]; a != nil {
		ly.memory, ly.memoryRange = l.memory(a.Expr), a.Expr.Range()
	}
	if a := attrs["cpus"]; a != nil {
		if v, ok := l.value(a, cty.Number); ok {
			n, acc := v.AsBigFloat().Int64()
			if !v.AsBigFloat().IsInt() || acc != 0 || n < 1 || n > 1<<16 {
				l.errorf(a.Expr.Range(), "Invalid cpus", "cpus must be a positive whole number, e.g. 2; leave it out for no limit.")
			} else {
				cpus := int(n)
				ly.cpus, ly.cpusRange = &cpus, a.Expr.Range()
			}
		}
	}
	if a := attrs["hostname"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			h := v.AsString()
			ly.hostname = &h
			if !validHostname(h) {
				l.errorf(a.Expr.Range(), "Invalid hostname",
					"%q is not a hostname: use letters, digits and hyphens, 1 to 63 per dot-separated label, not starting or ending with a hyphen.", h)
			}
		}
	}
	if a := attrs["primary"]; a != nil {
		if v, ok := l.value(a, cty.Bool); ok {
			if top {
				l.errorf(a.Expr.Range(), "primary outside a machine block", "primary marks one machine of several: put primary = true in that machine's block.")
			} else {
				p := v.True()
				ly.primary, ly.primaryRange = &p, a.Expr.Range()
			}
		}
	}
	if a := attrs["privileged"]; a != nil {
		if v, ok := l.value(a, cty.Bool); ok {
			priv := v.True()
			ly.privileged, ly.privRange = &priv, a.Range
			if priv {
				l.warnings = append(l.warnings, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Privileged machine",
					Detail:   "privileged = true runs the machine without an id range of its own: root in the guest (and so its login user, through sudo) is root on this host, and what it can mount, write in /proc and /sys, or reach through the kernel is the host's. Leave it out unless the machine cannot work unprivileged (nesting = true lets it run containers unprivileged).",
					Subject:  a.Range.Ptr(),
				})
			}
		}
	}
	if a := attrs["nesting"]; a != nil {
		if v, ok := l.value(a, cty.Bool); ok {
			n := v.True()
			ly.nesting = &n
		}
	}
	if a := attrs["provider"]; a != nil {
		ly.provider, ly.provRange = l.provider(a), a.Expr.Range()
	}
	if a := attrs["bridge"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			br := v.AsString()
			ly.bridge, ly.bridgeRange = &br, a.Expr.Range()
			if !validIfName(br) {
				l.errorf(a.Expr.Range(), "Invalid bridge",
					`%q is not a network interface name: use 1 to 15 characters without "/", ":" or spaces, e.g. "lxcbr0".`, br)
			}
		}
	}

	l.autostart(ly, attrs)
	l.storage(ly, attrs)
	blocks := content.Blocks.ByType()
	l.network(ly, attrs, blocks["network"])
	ly.triggers = l.triggers(blocks["trigger"])
	ly.ssh = l.ssh(blocks["ssh"])
	ly.folders = l.folders(blocks["synced_folder"])
	for i, b := range blocks["lxc"] {
		if i > 0 {
			l.errorf(b.DefRange, "Duplicate lxc block", "Only one lxc block is allowed here; another is at %s.", loc(blocks["lxc"][0].DefRange))
			continue
		}
		c, diags := b.Body.Content(lxcSchema)
		l.diags = append(l.diags, diags...)
		if a := c.Attributes["config"]; a != nil {
			ly.lxc = l.lxcConfig(a.Expr)
		}
		ly.lxcRange = b.DefRange.Ptr()
	}
	for i, b := range blocks["lxd"] {
		if i > 0 {
			l.errorf(b.DefRange, "Duplicate lxd block", "Only one lxd block is allowed here; another is at %s.", loc(blocks["lxd"][0].DefRange))
			continue
		}
		ly.lxd = l.lxd(b)
	}
	ly.provisions = l.provisions(blocks["provision"])
	for _, b := range blocks["forward"] {
		if f, ok := l.forward(b); ok {
			ly.forwards = append(ly.forwards, f)
		}
	}
	machines := blocks["machine"]
	if !top {
		for _, m := range machines {
			l.errorf(m.DefRange, "Nested machine block", "machine blocks go at the top level of %s, not inside another machine.", m.DefRange.Filename)
		}
		machines = nil
	}
	return ly, machines
}

// value evaluates attribute a and converts it to ty. It reports false, with
// a diagnostic unless the value is null, when there is no usable value.
func (l *loader) value(a *hcl.Attribute, ty cty.Type) (cty.Value, bool) {
	v, diags := a.Expr.Value(l.ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Incorrect attribute value type",
			Detail:      fmt.Sprintf("Inappropriate value for attribute %q: %s.", a.Name, err),
			Subject:     a.Expr.Range().Ptr(),
			Expression:  a.Expr,
			EvalContext: l.ctx,
		})
		return cty.NilVal, false
	}
	return cv, true
}

// boxURL checks a box_url: an http or https URL with a host, or a path to a
// box file or catalog (relative to the project folder), made absolute.
func (l *loader) boxURL(s string) (string, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return "", errors.New(`box_url is empty: give the http(s) URL of a box catalog or box file, e.g. "https://example.com/box.json", or leave it out`)
	}
	if scheme, _, ok := strings.Cut(t, "://"); ok {
		u, err := url.Parse(t)
		switch {
		case err != nil:
			return "", fmt.Errorf("%q is not a URL: %w", t, err)
		case scheme != "http" && scheme != "https":
			return "", fmt.Errorf("%q: den fetches boxes over http and https only, not %s", t, scheme)
		case u.Host == "":
			return "", fmt.Errorf("URL %q has no host", t)
		}
		return t, nil
	}
	if filepath.IsAbs(t) {
		return filepath.Clean(t), nil
	}
	return filepath.Join(l.dir, t), nil
}

// memory evaluates the memory setting: a size string or a number of bytes.
func (l *loader) memory(expr hcl.Expression) *int64 {
	v, diags := expr.Value(l.ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || v.IsNull() || !v.IsKnown() {
		return nil
	}
	r := expr.Range()
	var n int64
	switch v.Type() {
	case cty.String:
		var err error
		if n, err = ParseSize(v.AsString()); err != nil {
			l.errorf(r, "Invalid size", "%s.", err)
			return nil
		}
		if n < MinMemory {
			l.errorf(r, "Memory too small", "%q is %s; den needs at least 32 MiB (\"32M\"). Leave memory out for no limit.", v.AsString(), formatSize(n))
			return nil
		}
	case cty.Number:
		bf := v.AsBigFloat()
		i, acc := bf.Int64()
		if !bf.IsInt() || acc != 0 || i < 0 {
			l.errorf(r, "Invalid size", "A number for memory is a count of bytes and must be a whole number; or write a size such as \"512M\" or \"1.5GiB\".")
			return nil
		}
		if n = i; n < MinMemory {
			l.errorf(r, "Memory too small", "memory = %d means %s; den needs at least 32 MiB. Did you mean \"%dM\"?", n, formatSize(n), n)
			return nil
		}
	default:
		l.errorf(r, "Incorrect attribute value type", `memory must be a size such as "1G" or a number of bytes, not a %s.`, v.Type().FriendlyName())
		return nil
	}
	return &n
}

// boxNameRE matches NAME or ORG/NAME, as the box store takes them.
var boxNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)

// validBoxName reports whether s can name a box: NAME or ORG/NAME, at most
// 128 characters, without "..".
func validBoxName(s string) bool {
	return len(s) <= 128 && boxNameRE.MatchString(s) && !strings.Contains(s, "..")
}

// hostLabelRE matches one RFC 1123 hostname label.
var hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// validHostname reports whether h is one or more RFC 1123 labels.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabelRE.MatchString(label) {
			return false
		}
	}
	return true
}

// sanitizeHostname turns a folder or machine name into a hostname label.
func sanitizeHostname(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	h := strings.Trim(b.String(), "-")
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	if h == "" {
		return "den"
	}
	return h
}

// validIfName reports whether s can name a Linux network interface.
func validIfName(s string) bool {
	return s != "" && len(s) < 16 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\r\x00")
}

// loc formats the start of r as file:line:col.
func loc(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// vagrantfileRE recognises a Vagrantfile pasted into den.hcl.
var vagrantfileRE = regexp.MustCompile(`(?m)^\s*(Vagrant\.configure\s*\(|Vagrant::Config\.run)`)

// parseErrors makes the syntax errors of den.hcl say what happened once: a
// Vagrantfile (Ruby) is named as such, and a string without its closing
// quote is one error at its line, not one for every line after it.
func parseErrors(src []byte, name string, diags hcl.Diagnostics) hcl.Diagnostics {
	if loc := vagrantfileRE.FindIndex(src); loc != nil {
		line := 1 + strings.Count(string(src[:loc[0]]), "\n")
		r := hcl.Range{Filename: name, Start: hcl.Pos{Line: line, Column: 1, Byte: loc[0]}, End: hcl.Pos{Line: line, Column: 1 + loc[1] - loc[0], Byte: loc[1]}}
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "This looks like a Vagrantfile",
			Detail:   "A Vagrantfile is Ruby; den reads HCL. 'den init --from Vagrantfile' converts one (keep it named Vagrantfile), and 'den init' writes a commented den.hcl to start from.",
			Subject:  &r,
		}}
	}
	var quote *hcl.Diagnostic
	for _, d := range diags {
		if d.Subject == nil || (d.Summary != "Unterminated template string" && d.Summary != "Invalid multi-line string") {
			continue
		}
		if quote == nil || d.Subject.Start.Byte < quote.Subject.Start.Byte {
			quote = d
		}
	}
	if quote == nil {
		return diags
	}
	line := quote.Subject.Start.Line
	// The string opens at the last quote before the end of its line.
	lines := strings.Split(string(src), "\n")
	col, lineStart := 1, 0
	for _, l := range lines[:min(line-1, len(lines))] {
		lineStart += len(l) + 1
	}
	if line-1 < len(lines) {
		if i := strings.LastIndex(lines[line-1], "\""); i >= 0 {
			col = i + 1
		}
	}
	start := hcl.Pos{Line: line, Column: col, Byte: lineStart + col - 1}
	r := hcl.Range{Filename: name, Start: start, End: hcl.Pos{Line: line, Column: col + 1, Byte: start.Byte + 1}}
	out := hcl.Diagnostics{}
	for _, d := range diags {
		if d.Subject != nil && d.Subject.Start.Line < line {
			out = append(out, d)
		}
	}
	return append(out, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Missing closing quote",
		Detail:   fmt.Sprintf("The string that starts here has no closing \" on line %d; den reads the rest of the file as part of it.", line),
		Subject:  &r,
	})
}
