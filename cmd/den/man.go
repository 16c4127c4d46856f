package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// manCommand is the hidden `den __manpages DIR`: it writes den's man pages,
// den(1) and one page per visible command at every level (den-up(1),
// den-box-add(1), ...), into DIR from the commands' own help, and removes
// pages there of commands that no longer exist. man/ in the repository
// holds them as generated (TestManPagesCurrent fails when they are stale);
// den.hcl(5) beside them is written by hand.
var manCommand = &cli.Command{
	Name:      "__manpages",
	Hidden:    true,
	ArgsUsage: "DIR",
}

// The action is set here, not above: it makes a fresh app (newApp), which
// lists manCommand.
func init() {
	manCommand.Action = func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, 1); err != nil {
			return err
		}
		return writeManPages(cliCtx.Args().First())
	}
}

// manRegenerate is how to bring man/ up to date, for messages.
const manRegenerate = "go run -tags urfave_cli_no_docs ./cmd/den __manpages man"

// writeManPages writes the pages of a fresh app (as `den help` shows it)
// into dir and removes den*.1 files there that it did not write.
func writeManPages(dir string) error {
	pages := manPages(newApp())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "den*.1"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, ok := pages[filepath.Base(p)]; !ok {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	for name, text := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), text, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// manPages returns den's section 1 pages by file name: den.1 and
// den-VERB[-SUBVERB].1 for every command that is not hidden. The output
// depends on the commands alone (no date, no version), so the pages in
// the repository can be compared with it.
func manPages(app *cli.App) map[string][]byte {
	pages := map[string][]byte{"den.1": manTop(app)}
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range visibleCommands(cmds) {
			p := append(slices.Clone(path), c.Name)
			pages[manName(p)+".1"] = manVerb(p, c)
			walk(p, c.Subcommands)
		}
	}
	walk(nil, app.Commands)
	return pages
}

// visibleCommands are the commands a person is shown, without the help
// subcommands urfave/cli adds to a command it runs (den's commands are
// package variables, so a run before changes them): den's own help
// command is the only "help" with a page.
func visibleCommands(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && (c.Name != "help" || c == helpCommand) {
			out = append(out, c)
		}
	}
	return out
}

// manName is a page's name: "den" and the command path, joined by "-".
func manName(path []string) string {
	return strings.Join(append([]string{"den"}, path...), "-")
}

// manTop is den(1): the synopsis, the commands, the global options, and
// what the help of single commands cannot say (the project file's lookup,
// exit statuses, environment, files).
func manTop(app *cli.App) []byte {
	var b manBuilder
	b.header("den")
	b.section("NAME")
	b.text("den \\- " + roffEscape(app.Usage))
	b.section("SYNOPSIS")
	b.line(".B den")
	b.text("[\\fB\\-C\\fR \\fIDIR\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]")
	b.section("DESCRIPTION")
	b.paragraphs(manTopDescription)
	b.section("COMMANDS")
	b.commandList(nil, app.Commands)
	b.section("GLOBAL OPTIONS")
	global := app.Flags
	if !app.HideVersion {
		global = append(slices.Clone(global), cli.VersionFlag) // urfave/cli adds it when it runs
	}
	b.flags(global)
	b.section("EXIT STATUS")
	b.paragraphs(manExitStatus)
	b.section("ENVIRONMENT")
	b.definitions(manEnvironment)
	b.section("FILES")
	b.definitions(manFiles)
	b.section("SEE ALSO")
	var refs []string
	for _, c := range visibleCommands(app.Commands) {
		refs = append(refs, manName([]string{c.Name}))
	}
	b.seeAlso(slices.Concat([]string{"den.hcl(5)"}, manRefs(refs), []string{"lxc(7)", "ssh(1)"}))
	return b.Bytes()
}

