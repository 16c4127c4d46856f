package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// When a trigger runs: before or after its command.
const (
	TriggerBefore = "before"
	TriggerAfter  = "after"
)

// What a failing trigger does to its command.
const (
	OnErrorHalt     = "halt"     // the default: the command stops with the trigger's error
	OnErrorContinue = "continue" // the failure is reported and the command goes on
)

// TriggerCommands are the den commands a trigger can be about: the ones
// that change a machine. "snapshot" covers save, restore, delete, push and
// pop.
var TriggerCommands = []string{"up", "halt", "reload", "destroy", "provision", "suspend", "resume", "snapshot"}

// Trigger is a decoded trigger block (Vagrant's config.trigger): commands
// den runs on the host (Run) and in the guest (RunRemote, after Run)
// before or after one of its commands.
type Trigger struct {
	Name      string      // as written, or "<when>-<command>-<n>", n counting the machine's triggers of that when and command from 1
	When      string      // TriggerBefore or TriggerAfter
	Command   string      // one of TriggerCommands
	Run       *TriggerRun // on the host, as the user who runs den; nil: none
	RunRemote *TriggerRun // in the guest over ssh, as a shell provisioner; nil: none
	OnError   string      // OnErrorHalt or OnErrorContinue
	Machines  []string    // the machines it is for, as written; nil: every machine of its block
	DefRange  hcl.Range   // the block's header
}

// TriggerRun is a trigger's run or run_remote block: exactly one of Inline
// and Path is set.
type TriggerRun struct {
	Inline     []string  // commands, run with sh -e
	Path       string    // absolute host path of the script
	PathRange  hcl.Range // where den.hcl names it
	Args       []string  // arguments of the Path script
	Env        []KV      // environment variables, in source order
	Privileged bool      // run_remote only: run as root with sudo (default true)
	DefRange   hcl.Range // the block's header
}

var triggerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "on_error"}, {Name: "machines"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "run"}, {Type: "run_remote"}},
}

var triggerRunSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "inline"}, {Name: "path"}, {Name: "args"}, {Name: "env"}, {Name: "privileged"}},
}

// trigger is a decoded trigger block and where its parts were written.
type trigger struct {
	Trigger
	named         bool
	machinesRange hcl.Range
}

// guestCannotRun names the triggers whose run_remote can never run: the
// machine is stopped, gone or frozen at that moment.
var guestCannotRun = map[[2]string]string{
	{TriggerAfter, "halt"}:    "after halt the machine is stopped",
	{TriggerAfter, "destroy"}: "after destroy the machine is gone",
	{TriggerAfter, "suspend"}: "after suspend the machine is frozen and cannot answer",
	{TriggerBefore, "resume"}: "before resume the machine is frozen and cannot answer",
}

// triggers decodes the trigger blocks of one level.
func (l *loader) triggers(blocks hcl.Blocks) []trigger {
	var out []trigger
	for _, b := range blocks {
		if t, ok := l.trigger(b); ok {
			out = append(out, t)
		}
	}
	return out
}

