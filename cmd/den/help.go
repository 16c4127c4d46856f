package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// helpCommand is `den help [VERB...]`: the help of den or of a verb at
// any level, as `den VERB... --help` prints it.
var helpCommand = &cli.Command{
	Name:      "help",
	Usage:     "show den's help, or a command's",
	ArgsUsage: "[COMMAND...]",
	Action: func(cliCtx *cli.Context) error {
		path := cliCtx.Args().Slice()
		if len(path) == 0 {
			return cli.ShowAppHelp(cliCtx)
		}
		cmds := cliCtx.App.Commands
		for i, name := range path {
			c := findCommand(cmds, name)
			if c == nil || c.Hidden {
				return unknownCommand(strings.Join(path[:i], " "), name, cmds)
			}
			cmds = c.Subcommands
		}
		// The command's own --help, so its help reads the same either way.
		return cliCtx.App.RunContext(cliCtx.Context, append(append([]string{cliCtx.App.Name}, path...), "--help"))
	},
}

// notACommand is the Action of den and of every command with
// subcommands: with arguments they name an unknown command; without, the
// help is shown.
func notACommand(cliCtx *cli.Context) error {
	if cliCtx.NArg() == 0 {
		if cliCtx.Command == nil || cliCtx.Command.Name == "" {
			return cli.ShowAppHelp(cliCtx)
		}
		return cli.ShowSubcommandHelp(cliCtx)
	}
	cmds := cliCtx.App.Commands
	parent := ""
	if cliCtx.Command != nil && cliCtx.Command.Name != "" {
		cmds, parent = cliCtx.Command.Subcommands, commandPath(cliCtx)
	}
	return unknownCommand(parent, cliCtx.Args().First(), cmds)
}

// unknownCommand is the usage error for name, which is not a command of
// parent ("" for den itself), with the closest command when one is close.
func unknownCommand(parent, name string, cmds []*cli.Command) error {
	full := strings.TrimSpace(parent + " " + name)
	msg := fmt.Sprintf("unknown command %q", full)
	if s := suggest(name, cmds); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", strings.TrimSpace(parent+" "+s))
	}
	helpAt := "den help"
	if parent != "" {
		helpAt += " " + parent
	}
	return usageError{errors.New(msg + " (see '" + helpAt + "')")}
}

// suggest returns the visible command closest to name: one that starts
// with it, or one within a couple of typos (Damerau-Levenshtein), or "".
func suggest(name string, cmds []*cli.Command) string {
	best, bestD := "", 3
	if len(name) <= 3 {
		bestD = 2
	}
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, n := range c.Names() {
			if len(name) >= 3 && strings.HasPrefix(n, name) {
				return c.Name
			}
			if d := distance(name, n); d < bestD {
				best, bestD = c.Name, d
			}
		}
	}
	return best
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// withNotACommand sets notACommand as the Action of every command that
// has subcommands and none of its own.
func withNotACommand(cmds []*cli.Command) {
	for _, c := range cmds {
		if len(c.Subcommands) > 0 {
			if c.Action == nil {
				c.Action = notACommand
			}
			withNotACommand(c.Subcommands)
		}
	}
}

// visibleNames lists the names of the visible commands.
func visibleNames(cmds []*cli.Command) []string {
	var out []string
	for _, c := range cmds {
		if !c.Hidden {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return out
}