// Sections of den(1) that no command's help holds.
const manTopDescription = `den makes disposable development machines, LXC system containers, from a den.hcl file in a project folder (see den.hcl(5)): what Vagrant with the vagrant-lxc provider does, in one binary.

den finds den.hcl in the current folder or the nearest parent, as Vagrant finds its Vagrantfile; -C DIR runs as if started in DIR. Flags may come before or after the arguments, as in Vagrant; everything after -- is an argument. Wherever a command takes a machine name it also takes the 7-digit id that 'den global-status' shows, from any folder. With several machines, one-machine commands (ssh, package, port, upload) take the one marked primary = true.

Every command has --help; 'den help COMMAND...' shows the same.`

const manExitStatus = `0 on success, 1 for an error, 2 for a usage error, 130 when interrupted. 'den ssh -c' exits with the remote command's status (255 when the remote side gave none, as OpenSSH); a provisioner that failed in the guest gives its exit status.`

var manEnvironment = [][2]string{
	{"DEN_HOME", "Where den keeps boxes, machines and its index: /var/lib/den for root, $XDG_DATA_HOME/den (~/.local/share/den) for other users."},
	{"DEN_CHDIR", "As -C: the folder den runs in."},
	{"DEN_MIRROR", "The Debian mirror 'den box build' (and 'den up' building a missing box) uses."},
}

var manFiles = [][2]string{
	{"den.hcl", "The project file (den.hcl(5))."},
	{".den/", "A project's machine state: keys, pinned host keys, records. Delete it only after 'den destroy'."},
	{"/var/lib/den", "Root's DEN_HOME: boxes/ (unpacked boxes), machines/ (the LXC path: lxc-ls -P /var/lib/den/machines), index.json."},
}

// manVerb is the page of the command at path.
func manVerb(path []string, c *cli.Command) []byte {
	var b manBuilder
	name := manName(path)
	words := "den " + strings.Join(path, " ")
	b.header(name)
	b.section("NAME")
	b.text(roffEscape(name) + " \\- " + roffEscape(c.Usage))
	b.section("SYNOPSIS")
	subs := visibleCommands(c.Subcommands)
	flags := visibleFlags(c.Flags)
	if len(subs) > 0 {
		b.line(".B " + roffEscape(words))
		b.text("\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]")
	}
	if len(subs) == 0 || len(flags) > 0 || c.ArgsUsage != "" {
		if len(subs) > 0 {
			b.line(".br")
		}
		b.line(".B " + roffEscape(words))
		syn := ""
		if len(flags) > 0 {
			syn = "[\\fIOPTIONS\\fR]"
		}
		if c.ArgsUsage != "" {
			syn = strings.TrimSpace(syn + " " + roffEscape(c.ArgsUsage))
		}
		if syn != "" {
			b.text(syn)
		}
	}
	b.section("DESCRIPTION")
	b.text(roffEscape(sentence(c.Usage)))
	if len(c.Aliases) > 0 {
		b.line(".PP")
		b.text("Also: " + roffEscape("den "+strings.Join(append(slices.Clone(path[:len(path)-1]), c.Aliases...), " ")) + ".")
	}
	if c.Description != "" {
		b.line(".PP")
		b.block(c.Description)
	}
	if len(subs) > 0 {
		b.section("COMMANDS")
		b.commandList(path, c.Subcommands)
	}
	if len(flags) > 0 {
		b.section("OPTIONS")
		b.flags(flags)
	}
	b.section("SEE ALSO")
	refs := []string{"den"}
	if len(path) > 1 {
		refs = append(refs, manName(path[:len(path)-1]))
	}
	for _, s := range subs {
		refs = append(refs, manName(append(slices.Clone(path), s.Name)))
	}
	b.seeAlso(append(manRefs(refs), "den.hcl(5)"))
	return b.Bytes()
}

// manRefs makes page names section 1 references.
func manRefs(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "(1)"
	}
	return out
}

// visibleFlags are the flags help shows, without --help.
func visibleFlags(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		if slices.Contains(f.Names(), "help") {
			continue
		}
		out = append(out, f)
	}
	return out
}

// sentence makes a usage phrase a sentence: a capital first and a period.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// manBuilder writes roff with the man macros.
type manBuilder struct{ bytes.Buffer }

func (b *manBuilder) line(s string) { b.WriteString(s + "\n") }

