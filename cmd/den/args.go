package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// intersperse moves the flags that follow a command's arguments in front of
// them, so `den box add NAME FILE --force` works as it does in Vagrant
// (urfave/cli v2 stops parsing flags at the first argument). Everything
// after "--" stays an argument.
func intersperse(app *cli.App, args []string) []string {
	afterDashDash = 0
	if i := slices.Index(args, "--"); i >= 0 {
		afterDashDash = len(args) - i - 1
	}
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	var global []string // global flags typed after a command
	i := 1
	// The command path: global flags and command names.
	for i < len(args) {
		a := args[i]
		if a == "--" {
			out = append(out[:1], append(global, out[1:]...)...)
			return append(out, args[i:]...)
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			if len(out) > 1 && !hasFlag(flags, a) && hasFlag(app.Flags, a) {
				n := flagWidth(app.Flags, a, args[i:])
				global = append(global, args[i:i+n]...)
				i += n
				continue
			}
			n := flagWidth(flags, a, args[i:])
			out = append(out, args[i:i+n]...)
			i += n
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		out = append(out, a)
		flags, cmds = c.Flags, c.Subcommands
		i++
	}
	// The last command's own flags and arguments, flags first; a global
	// flag after the command (den up -C DIR) goes before it, as if typed
	// there.
	var fl, pos []string
	for i < len(args) {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			if !hasFlag(flags, a) && hasFlag(app.Flags, a) {
				n := flagWidth(app.Flags, a, args[i:])
				global = append(global, args[i:i+n]...)
				i += n
				continue
			}
			n := flagWidth(flags, a, args[i:])
			fl = append(fl, args[i:i+n]...)
			i += n
			continue
		}
		pos = append(pos, a)
		i++
	}
	out = append(out[:1], append(global, out[1:]...)...)
	return append(append(out, fl...), pos...)
}

// hasFlag reports whether a (a flag as typed) is one of flags.
func hasFlag(flags []cli.Flag, a string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// flagWidth is how many tokens the flag a takes: 2 when it needs a value
// that is not given with "=", else 1.
func flagWidth(flags []cli.Flag, a string, rest []string) int {
	name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
	if hasValue || len(rest) < 2 {
		return 1
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if df, ok := f.(cli.DocGenerationFlag); ok && df.TakesValue() {
			return 2
		}
		return 1
	}
	return 1
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

// afterDashDash is how many arguments followed "--" on den's command line:
// the last ones of the command's arguments, passed on as they are (den
// ssh gives them to OpenSSH).
var afterDashDash int

// splitDashDash splits the command's arguments into those before "--" and
// those after it. Flag parsing drops the "--" only when no argument comes
// before it (den exec -- ls, not den exec web -- ls): it goes here.
func splitDashDash(cliCtx *cli.Context) (before, after []string) {
	args := cliCtx.Args().Slice()
	n := max(0, len(args)-afterDashDash)
	before, after = args[:n], args[n:]
	if len(before) > 0 && before[len(before)-1] == "--" {
		before = before[:len(before)-1]
	}
	return before, after
}
