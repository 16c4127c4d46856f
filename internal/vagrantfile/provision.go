package vagrantfile

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/den-dev/den/internal/config"
)

// provision reads config.vm.provision NAME_OR_TYPE, options do |p| ... end.
// The provisioner is turned into den's when the whole Vagrantfile is read
// (finish), since a machine's provisioner may merge with a top-level one.
func (c *conv) provision(e event, lv *level) {
	first := e.arg(0)
	rp := &rawProv{typ: first, at: e.at(), first: e}
	for _, o := range e.options() {
		if o.key == "type" {
			rp.typ, _ = str(o.value)
			rp.name = first
			continue
		}
		rp.opts = append(rp.opts, o)
	}
	for _, b := range e.blockRest() {
		c.drop(b.at(), fmt.Sprintf("vm.provision %q: %s", first, settingName(b)), "den's provisioners have no such setting")
	}
	if rp.name != "" {
		// A second provisioner with the same name at one level is merged
		// into the first, as in Vagrant.
		if i := slices.IndexFunc(lv.provisions, func(p *rawProv) bool { return p.name == rp.name }); i >= 0 {
			lv.provisions[i].opts = append(lv.provisions[i].opts, rp.opts...)
			return
		}
	}
	lv.provisions = append(lv.provisions, rp)
}

var shellDropped = map[string]string{
	"upload_path":                     "den uploads the script to a temporary file of its own",
	"keep_color":                      "den passes the output on as it comes",
	"binary":                          "den uploads scripts as they are",
	"sensitive":                       "den.hcl has no secret values: read them from the host with env(\"NAME\")",
	"reboot":                          "den does not reboot a machine while it provisions it",
	"reset":                           "den does not reconnect while it provisions a machine",
	"before":                          "den runs provisioners in file order: move the block",
	"after":                           "den runs provisioners in file order: move the block",
	"communicator_required":           "den always runs provisioners over ssh",
	"powershell_args":                 "den runs Linux containers",
	"powershell_elevated_interactive": "den runs Linux containers",
	"preserve_order":                  "den runs provisioners in file order",
}

var provNameJunkRE = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// prov turns a Vagrant shell or file provisioner into den's; home is the
// login user's home folder in the guest, for relative destinations.
func (c *conv) prov(rp *rawProv, home string) *prov {
	what := fmt.Sprintf("vm.provision %q", rp.first.arg(0))
	if rp.typ != "shell" && rp.typ != "file" {
		c.drop(rp.at, what, "den has shell and file provisioners only: run %s from a shell provisioner", rp.typ)
		return nil
	}
	p := &prov{typ: rp.typ, name: rp.name, at: rp.at}
	var inline, pth, src, dst *opt
	var args *opt
	for i := range rp.opts {
		o := &rp.opts[i]
		setting := what + ", " + o.key + ": " + short(o.value)
		switch o.key {
		case "name":
			if p.name == "" {
				p.name, _ = str(o.value)
			}
		case "run":
			switch r, _ := str(o.value); r {
			case "once", "always", "never":
				p.run = r
			default:
				c.drop(o.at, setting, `den runs a provisioner "once", "always" or "never"`)
			}
		case "inline":
			if rp.typ == "shell" {
				inline = o
				continue
			}
			c.drop(o.at, setting, "den's file provisioners have no such option")
		case "path":
			if rp.typ == "shell" {
				pth = o
				continue
			}
			c.drop(o.at, setting, "den's file provisioners have no such option")
		case "args":
			if rp.typ == "shell" {
				args = o
				continue
			}
			c.drop(o.at, setting, "den's file provisioners have no such option")
		case "env":
			if rp.typ != "shell" {
				c.drop(o.at, setting, "den's file provisioners have no such option")
				continue
			}
			p.env = c.env(o, what)
		case "privileged":
			b, ok := boolean(o.value)
			if rp.typ != "shell" || !ok {
				c.drop(o.at, setting, "den's %s provisioners have no such option", rp.typ)
				continue
			}
			p.privileged = &b
		case "source":
			src = o
		case "destination":
			dst = o
		default:
			reason, ok := shellDropped[o.key]
			if !ok {
				reason = fmt.Sprintf("den's %s provisioners have no such option", rp.typ)
			}
			c.drop(o.at, setting, "%s", reason)
		}
	}
	if p.name != "" && !config.ValidProvisionerName(p.name) {
		n := strings.TrimLeft(provNameJunkRE.ReplaceAllString(p.name, "-"), ".-")
		if len(n) > 63 {
			n = n[:63]
		}
		if n == "" {
			n = "provision"
		}
		c.note(Changed, rp.at, what, `den provisioner names are letters, digits, "_", "." and "-": written as %q`, n)
		p.name = n
	}
	if rp.typ == "file" {
		return c.fileProv(p, rp, src, dst, home)
	}
	switch {
	case inline != nil && pth != nil:
		c.drop(pth.at, what+", path: "+short(pth.value), "a shell provisioner runs inline commands or a script, not both: the inline commands are written")
	case inline == nil && pth == nil:
		c.drop(rp.at, what, "has neither inline nor path")
		return nil
	}
	if inline != nil {
		s, ok := str(inline.value)
		if l, isList := strList(inline.value); !ok && isList {
			s, ok = strings.Join(l, "\n"), true
		}
		if !ok || strings.TrimSpace(s) == "" {
			c.drop(inline.at, what+", inline: "+short(inline.value), "not a script")
			return nil
		}
		p.inline = &s
		c.inlineNotes(s, inline.at, what)
		if args != nil {
			c.drop(args.at, what+", args: "+short(args.value), "den passes no arguments to inline commands: write them into the commands")
		}
		return p
	}
	ps, _ := str(pth.value)
	if strings.Contains(ps, "://") || ps == "" {
		c.drop(pth.at, what+", path: "+short(pth.value), "den runs scripts of the project: download it into the project and name it with path")
		return nil
	}
	p.path = c.pathExpr(ps)
	if args != nil {
		p.args = c.args(args, what)
	}
	return p
}

