package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// The providers a machine may use; ProviderLXC is the default.
const (
	ProviderLXC = "lxc"
	ProviderLXD = "lxd"
)

// LocalRemote is the LXD remote that means this host's LXD (its unix
// socket), the default.
const LocalRemote = "local"

// LXD is a machine's lxd { } block merged over the top level's: where
// and how the lxd provider makes the machine. Ranges locate each setting,
// so that what the server refuses later (a missing profile, a target
// that is not a member) is reported at its den.hcl line.
type LXD struct {
	Remote      string   // a name from 'den remote list'; LocalRemote (default) is this host's unix socket
	Project     string   // the LXD project; "" is the remote's default one
	Profiles    []string // nil: the server's "default" profile
	StoragePool string   // "" takes the profiles' root disk
	Network     string   // the managed network or host bridge eth0 joins; "" takes the profiles' eth0
	Target      string   // a cluster member, or "@group"
	Config      []KV     // raw instance config keys, applied last
	// Devices are raw devices (name → keys), applied last, in name order.
	Devices map[string]map[string]string
	// Where is the lxd block, or the provider line when there is none:
	// errors about the machine's placement as a whole point there.
	Where hcl.Range
	// Ranges locate each setting: "remote", "project", "profiles",
	// "storage_pool", "network", "target", "config.KEY", "devices.NAME".
	Ranges map[string]hcl.Range
	files  map[string]*hcl.File
}

// IsLocal reports whether the machine lives on this host's LXD.
func (x *LXD) IsLocal() bool { return x == nil || x.Remote == "" || x.Remote == LocalRemote }

// Errorf returns a den.hcl error at the setting field (see Ranges; the
// block when field is "" or unset), rendered like Load's diagnostics.
func (x *LXD) Errorf(field, summary, format string, args ...any) error {
	r, ok := x.Ranges[field]
	if !ok {
		r = x.Where
	}
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...)}
	if r.Filename != "" {
		d.Subject = r.Ptr()
	}
	return &DiagError{Files: x.files, Diags: hcl.Diagnostics{d}}
}

// Engine returns the settings of the block for the machine's provider, as
// provider.Spec.Engine carries them: *LXD for lxd, nil for lxc.
func (m *Machine) Engine() any {
	if m.Provider == ProviderLXD {
		return m.LXD
	}
	return nil
}

var lxdSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "remote"}, {Name: "project"}, {Name: "profiles"}, {Name: "storage_pool"},
		{Name: "network"}, {Name: "target"}, {Name: "config"}, {Name: "devices"},
	},
}

// lxdLayer is one level's lxd block, validated.
type lxdLayer struct {
	strs     map[string]*string // remote, project, storage_pool, network, target
	profiles *[]string
	config   []KV
	devices  map[string]map[string]string
	ranges   map[string]hcl.Range
	def      hcl.Range
}

var (
	lxdNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	lxdTargetRE = regexp.MustCompile(`^@?[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	lxdKeyRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	lxdDevRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// lxdOwnedKeys are the instance keys den sets itself, with what to use
// instead.
var lxdOwnedKeys = []ownedKey{
	{"limits.memory", "use memory"},
	{"limits.cpu", "use cpus"},
	{"raw.idmap", "den maps the project owner's uid for synced folders itself"},
	{"security.privileged", "use privileged = true"},
	{"security.nesting", "use nesting = true"},
	{"security.idmap.isolated", "den gives every machine ids of its own"},
	{"user.den", "den keeps its own settings there"},
	{"volatile", "LXD keeps its own state there"},
	{"image", "these describe the image the machine was made from"},
}

// lxdOwnedDevices are the device names den sets, with what to use instead.
var lxdOwnedDevices = map[string]string{
	"eth0": "use network to choose what eth0 joins",
	"root": "use storage_pool to choose where the machine's disk lives",
}

// lxd decodes and validates one level's lxd block.
func (l *loader) lxd(b *hcl.Block) *lxdLayer {
	c, diags := b.Body.Content(lxdSchema)
	l.diags = append(l.diags, diags...)
	x := &lxdLayer{strs: map[string]*string{}, ranges: map[string]hcl.Range{}, def: b.DefRange}
	for _, name := range []string{"remote", "project", "storage_pool", "network", "target"} {
		a := c.Attributes[name]
		if a == nil {
			continue
		}
		v, ok := l.value(a, cty.String)
		if !ok {
			continue
		}
		s := v.AsString()
		re, what := lxdNameRE, "a name of 1 to 63 letters, digits, '.', '_' and '-'"
		switch name {
		case "target":
			re, what = lxdTargetRE, `a cluster member's name, or "@" and a cluster group`
		case "network":
			if !validIfName(s) {
				l.errorf(a.Expr.Range(), "Invalid network", `%q is not a network name: LXD networks are interface names of 1 to 15 characters, e.g. "lxdbr0".`, s)
				continue
			}
		}
		if !re.MatchString(s) {
			l.errorf(a.Expr.Range(), "Invalid "+name, "%q is not %s.", s, what)
			continue
		}
		x.strs[name] = &s
		x.ranges[name] = a.Expr.Range()
	}
	if a := c.Attributes["profiles"]; a != nil {
		if v, ok := l.value(a, cty.List(cty.String)); ok {
			profiles := []string{}
			bad := false
			for _, p := range v.AsValueSlice() {
				if p.IsNull() || !lxdNameRE.MatchString(p.AsString()) {
					l.errorf(a.Expr.Range(), "Invalid profiles", `profiles is a list of LXD profile names, e.g. ["default", "gpu"].`)
					bad = true
					break
				}
				if slices.Contains(profiles, p.AsString()) {
					l.errorf(a.Expr.Range(), "Duplicate profile", "profile %q is listed twice.", p.AsString())
					bad = true
					break
				}
				profiles = append(profiles, p.AsString())
			}
			if !bad {
				x.profiles = &profiles
				x.ranges["profiles"] = a.Expr.Range()
			}
		}
	}
	if a := c.Attributes["config"]; a != nil {
		x.config = l.lxdConfig(a, x.ranges)
	}
	if a := c.Attributes["devices"]; a != nil {
		x.devices = l.lxdDevices(a, x.ranges)
	}
	return x
}

