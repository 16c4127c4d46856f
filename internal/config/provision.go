package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Provisioner types.
const (
	ProvisionShell = "shell"
	ProvisionFile  = "file"
)

// When a provisioner runs.
const (
	RunOnce   = "once"   // on the machine's first up, then only when asked for
	RunAlways = "always" // on every up and provision
	RunNever  = "never"  // only when named with --provision-with
)

// Provision is a decoded provision block: a shell script to run in the guest
// or a host file or folder to copy into it.
type Provision struct {
	Type string // ProvisionShell or ProvisionFile
	Name string // as written, or "<type>-<n>", n counting the machine's provisioners from 1
	Run  string // RunOnce, RunAlways or RunNever

	// Shell: exactly one of Inline and Path is set.
	Inline     []string // commands, one per line of the script
	Path       string   // absolute host path of the script
	Args       []string // positional arguments of the Path script
	Env        []KV     // environment variables, in source order
	Privileged bool     // run as root with sudo (default true)

	// File.
	Source      string // absolute host path of the file or folder to copy
	Destination string // absolute, clean guest path the copy gets

	DefRange  hcl.Range // the block's header
	TypeRange hcl.Range // the block's type label
}

var shellSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name"}, {Name: "inline"}, {Name: "path"}, {Name: "args"},
		{Name: "env"}, {Name: "privileged"}, {Name: "run"},
	},
}

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "name"}, {Name: "source", Required: true}, {Name: "destination", Required: true}, {Name: "run"},
	},
}

// provision is a decoded provision block and where its name was written.
type provision struct {
	Provision
	nameRange *hcl.Range // nil: no name written
}