// inlineNotes says how den runs an inline script differently from Vagrant.
func (c *conv) inlineNotes(s string, a at, what string) {
	if !c.hasInline {
		c.hasInline = true
		c.note(Changed, a, what, "den runs inline commands with /bin/sh and set -e (the first failing command stops them); Vagrant ran them with bash, without -e")
	}
	first, _, _ := strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	if strings.HasPrefix(first, "#!") && strings.TrimSpace(first) != "#!/bin/sh" {
		c.note(Changed, a, what, "the script's %s line is only a comment in inline commands: to keep its interpreter, save the script in the project and name it with path", strings.TrimSpace(first))
	}
}

// fileProv finishes a file provisioner.
func (c *conv) fileProv(p *prov, rp *rawProv, src, dst *opt, home string) *prov {
	what := fmt.Sprintf("vm.provision %q", rp.first.arg(0))
	if src == nil || dst == nil {
		c.drop(rp.at, what, "a file provisioner needs source and destination")
		return nil
	}
	s, ok1 := str(src.value)
	d, ok2 := str(dst.value)
	if !ok1 || !ok2 || s == "" || d == "" {
		c.drop(rp.at, what, "source and destination must be paths")
		return nil
	}
	p.source = c.pathExpr(s)
	dest := d
	switch {
	case d == "~" || strings.HasPrefix(d, "~/"):
		dest = path.Join(home, strings.TrimPrefix(d, "~"))
	case !strings.HasPrefix(d, "/"):
		dest = path.Join(home, d)
	}
	if strings.HasSuffix(d, "/") {
		dest = path.Join(dest, path.Base(strings.TrimRight(s, "/")))
	}
	dest = path.Clean(dest)
	if dest == "/" {
		c.drop(dst.at, what+", destination: "+short(dst.value), "den's destination names the copy itself, and cannot be /")
		return nil
	}
	if dest != d {
		c.note(Changed, dst.at, what+", destination: "+short(dst.value), "written as %q: den's destination is the absolute path of the copy itself (the login user's home is %s in den's boxes)", dest, home)
	}
	p.dest = dest
	return p
}