// lxdConfig decodes lxd { config = { "key" = "value" } }.
func (l *loader) lxdConfig(a *hcl.Attribute, ranges map[string]hcl.Range) []KV {
	var out []KV
	for _, it := range l.stringMap(a.Expr, "lxd config", `{ "boot.autostart" = "true" }`) {
		key, value := it.key, it.value
		if !lxdKeyRE.MatchString(key) {
			l.errorf(it.keyRange, "Invalid LXD key", "%q is not an LXD instance key such as \"boot.autostart\".", key)
			continue
		}
		if use, ok := owned(lxdOwnedKeys, key); ok {
			l.errorf(it.keyRange, "LXD key set by den", "den sets %q itself; %s.", key, use)
			continue
		}
		if strings.ContainsRune(value, 0) {
			l.errorf(it.valueRange, "Invalid LXD value", "The value of %q holds a NUL byte.", key)
			continue
		}
		ranges["config."+key] = it.keyRange
		out = append(out, KV{Key: key, Value: value, Range: it.keyRange})
	}
	return out
}

// lxdDevices decodes lxd { devices = { name = { type = "...", ... } } }.
func (l *loader) lxdDevices(a *hcl.Attribute, ranges map[string]hcl.Range) map[string]map[string]string {
	v, diags := a.Expr.Value(l.ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return nil
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		l.errorf(a.Expr.Range(), "Incorrect attribute value type", `lxd devices is a map of device names to their keys, e.g. { gpu = { type = "gpu" } }, not a %s.`, v.Type().FriendlyName())
		return nil
	}
	r := a.Expr.Range()
	items := map[string]hcl.Range{}
	if kvs, d := hcl.ExprMap(a.Expr); !d.HasErrors() {
		for _, it := range kvs {
			if k, d := it.Key.Value(l.ctx); !d.HasErrors() && k.Type() == cty.String && !k.IsNull() {
				items[k.AsString()] = it.Key.Range()
			}
		}
	}
	out := map[string]map[string]string{}
	m := v.AsValueMap()
	for _, name := range slices.Sorted(maps.Keys(m)) {
		nr := r
		if ir, ok := items[name]; ok {
			nr = ir
		}
		if !lxdDevRE.MatchString(name) || strings.HasPrefix(name, "den-") {
			l.errorf(nr, "Invalid device name", `%q is not a device name den leaves to you: use letters, digits, '.', '_' and '-', not starting with "den-".`, name)
			continue
		}
		if use, ok := lxdOwnedDevices[name]; ok {
			l.errorf(nr, "LXD device set by den", "den sets device %q itself; %s.", name, use)
			continue
		}
		dv := m[name]
		if dv.IsNull() || (!dv.Type().IsObjectType() && !dv.Type().IsMapType()) {
			l.errorf(nr, "Invalid device", `device %q must be a map of its keys, e.g. { type = "disk", source = "/srv", path = "/srv" }.`, name)
			continue
		}
		keys := map[string]string{}
		ok := true
		for k, kv := range dv.AsValueMap() {
			sv, err := convert.Convert(kv, cty.String)
			if err != nil || sv.IsNull() || !lxdKeyRE.MatchString(k) {
				l.errorf(nr, "Invalid device", "device %q: key %q must be a name with a string value.", name, k)
				ok = false
				break
			}
			keys[k] = sv.AsString()
		}
		if !ok {
			continue
		}
		if keys["type"] == "" {
			l.errorf(nr, "Invalid device", `device %q has no type, e.g. type = "disk".`, name)
			continue
		}
		ranges["devices."+name] = nr
		out[name] = keys
	}
	return out
}