// trigger decodes one trigger "WHEN" "COMMAND" block.
func (l *loader) trigger(b *hcl.Block) (trigger, bool) {
	n := len(l.diags)
	t := trigger{Trigger: Trigger{When: b.Labels[0], Command: b.Labels[1], OnError: OnErrorHalt, DefRange: b.DefRange}}
	if t.When != TriggerBefore && t.When != TriggerAfter {
		l.errorf(b.LabelRanges[0], "Invalid trigger time",
			`A trigger runs %q or %q its command, not %q: write trigger "before" "up" { ... }.`, TriggerBefore, TriggerAfter, t.When)
	}
	if !slices.Contains(TriggerCommands, t.Command) {
		l.errorf(b.LabelRanges[1], "Invalid trigger command",
			"den has no trigger for %q: a trigger is about one of %s.", t.Command, strings.Join(TriggerCommands, ", "))
	}
	c, diags := b.Body.Content(triggerSchema)
	l.diags = append(l.diags, diags...)
	attrs := c.Attributes
	if a := attrs["name"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			t.Name, t.named = v.AsString(), true
			if !validTriggerName(t.Name) {
				l.errorf(a.Expr.Range(), "Invalid trigger name",
					"%q is not a trigger name: use 1 to 100 printable characters on one line, e.g. \"Seed database\".", t.Name)
			}
		}
	}
	if a := attrs["on_error"]; a != nil {
		if v, ok := l.value(a, cty.String); ok {
			t.OnError = v.AsString()
			if t.OnError != OnErrorHalt && t.OnError != OnErrorContinue {
				l.errorf(a.Expr.Range(), "Invalid on_error value",
					`on_error must be %q (the default: a failing trigger stops the command) or %q (the failure is reported and the command goes on), not %q.`, OnErrorHalt, OnErrorContinue, t.OnError)
			}
		}
	}
	if a := attrs["machines"]; a != nil {
		if list, ok := l.stringList(a); ok {
			t.Machines, t.machinesRange = list, a.Expr.Range()
			if len(list) == 0 {
				l.errorf(a.Expr.Range(), "Empty machines", "A trigger for no machine never runs: name at least one machine, or leave machines out for every machine.")
			}
		}
	}
	blocks := c.Blocks.ByType()
	for _, kind := range []string{"run", "run_remote"} {
		for i, rb := range blocks[kind] {
			if i > 0 {
				l.errorf(rb.DefRange, "Duplicate "+kind+" block", "A trigger has at most one %s block; another is at %s. Put every command into one.", kind, loc(blocks[kind][0].DefRange))
				continue
			}
			r := l.triggerRun(rb, kind == "run_remote")
			if kind == "run" {
				t.Run = r
			} else {
				t.RunRemote = r
			}
		}
	}
	if len(blocks["run"]) == 0 && len(blocks["run_remote"]) == 0 {
		l.errorf(b.DefRange, "Trigger runs nothing",
			`A trigger needs a run block (commands on the host) or a run_remote block (commands in the guest), e.g. run { inline = ["echo up"] }.`)
	}
	if why := guestCannotRun[[2]string{t.When, t.Command}]; why != "" && len(blocks["run_remote"]) > 0 {
		l.errorf(blocks["run_remote"][0].DefRange, "Guest trigger that cannot run",
			"%s, so run_remote cannot run in it: use run (on the host) here, or a run_remote in a trigger %q %q.", capitalize(why), otherTime(t.When), t.Command)
	}
	return t, len(l.diags) == n && !diags.HasErrors()
}