var (
	provisionNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$`)
	envNameRE       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// provisions decodes and validates the provision blocks of one level.
func (l *loader) provisions(blocks hcl.Blocks) []provision {
	var out []provision
	names := map[string]hcl.Range{}
	for _, b := range blocks {
		p, ok := l.provision(b)
		if !ok {
			continue
		}
		if p.nameRange != nil {
			if first, dup := names[p.Name]; dup {
				l.errorf(*p.nameRange, "Duplicate provisioner name",
					"A provisioner named %q is already defined at %s; names must be unique within a machine.", p.Name, loc(first))
				continue
			}
			names[p.Name] = *p.nameRange
		}
		out = append(out, p)
	}
	return out
}

// mergeProvisions lists a machine's provisioners: the top level's, then the
// machine's own. A machine's provisioner with the same name as a top-level
// one takes its place (and its position), so a machine can change or, with
// a no-op, neutralise an inherited step. Unnamed provisioners are then
// called "<type>-<n>", n being their 1-based position in the merged list.
func (l *loader) mergeProvisions(top, own []provision) []Provision {
	list := slices.Clone(top)
	for _, p := range own {
		i := -1
		if p.nameRange != nil {
			i = slices.IndexFunc(list, func(q provision) bool { return q.nameRange != nil && q.Name == p.Name })
		}
		if i >= 0 {
			list[i] = p
		} else {
			list = append(list, p)
		}
	}
	written := map[string]hcl.Range{}
	for _, p := range list {
		if p.nameRange != nil {
			written[p.Name] = *p.nameRange
		}
	}
	out := make([]Provision, len(list))
	for i, p := range list {
		if p.nameRange == nil {
			p.Name = fmt.Sprintf("%s-%d", p.Type, i+1)
			if r, clash := written[p.Name]; clash {
				l.errorf(r, "Duplicate provisioner name",
					"%q is also the name of the unnamed provisioner at %s (unnamed provisioners are called <type>-<n>, n counting the machine's provisioners from 1); choose another name.",
					p.Name, loc(p.DefRange))
			}
		}
		out[i] = p.Provision
	}
	return out
}

// provision decodes one provision block.
func (l *loader) provision(b *hcl.Block) (provision, bool) {
	p := provision{Provision: Provision{Type: b.Labels[0], Run: RunOnce, DefRange: b.DefRange, TypeRange: b.LabelRanges[0]}}
	var schema *hcl.BodySchema
	switch p.Type {
	case ProvisionShell:
		schema = shellSchema
	case ProvisionFile:
		schema = fileSchema
	default:
		l.errorf(b.LabelRanges[0], "Unsupported provisioner",
			`den has no %q provisioner: use provision "shell" or provision "file".`, p.Type)
		return p, false
	}
	c, diags := b.Body.Content(schema)
	l.diags = append(l.diags, diags...)
	n := len(l.diags)
	attrs := c.Attributes

	if a := attrs["name"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			p.Name = v.AsString()
			p.nameRange = a.Expr.Range().Ptr()
			if !provisionNameRE.MatchString(p.Name) {
				l.errorf(a.Expr.Range(), "Invalid provisioner name",
					`%q is not a provisioner name: use 1 to 63 letters, digits, "_", "." and "-", not starting with "." or "-", e.g. "deps".`, p.Name)
			}
		}
	}
	if a := attrs["run"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			p.Run = v.AsString()
			if p.Run != RunOnce && p.Run != RunAlways && p.Run != RunNever {
				l.errorf(a.Expr.Range(), "Invalid run value",
					`run must be %q (the default: on the first up, and again with 'den provision'), %q (on every up and provision) or %q (only when named with --provision-with), not %q.`, RunOnce, RunAlways, RunNever, p.Run)
			}
		}
	}
	if p.Type == ProvisionShell {
		l.shell(&p.Provision, b, attrs)
	} else {
		l.file(&p.Provision, attrs)
	}
	return p, len(l.diags) == n && !diags.HasErrors()
}

// shell decodes the attributes of a provision "shell" block.
func (l *loader) shell(p *Provision, b *hcl.Block, attrs hcl.Attributes) {
	p.Privileged = true
	p.Inline, p.Path, _, p.Args, p.Env = l.script(b.DefRange, attrs, scriptOwner{
		who: "A shell provisioner", what: `provision "shell"`, command: "make install", file: "scripts/setup.sh",
	})
	if a := attrs["privileged"]; a != nil {
		if v, ok := l.value(a, cty.Bool); ok {
			p.Privileged = v.True()
		}
	}
}

// scriptOwner names, for the messages of script, what runs the script.
type scriptOwner struct {
	who     string // "A shell provisioner"
	what    string // as den.hcl names it: provision "shell"
	command string // an example command: make install
	file    string // an example script: scripts/setup.sh
}

// script decodes the commands a shell provisioner or a trigger runs:
// inline commands or the script at path (exactly one), args (for the
// script only) and env.
func (l *loader) script(def hcl.Range, attrs hcl.Attributes, o scriptOwner) (inline []string, path string, pathRange hcl.Range, args []string, env []KV) {
	in, pa := attrs["inline"], attrs["path"]
	switch {
	case in != nil && pa != nil:
		l.errorf(pa.NameRange, "Both inline and path",
			"%s runs either inline commands or the script at path, not both: remove one (inline is at %s).", o.who, loc(in.NameRange))
	case in == nil && pa == nil:
		l.errorf(def, "Missing inline or path",
			`%s needs the commands to run: inline = ["%s"], or path = "%s" for a script in the project.`, o.what, o.command, o.file)
	case in != nil:
		if list, ok := l.stringList(in); ok {
			inline = list
			if len(list) == 0 {
				l.errorf(in.Expr.Range(), "Empty inline", `inline must hold at least one command, e.g. ["%s"].`, o.command)
			}
		}
	default:
		if v, ok := l.value(pa, cty.String); ok {
			path, _ = l.projectPath(v.AsString(), pa.Expr.Range(), true)
			pathRange = pa.Expr.Range()
		}
	}
	if a := attrs["args"]; a != nil {
		if pa == nil {
			l.errorf(a.NameRange, "Arguments without a script",
				"args are passed to the script named by path; inline commands take none: write the arguments into the commands.")
		} else if list, ok := l.stringList(a); ok {
			args = list
		}
	}
	if a := attrs["env"]; a != nil {
		env = l.env(a)
	}
	return inline, path, pathRange, args, env
}

// file decodes the attributes of a provision "file" block.
func (l *loader) file(p *Provision, attrs hcl.Attributes) {
	if a := attrs["source"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			p.Source, _ = l.projectPath(v.AsString(), a.Expr.Range(), false)
		}
	}
	if a := attrs["destination"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			p.Destination = v.AsString()
			switch dst := p.Destination; {
			case !strings.HasPrefix(dst, "/"):
				l.errorf(a.Expr.Range(), "Relative destination",
					`The destination %q must be an absolute guest path, e.g. "/etc/app/app.ini".`, dst)
			case filepath.Clean(dst) != dst:
				l.errorf(a.Expr.Range(), "Invalid destination",
					"The destination %q is not clean: write %q. It names the copy itself, not the folder it goes into.", dst, filepath.Clean(dst))
			case dst == "/":
				l.errorf(a.Expr.Range(), "Invalid destination",
					`The destination names the copy itself, so it cannot be "/": write the full path, e.g. "/etc/app/app.ini".`)
			}
		}
	}
}

// stringList evaluates a as a list of strings.
func (l *loader) stringList(a *hcl.Attribute) ([]string, bool) {
	v, ok := l.value(a, cty.List(cty.String))
	if !ok {
		return nil, false
	}
	list := []string{}
	for _, e := range v.AsValueSlice() {
		if e.IsNull() {
			l.errorf(a.Expr.Range(), "Invalid list", "%s must be a list of strings without null elements.", a.Name)
			return nil, false
		}
		list = append(list, e.AsString())
	}
	return list, true
}

// env decodes env = { NAME = "value", … }, in source order.
func (l *loader) env(a *hcl.Attribute) []KV {
	type pair struct {
		key, value cty.Value
		keyRange   hcl.Range
		valueRange hcl.Range
	}
	var pairs []pair
	if items, diags := hcl.ExprMap(a.Expr); !diags.HasErrors() {
		for _, it := range items {
			k, kd := it.Key.Value(l.ctx)
			v, vd := it.Value.Value(l.ctx)
			l.diags = append(l.diags, kd...)
			l.diags = append(l.diags, vd...)
			if !kd.HasErrors() && !vd.HasErrors() {
				pairs = append(pairs, pair{k, v, it.Key.Range(), it.Value.Range()})
			}
		}
	} else {
		v, ok := l.value(a, cty.Map(cty.String))
		if !ok {
			return nil
		}
		m := v.AsValueMap()
		for _, k := range slices.Sorted(maps.Keys(m)) {
			pairs = append(pairs, pair{cty.StringVal(k), m[k], a.Expr.Range(), a.Expr.Range()})
		}
	}
	var out []KV
	seen := map[string]hcl.Range{}
	for _, p := range pairs {
		k, err := convert.Convert(p.key, cty.String)
		if err != nil || k.IsNull() {
			l.errorf(p.keyRange, "Invalid environment variable name", "An environment variable name must be a string such as \"GREETING\".")
			continue
		}
		key := k.AsString()
		if !envNameRE.MatchString(key) {
			l.errorf(p.keyRange, "Invalid environment variable name",
				"%q is not a shell variable name: use letters, digits and \"_\", not starting with a digit, e.g. \"APP_ENV\".", key)
			continue
		}
		v, err := convert.Convert(p.value, cty.String)
		if err != nil || v.IsNull() {
			l.errorf(p.valueRange, "Invalid environment variable value", "The value of %q must be a string.", key)
			continue
		}
		if first, dup := seen[key]; dup {
			l.errorf(p.keyRange, "Duplicate environment variable", "%q is already set at %s.", key, loc(first))
			continue
		}
		seen[key] = p.keyRange
		out = append(out, KV{Key: key, Value: v.AsString()})
	}
	return out
}

// projectPath resolves a host path of a provisioner: a relative one starts
// at the project folder and must stay inside it, also through symlinks; an
// absolute one is taken as written. The path must exist and, with fileOnly,
// be a file.
func (l *loader) projectPath(p string, r hcl.Range, fileOnly bool) (string, bool) {
	if p == "" {
		l.errorf(r, "Empty path", `Name a file: relative paths start at the folder of %s, e.g. "scripts/setup.sh".`, FileName)
		return "", false
	}
	abs := filepath.Clean(p)
	if !filepath.IsAbs(abs) {
		if !within(".", abs) {
			l.errorf(r, "Path outside the project",
				"%q leaves the project folder: a relative path must stay inside it. Use an absolute path for a file elsewhere.", p)
			return "", false
		}
		abs = filepath.Join(l.dir, abs)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.errorf(r, "File not found", "%q does not exist: create it or fix the path (relative paths start at the folder of %s).", p, FileName)
		return "", false
	case err != nil:
		l.errorf(r, "File not readable", "%s.", err)
		return "", false
	case fileOnly && !fi.Mode().IsRegular():
		l.errorf(r, "Script is not a file", "%q is not a regular file: path names the script to run.", p)
		return "", false
	case !fi.Mode().IsRegular() && !fi.IsDir():
		l.errorf(r, "Not a file or folder", "%q is neither a regular file nor a folder: den copies only those.", p)
		return "", false
	}
	if !filepath.IsAbs(p) {
		real, err1 := filepath.EvalSymlinks(abs)
		realDir, err2 := filepath.EvalSymlinks(l.dir)
		if err1 == nil && err2 == nil && !within(realDir, real) {
			l.errorf(r, "Path outside the project",
				"%q leads through a symlink to %q, outside the project folder; write the absolute path if you mean it.", p, real)
			return "", false
		}
	}
	return abs, true
}
