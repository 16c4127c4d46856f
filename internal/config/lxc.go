package config

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// ownedKeys are the LXC keys den sets itself (the key and everything below
// it), with what to use instead.
var ownedKeys = []ownedKey{
	{"lxc.rootfs", "the rootfs is an overlay of the box: choose it with box"},
	{"lxc.mount", "use synced_folder blocks for bind mounts"},
	{"lxc.net", "use bridge to choose the host bridge eth0 joins"},
	{"lxc.uts.name", "use hostname"},
	{"lxc.hook", "den runs no hooks on the host: use provision blocks, which run in the guest"},
	{"lxc.idmap", "den manages the id map"},
	{"lxc.include", "den includes LXC's common configuration itself"},
	{"lxc.log", "den keeps the LXC log in .den/ beside the machine"},
	{"lxc.cgroup.memory", "use memory"},
	{"lxc.cgroup2.memory", "use memory"},
	{"lxc.cgroup.cpuset.cpus", "use cpus"},
	{"lxc.cgroup2.cpuset.cpus", "use cpus"},
	{"lxc.ephemeral", "an ephemeral container deletes itself on stop: use den destroy"},
}

var lxcKeyRE = regexp.MustCompile(`^lxc(\.[A-Za-z0-9_-]+)+$`)

// lxcConfig decodes and checks lxc { config = { … } }, in source order.
func (l *loader) lxcConfig(expr hcl.Expression) []KV {
	type pair struct {
		key, value cty.Value
		keyRange   hcl.Range
		valueRange hcl.Range
	}
	var pairs []pair
	if items, diags := hcl.ExprMap(expr); !diags.HasErrors() {
		for _, it := range items {
			if tr, d := hcl.AbsTraversalForExpr(it.Key); !d.HasErrors() && len(tr) > 1 {
				l.errorf(it.Key.Range(), "Unquoted LXC key",
					`Quote LXC keys, e.g. "lxc.apparmor.profile" = "unconfined": unquoted, HCL reads them as variables.`)
				continue
			}
			k, kd := it.Key.Value(l.ctx)
			v, vd := it.Value.Value(l.ctx)
			l.diags = append(l.diags, kd...)
			l.diags = append(l.diags, vd...)
			if kd.HasErrors() || vd.HasErrors() {
				continue
			}
			pairs = append(pairs, pair{k, v, it.Key.Range(), it.Value.Range()})
		}
	} else {
		v, diags := expr.Value(l.ctx)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() || v.IsNull() {
			return nil
		}
		if !v.Type().IsObjectType() && !v.Type().IsMapType() {
			l.errorf(expr.Range(), "Incorrect attribute value type",
				`lxc config must be a map of LXC keys to values, e.g. { "lxc.apparmor.profile" = "unconfined" }, not a %s.`, v.Type().FriendlyName())
			return nil
		}
		m := v.AsValueMap()
		for _, k := range slices.Sorted(maps.Keys(m)) {
			pairs = append(pairs, pair{cty.StringVal(k), m[k], expr.Range(), expr.Range()})
		}
	}

	var out []KV
	seen := map[string]hcl.Range{}
	for _, p := range pairs {
		k, err1 := convert.Convert(p.key, cty.String)
		v, err2 := convert.Convert(p.value, cty.String)
		if err1 != nil || k.IsNull() {
			l.errorf(p.keyRange, "Invalid LXC key", "An LXC key must be a string such as \"lxc.apparmor.profile\".")
			continue
		}
		key := k.AsString()
		if err2 != nil || v.IsNull() {
			l.errorf(p.valueRange, "Invalid LXC value", "The value of %q must be a string.", key)
			continue
		}
		value := v.AsString()
		if !lxcKeyRE.MatchString(key) {
			l.errorf(p.keyRange, "Invalid LXC key", "%q is not an LXC key: keys start with \"lxc.\", e.g. \"lxc.apparmor.profile\"; see lxc.container.conf(5).", key)
			continue
		}
		if use, ok := owned(ownedKeys, key); ok {
			l.errorf(p.keyRange, "LXC key set by den", "den sets %q itself; %s.", key, use)
			continue
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			l.errorf(p.valueRange, "Invalid LXC value", "The value of %q must be a single line.", key)
			continue
		}
		if first, dup := seen[key]; dup {
			l.errorf(p.keyRange, "Duplicate LXC key", "%q is already set at %s.", key, loc(first))
			continue
		}
		seen[key] = p.keyRange
		out = append(out, KV{Key: key, Value: value, Range: p.keyRange})
	}
	return out
}