func otherTime(when string) string {
	if when == TriggerBefore {
		return TriggerAfter
	}
	return TriggerBefore
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// validTriggerName reports whether s can name a trigger in messages: one
// line of printable characters.
func validTriggerName(s string) bool {
	if strings.TrimSpace(s) == "" || len([]rune(s)) > 100 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

// triggerRun decodes a run (remote false) or run_remote block.
func (l *loader) triggerRun(b *hcl.Block, remote bool) *TriggerRun {
	c, diags := b.Body.Content(triggerRunSchema)
	l.diags = append(l.diags, diags...)
	attrs := c.Attributes
	r := &TriggerRun{DefRange: b.DefRange, Privileged: remote}
	kind := "run"
	if remote {
		kind = "run_remote"
	}
	r.Inline, r.Path, r.PathRange, r.Args, r.Env = l.script(b.DefRange, attrs, scriptOwner{
		who: "A trigger's " + kind, what: kind, command: "make seed", file: "scripts/seed.sh",
	})
	if a := attrs["privileged"]; a != nil {
		if !remote {
			l.errorf(a.NameRange, "privileged on the host",
				"A trigger's run runs on the host as the user who runs den (as SUDO_UID under sudo), never as another user; privileged is for run_remote, in the guest.")
		} else if v, ok := l.value(a, cty.Bool); ok {
			r.Privileged = v.True()
		}
	}
	return r
}

// mergeTriggers lists machine name's triggers: the top level's that are
// for it, then its own; unnamed ones get their default names.
func mergeTriggers(name string, top, own []trigger) []Trigger {
	var out []Trigger
	count := map[[2]string]int{}
	for _, list := range [][]trigger{top, own} {
		for _, t := range list {
			if t.Machines != nil && !slices.Contains(t.Machines, name) {
				continue
			}
			k := [2]string{t.When, t.Command}
			count[k]++
			tr := t.Trigger
			if !t.named {
				tr.Name = fmt.Sprintf("%s-%s-%d", t.When, t.Command, count[k])
			}
			out = append(out, tr)
		}
	}
	return out
}

// checkTriggerMachines checks the machines lists of the top level's
// triggers against the project's machines, and those of a machine block's
// against that machine (a trigger there is for it alone).
func (l *loader) checkTriggerMachines(p *Project, top []trigger, own map[string][]trigger) {
	names := make([]string, len(p.Machines))
	for i, m := range p.Machines {
		names[i] = m.Name
	}
	for _, t := range top {
		for _, n := range t.Machines {
			if !slices.Contains(names, n) {
				l.errorf(t.machinesRange, "Unknown machine",
					"machines names %q, which is not a machine of this project (machines: %s).", n, strings.Join(names, ", "))
			}
		}
	}
	for _, m := range p.Machines {
		for _, t := range own[m.Name] {
			for _, n := range t.Machines {
				if n != m.Name {
					l.errorf(t.machinesRange, "Trigger for another machine",
						"This trigger is in machine %q's block, so it runs for %s alone; machines may name only %q here. Put the trigger at the top level to run it for %q.", m.Name, m.Name, m.Name, n)
				}
			}
		}
	}
}

// checkHostScripts refuses host trigger scripts that a machine of p can
// write: den would run on the host what a guest put there.
func (l *loader) checkHostScripts(p *Project, triggers []trigger) {
	for _, t := range triggers {
		if t.Run == nil || t.Run.Path == "" {
			continue
		}
		if err := p.CheckHostScript(t.Run.Path); err != nil {
			l.errorf(t.Run.PathRange, "Script a machine can write", "%s", err)
		}
	}
}

// CheckHostScript returns why den must not run the host script at path for
// a trigger, or nil: it, or a symlink on the way to it, lies in a folder a
// machine of p mounts read-write (a guest could change what den runs on the
// host), or it has more than one hard link (den cannot tell where the
// others are). The domain checks again right before running it.
func (p *Project) CheckHostScript(path string) error {
	type rw struct {
		host, real, machine, guest string
	}
	var folders []rw
	for _, m := range p.Machines {
		for _, sf := range m.Synced {
			if sf.ReadOnly {
				continue
			}
			real, err := filepath.EvalSymlinks(sf.Host)
			if err != nil {
				real = sf.Host
			}
			folders = append(folders, rw{sf.Host, real, m.Name, sf.Guest})
		}
	}
	show := func(path string) string {
		if rel, err := filepath.Rel(p.Dir, path); err == nil && (rel == "." || filepath.IsLocal(rel)) {
			return rel
		}
		return path
	}
	const fix = " A guest could change what den runs on the host: use inline commands, set read_only = true on that synced_folder, or keep the script outside every read-write synced folder."
	var found error
	lastLink := ""
	err := walkPath(path, func(p string, link bool) bool {
		for _, f := range folders {
			if !within(f.real, p) {
				continue
			}
			// Every folder on the way is visited before what lies in it, so a
			// symlink in a folder is caught at the folder.
			switch {
			case lastLink != "":
				found = fmt.Errorf("%q leads through the symlink %q into the synced folder %q, which machine %q mounts read-write at %s.%s", show(path), show(lastLink), show(f.host), f.machine, f.guest, fix)
			default:
				found = fmt.Errorf("%q lies in the synced folder %q, which machine %q mounts read-write at %s.%s", show(path), show(f.host), f.machine, f.guest, fix)
			}
			return false
		}
		if link {
			lastLink = p
		}
		return true
	})
	if found != nil {
		return found
	}
	if err != nil {
		return fmt.Errorf("%q: %w", show(path), err)
	}
	if n := nlink(path); n > 1 {
		return fmt.Errorf("%q has %d hard links: den cannot tell whether one of them lies in a folder a machine can write. Copy the script instead of linking it.", show(path), n)
	}
	return nil
}

// walkPath resolves the absolute path p as the kernel does, component by
// component, and calls visit with every path it reaches: each entry on the
// way (link set for a symlink) and the final one. visit returns false to
// stop the walk.
func walkPath(p string, visit func(path string, link bool) bool) error {
	if !filepath.IsAbs(p) {
		return errors.New("not an absolute path")
	}
	resolved := "/"
	rest := strings.Split(filepath.Clean(p), "/")
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if !visit(next, false) {
				return nil
			}
			resolved = next
			continue
		}
		if !visit(next, true) {
			return nil
		}
		if links++; links > 40 {
			return errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(next)
		if err != nil {
			return err
		}
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return nil
}

// nlink is the number of hard links of the file at path (0 when unknown).
func nlink(path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