// text writes already escaped text; a line starting with a control
// character is protected.
func (b *manBuilder) text(s string) {
	for l := range strings.SplitSeq(s, "\n") {
		l = strings.TrimLeft(l, " ")
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = "\\&" + l
		}
		b.line(l)
	}
}

func (b *manBuilder) header(name string) {
	b.line(`.\" Generated by den __manpages from den's command help: do not edit.`)
	b.line(`.\" Regenerate with: ` + manRegenerate)
	b.line(fmt.Sprintf(`.TH "%s" "1" "" "den" "den manual"`, strings.ToUpper(roffEscape(name))))
}

func (b *manBuilder) section(s string) { b.line(".SH " + s) }

// paragraphs writes text whose paragraphs are separated by blank lines.
func (b *manBuilder) paragraphs(s string) {
	for i, p := range strings.Split(s, "\n\n") {
		if i > 0 {
			b.line(".PP")
		}
		b.text(roffEscape(p))
	}
}

// block writes a command's Description: as filled text, unless a line
// lines up columns with runs of spaces (den box add's forms), which stays
// as it is.
func (b *manBuilder) block(s string) {
	preformatted := false
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(strings.TrimSpace(l), "  ") {
			preformatted = true
		}
	}
	if !preformatted {
		b.text(roffEscape(s))
		return
	}
	b.line(".nf")
	b.text(roffEscape(s))
	b.line(".fi")
}

// definitions writes a list of terms (in bold) and their explanations.
func (b *manBuilder) definitions(defs [][2]string) {
	for _, d := range defs {
		b.line(".TP")
		b.line(".B " + roffEscape(d[0]))
		b.text(roffEscape(d[1]))
	}
}

// commandList writes the visible commands under path with their usage.
func (b *manBuilder) commandList(path []string, cmds []*cli.Command) {
	for _, c := range visibleCommands(cmds) {
		b.line(".TP")
		b.line(".BR " + roffEscape(manName(append(slices.Clone(path), c.Name))) + " (1)")
		b.text(roffEscape(c.Usage))
	}
}

// flags writes flags as help shows them: every name with its placeholder,
// the usage, the default and the environment variables.
func (b *manBuilder) flags(flags []cli.Flag) {
	for _, f := range visibleFlags(flags) {
		usage, placeholder, def, env := "", "", "", []string(nil)
		if d, ok := f.(cli.DocGenerationFlag); ok {
			placeholder, usage = unquoteUsage(d.GetUsage())
			if d.TakesValue() {
				if placeholder == "" {
					placeholder = "value"
				}
				def = d.GetDefaultText()
			}
			env = d.GetEnvVars()
		}
		var names []string
		for _, n := range f.Names() {
			s := "\\fB" + roffEscape(dashes(n)) + "\\fR"
			if placeholder != "" {
				s += " \\fI" + roffEscape(placeholder) + "\\fR"
			}
			names = append(names, s)
		}
		b.line(".TP")
		b.text(strings.Join(names, ", "))
		text := usage
		if def != "" && def != `""` {
			text += " (default: " + def + ")"
		}
		if len(env) > 0 {
			text += " (environment: " + strings.Join(env, ", ") + ")"
		}
		b.text(roffEscape(text))
	}
}

// seeAlso writes a SEE ALSO list of name(section) references.
func (b *manBuilder) seeAlso(refs []string) {
	for i, r := range refs {
		name, sec, _ := strings.Cut(strings.TrimSuffix(r, ")"), "(")
		sep := ","
		if i == len(refs)-1 {
			sep = ""
		}
		b.line(".BR " + roffEscape(name) + " (" + sec + ")" + sep)
	}
}

// dashes prefixes a flag name as typed: -C, --chdir.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// unquoteUsage splits a flag's usage into its `PLACEHOLDER` and the text
// without the backquotes, as urfave/cli's help does.
func unquoteUsage(usage string) (string, string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

// roffEscape makes plain text safe in roff: backslashes and hyphens (which
// roff would typeset as hyphens, not the minus of options).
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}
