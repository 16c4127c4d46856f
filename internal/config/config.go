// Package config finds, decodes and validates den's project file, den.hcl,
// and renders its diagnostics as file:line:col, the source line and a caret.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

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
}

// SyncedFolder is a host folder shown in the guest: bind-mounted, or
// copied with rsync (type = "rsync", as Vagrant's).
type SyncedFolder struct {
	Host     string // absolute, cleaned
	Guest    string // absolute, cleaned
	ReadOnly bool
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
	Attributes: []hcl.AttributeSchema{{Name: "box"}, {Name: "box_version"}, {Name: "box_url"}, {Name: "memory"}, {Name: "cpus"}, {Name: "hostname"}, {Name: "bridge"}, {Name: "provider"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "synced_folder", LabelNames: []string{"host"}},
		{Type: "lxc"},
		{Type: "lxd"},
		{Type: "provision", LabelNames: []string{"type"}},
		{Type: "forward"},
		{Type: "machine", LabelNames: []string{"name"}},
		{Type: "locals"},
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
	box        *string
	boxRange   hcl.Range
	boxVersion *string
	boxURL     *string
	memory     *int64
	cpus       *int
	hostname   *string
	bridge     *string
	provider   *string
	provRange  hcl.Range
	folders    []folder
	lxc        []KV
	lxcRange   *hcl.Range // the lxc block, when there is one
	lxd        *lxdLayer
	provisions []provision
	forwards   []Forward
}

// folder is a validated synced_folder block.
type folder struct {
	SyncedFolder
	hasGuest bool
	disabled bool
}

// Load reads, decodes and validates the den.hcl at path. Any problem is
// returned as a *DiagError; its ranges name the file as path was given, or
// relative to the current folder when it lies below it.
func Load(path string) (*Project, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &DiagError{Diags: hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot find the current folder",
			Detail:   err.Error(),
		}}}
	}
	name := displayName(path, abs)
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
		return nil, &DiagError{Files: parser.Files(), Diags: diags}
	}
	l := &loader{dir: filepath.Dir(abs), ctx: EvalContext(), files: parser.Files()}
	p := l.project(f.Body)
	l.checkForwards(p)
	p.File = abs
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
var envFunc = function.New(&function.Spec{
	Description: "Returns the value of an environment variable, or a default when it is unset or empty.",
	Params:      []function.Parameter{{Name: "name", Type: cty.String}},
	VarParam:    &function.Parameter{Name: "default", Type: cty.String},
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if len(args) > 2 {
			return cty.NilVal, function.NewArgErrorf(2, "env takes a name and an optional default, not %d arguments", len(args))
		}
		v := os.Getenv(args[0].AsString())
		if v == "" && len(args) == 2 {
			v = args[1].AsString()
		}
		return cty.StringVal(v), nil
	},
})

type loader struct {
	dir   string
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
	files map[string]*hcl.File
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
		l.checkEngineBlocks(top, p)
		return p
	}
	seen := map[string]hcl.Range{}
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
		own, _ := l.layer(b.Body, false)
		m := l.machine(name, top, own, b.DefRange)
		if m.Box == "" && !l.diags.HasErrors() {
			l.errorf(b.DefRange, "Missing box", `Machine %q has no box: set box = "debian/bookworm" at the top level (every machine inherits it) or in this block.`, name)
		}
		p.Machines = append(p.Machines, m)
		l.checkEngineBlocks(own, &Project{Machines: []*Machine{m}})
	}
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
	m := &Machine{Name: name, DefRange: def, Bridge: DefaultBridge, Hostname: sanitizeHostname(name), ProviderRange: def}
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
			m.Memory = *ly.memory
		}
		if ly.cpus != nil {
			m.CPUs = *ly.cpus
		}
		if ly.hostname != nil {
			m.Hostname = *ly.hostname
		}
		if ly.bridge != nil {
			m.Bridge = *ly.bridge
		}
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
	m.Synced = l.checkFolderTypes(m, mergeFolders(l.dir, top.folders, own.folders))
	m.Provisions = l.mergeProvisions(top.provisions, own.provisions)
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
		ly.memory = l.memory(a.Expr)
	}
	if a := attrs["cpus"]; a != nil {
		if v, ok := l.value(a, cty.Number); ok {
			n, acc := v.AsBigFloat().Int64()
			if !v.AsBigFloat().IsInt() || acc != 0 || n < 1 || n > 1<<16 {
				l.errorf(a.Expr.Range(), "Invalid cpus", "cpus must be a positive whole number, e.g. 2; leave it out for no limit.")
			} else {
				cpus := int(n)
				ly.cpus = &cpus
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
	if a := attrs["provider"]; a != nil {
		ly.provider, ly.provRange = l.provider(a), a.Expr.Range()
	}
	if a := attrs["bridge"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			br := v.AsString()
			ly.bridge = &br
			if !validIfName(br) {
				l.errorf(a.Expr.Range(), "Invalid bridge",
					`%q is not a network interface name: use 1 to 15 characters without "/", ":" or spaces, e.g. "lxcbr0".`, br)
			}
		}
	}

	blocks := content.Blocks.ByType()
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