// env reads a provisioner's env: { "NAME" => "value" }.
func (c *conv) env(o *opt, what string) []kv {
	h, ok := hash(o.value)
	if !ok {
		c.drop(o.at, what+", env: "+short(o.value), "not a hash of variables")
		return nil
	}
	var out []kv
	for _, e := range h {
		v, ok := str(e.value)
		if !ok {
			if e.value == nil {
				v, ok = "", true
			} else if b, isBool := boolean(e.value); isBool {
				v, ok = fmt.Sprint(b), true
			}
		}
		switch {
		case !config.ValidEnvName(e.key):
			c.drop(o.at, what+", env: "+e.key, "not a shell variable name")
		case !ok:
			c.drop(o.at, what+", env: "+e.key, "%s is not a string", ruby(e.value))
		default:
			if strings.ContainsAny(v, "$`") {
				c.note(Changed, o.at, what+", env: "+e.key, "den passes %q as it is; Vagrant's shell expanded $ and ` in it", v)
			}
			out = slices.DeleteFunc(out, func(x kv) bool { return x.key == e.key })
			out = append(out, kv{e.key, v})
		}
	}
	return out
}

// args reads a script's arguments: a list, or a string Vagrant put on the
// command line as it is (split here as the shell would, when it can be).
func (c *conv) args(o *opt, what string) []string {
	if l, ok := list(o.value); ok {
		var out []string
		for _, a := range l {
			s, ok := str(a)
			if !ok {
				s = ruby(a)
			}
			out = append(out, s)
		}
		return out
	}
	s, ok := str(o.value)
	if !ok {
		c.drop(o.at, what+", args: "+short(o.value), "not a list of arguments")
		return nil
	}
	words, ok := shellWords(s)
	if !ok {
		c.drop(o.at, what+", args: "+short(o.value), "uses shell syntax ($, `, ;, |, &, <, >, globs) that den cannot pass on: write the arguments as a list")
		return nil
	}
	return words
}

// shellWords splits s as sh would, for plain words, quotes and backslashes;
// it fails on expansions and operators.
func shellWords(s string) ([]string, bool) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, false
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '$' || s[i] == '`':
					return nil, false
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0:
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false
			}
			inWord = true
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case strings.IndexByte("$`;|&<>()*?[]{}~#", ch) >= 0:
			return nil, false
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, true
}

// short is a value for a note, cut to one line.
func short(v any) string {
	s := ruby(v)
	if i := strings.Index(s, `\n`); i >= 0 || len(s) > 60 {
		if i < 0 || i > 57 {
			i = 57
		}
		s = s[:i] + "…"
	}
	return s
}

// trigger reads config.trigger.before|after COMMAND..., options do |t| ... end.
func (c *conv) trigger(e event, lv *level) {
	what := "trigger." + e.Name
	for _, a := range e.Args {
		what += " " + ruby(a)
	}
	var cmds []string
	for _, a := range e.Args {
		l, ok := strList(a)
		if !ok {
			c.drop(e.at(), what, "%s is not a command", ruby(a))
			return
		}
		cmds = append(cmds, l...)
	}
	t := trigger{when: e.Name, at: e.at()}
	var ignore []string
	for _, o := range e.options() {
		setting := what + ": " + o.key + " = " + short(o.value)
		switch o.key {
		case "name":
			t.name, _ = str(o.value)
		case "on_error":
			switch v, _ := str(o.value); v {
			case "halt", "continue":
				t.onError = v
			default:
				c.drop(o.at, setting, `den triggers stop on an error ("halt") or go on ("continue")`)
			}
		case "only_on":
			if l, ok := list(o.value); ok {
				t.onlyOn = l
			} else {
				t.onlyOn = []any{o.value}
			}
			t.onlyOnAt = o.at
		case "ignore":
			ignore, _ = strList(o.value)
		case "run", "run_remote":
			a := c.action(&o, setting, o.key == "run_remote")
			if o.key == "run" {
				t.run = a
			} else {
				t.runRemote = a
			}
		case "type":
			if v, _ := str(o.value); v != "command" {
				c.drop(e.at(), what, "a trigger of type %s runs around Vagrant's internal %ss; den triggers run around den's commands", v, v)
				return
			}
		case "info", "warn":
			c.drop(o.at, setting, "den triggers print no message: run { inline = [\"echo ...\"] } does")
		case "exit_codes":
			c.drop(o.at, setting, "a den trigger fails on any status but 0")
		case "abort":
			c.drop(o.at, setting, "a den trigger stops the command by failing (on_error = \"halt\")")
		default:
			c.drop(o.at, setting, "den triggers have no such setting")
		}
	}
	for _, b := range e.blockRest() {
		if b.Op == "call" && b.Name == "ruby" {
			c.drop(b.at(), what+": ruby do ... end", "Ruby code runs inside Vagrant: write it as a command (run or run_remote)")
			continue
		}
		c.drop(b.at(), what+": "+settingName(b), "den triggers have no such setting")
	}
	if t.run == nil && t.runRemote == nil {
		c.drop(e.at(), what, "runs nothing den can run")
		return
	}
	if slices.Contains(cmds, "all") {
		cmds = slices.DeleteFunc(slices.Clone(config.TriggerCommands), func(s string) bool { return slices.Contains(ignore, s) })
		kind := Changed
		if _, ok := pending["trigger"]; ok {
			kind = Pending
		}
		c.note(kind, e.at(), what, "written once for each den command a trigger can be about (%s)", strings.Join(cmds, ", "))
	}
	for _, cmd := range cmds {
		if slices.Contains(ignore, cmd) {
			continue
		}
		if !slices.Contains(config.TriggerCommands, cmd) {
			c.drop(e.at(), what, "den has no trigger for the %q command", cmd)
			continue
		}
		tc := t
		tc.command = cmd
		lv.triggers = append(lv.triggers, &tc)
	}
}