// kvItem is one entry of an HCL map of strings.
type kvItem struct {
	key, value           string
	keyRange, valueRange hcl.Range
}

// stringMap decodes a map of strings, keeping each entry's ranges when the
// expression is a literal map.
func (l *loader) stringMap(expr hcl.Expression, what, example string) []kvItem {
	var out []kvItem
	if items, diags := hcl.ExprMap(expr); !diags.HasErrors() {
		for _, it := range items {
			if tr, d := hcl.AbsTraversalForExpr(it.Key); !d.HasErrors() && len(tr) > 1 {
				l.errorf(it.Key.Range(), "Unquoted key", "Quote dotted keys, e.g. %s: unquoted, HCL reads them as variables.", example)
				continue
			}
			k, kd := it.Key.Value(l.ctx)
			v, vd := it.Value.Value(l.ctx)
			l.diags = append(l.diags, kd...)
			l.diags = append(l.diags, vd...)
			if kd.HasErrors() || vd.HasErrors() {
				continue
			}
			ks, err1 := convert.Convert(k, cty.String)
			vs, err2 := convert.Convert(v, cty.String)
			if err1 != nil || ks.IsNull() || err2 != nil || vs.IsNull() {
				l.errorf(it.Key.Range(), "Invalid "+what, "%s maps names to strings, e.g. %s.", what, example)
				continue
			}
			out = append(out, kvItem{ks.AsString(), vs.AsString(), it.Key.Range(), it.Value.Range()})
		}
		return out
	}
	v, diags := expr.Value(l.ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return nil
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		l.errorf(expr.Range(), "Incorrect attribute value type", "%s must be a map of names to strings, e.g. %s, not a %s.", what, example, v.Type().FriendlyName())
		return nil
	}
	m := v.AsValueMap()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		vs, err := convert.Convert(m[k], cty.String)
		if err != nil || vs.IsNull() {
			l.errorf(expr.Range(), "Invalid "+what, "The value of %q must be a string.", k)
			continue
		}
		out = append(out, kvItem{k, vs.AsString(), expr.Range(), expr.Range()})
	}
	return out
}

// mergeLXD merges the top level's lxd block and the machine's own.
func mergeLXD(files map[string]*hcl.File, where hcl.Range, layers ...*lxdLayer) *LXD {
	x := &LXD{Remote: LocalRemote, Where: where, Ranges: map[string]hcl.Range{}, files: files, Devices: map[string]map[string]string{}}
	for _, ly := range layers {
		if ly == nil {
			continue
		}
		x.Where = ly.def
		for name, dst := range map[string]*string{"remote": &x.Remote, "project": &x.Project, "storage_pool": &x.StoragePool, "network": &x.Network, "target": &x.Target} {
			if v := ly.strs[name]; v != nil {
				*dst = *v
			}
		}
		if ly.profiles != nil {
			x.Profiles = *ly.profiles
		}
		for _, kv := range ly.config {
			if i := slices.IndexFunc(x.Config, func(e KV) bool { return e.Key == kv.Key }); i >= 0 {
				x.Config[i] = kv
			} else {
				x.Config = append(x.Config, kv)
			}
		}
		maps.Copy(x.Devices, ly.devices)
		maps.Copy(x.Ranges, ly.ranges)
	}
	return x
}

// checkProvider validates a provider attribute's value.
func (l *loader) provider(a *hcl.Attribute) *string {
	v, ok := l.value(a, cty.String)
	if !ok {
		return nil
	}
	s := v.AsString()
	if s != ProviderLXC && s != ProviderLXD {
		l.errorf(a.Expr.Range(), "Unknown provider", `%q is not a provider den has: use "lxc" (this host's LXC, the default) or "lxd" (a local or remote LXD server).`, s)
		return nil
	}
	return &s
}