// action reads a trigger's run or run_remote hash.
func (c *conv) action(o *opt, setting string, remote bool) *action {
	h, ok := hash(o.value)
	if !ok {
		c.drop(o.at, setting, "not a hash of inline, path, args and env")
		return nil
	}
	a := &action{}
	var args *opt
	for _, e := range h {
		sub := &opt{e.key, e.value, o.at}
		switch e.key {
		case "inline":
			s, ok := str(e.value)
			if !ok {
				c.drop(o.at, setting, "inline is not a string")
				return nil
			}
			a.inline = &s
		case "path":
			s, _ := str(e.value)
			if s == "" || strings.Contains(s, "://") {
				c.drop(o.at, setting, "den runs scripts of the project: download it into the project and name it with path")
				return nil
			}
			a.path = c.pathExpr(s)
		case "args":
			args = sub
		case "env":
			a.env = c.env(sub, setting)
		case "privileged":
			b, ok := boolean(e.value)
			if !remote || !ok {
				c.drop(o.at, setting, "privileged is for run_remote only")
				continue
			}
			a.privileged = &b
		default:
			c.drop(o.at, setting, "den's trigger %s has no %s", o.key, e.key)
		}
	}
	if a.inline == nil && a.path == "" {
		c.drop(o.at, setting, "has neither inline nor path")
		return nil
	}
	if args != nil {
		if a.inline != nil {
			c.drop(o.at, setting, "den passes no arguments to inline commands: write them into the commands")
		} else {
			a.args = c.args(args, setting)
		}
	}
	return a
}

// triggerMachines resolves a trigger's only_on (names and regular
// expressions, as Vagrant matches them) to den machine names.
func (c *conv) triggerMachines(t *trigger) ([]string, bool) {
	if t.onlyOn == nil {
		return nil, true
	}
	var out []string
	for _, v := range t.onlyOn {
		if s, ok := str(v); ok {
			m := c.byOrig[s]
			if m == nil {
				c.drop(t.onlyOnAt, "only_on "+ruby(v), "names no machine of the Vagrantfile")
				continue
			}
			if !slices.Contains(out, m.name) {
				out = append(out, m.name)
			}
			continue
		}
		src, ok := regexpSource(v)
		re, err := regexp.Compile(src)
		if !ok || err != nil {
			c.drop(t.onlyOnAt, "only_on "+ruby(v), "not a machine name or a regular expression den can read")
			continue
		}
		for _, m := range c.machines {
			if re.MatchString(m.orig) && !slices.Contains(out, m.name) {
				out = append(out, m.name)
			}
		}
		c.note(Changed, t.onlyOnAt, "only_on "+ruby(v), "written as the machines it matches now")
	}
	if len(out) == 0 {
		c.drop(t.at, "trigger."+t.when+" "+ruby(t.command), "only_on matches no machine")
		return nil, false
	}
	return out, true
}
