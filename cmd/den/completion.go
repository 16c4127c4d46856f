package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
)

// completeCommand is the hidden command the shell completion scripts call:
// `den __complete WORD... CURRENT` prints the candidates for CURRENT, one
// per line — commands, flags, machine names of the project, snapshot
// names. It never fails loudly: a completion that cannot read the project
// offers nothing.
var completeCommand = &cli.Command{
	Name:            "__complete",
	Hidden:          true,
	SkipFlagParsing: true,
	Action: func(cliCtx *cli.Context) error {
		words := cliCtx.Args().Slice()
		if len(words) == 0 {
			words = []string{""}
		}
		for _, c := range complete(cliCtx.App, words[:len(words)-1], words[len(words)-1]) {
			fmt.Println(c)
		}
		return nil
	},
}

// complete returns the candidates for cur after the words before it.
func complete(app *cli.App, before []string, cur string) []string {
	flags, cmds := app.Flags, app.Commands
	var cmd *cli.Command
	var path []string
	var args []string
	for i := 0; i < len(before); i++ {
		w := before[i]
		if strings.HasPrefix(w, "-") {
			if flagWidth(flags, w, before[i:]) == 2 {
				i++
			}
			continue
		}
		if c := findCommand(cmds, w); c != nil && args == nil {
			cmd, flags, cmds = c, c.Flags, c.Subcommands
			path = append(path, c.Name)
			continue
		}
		args = append(args, w)
	}
	var out []string
	switch {
	case strings.HasPrefix(cur, "-"):
		for _, f := range flags {
			for _, n := range f.Names() {
				if len(n) > 1 {
					out = append(out, "--"+n)
				}
			}
		}
	case len(cmds) > 0 && args == nil:
		out = visibleNames(cmds)
		if cmd == nil {
			out = append(out, "help")
		}
	case cmd != nil:
		out = completeArgs(strings.Join(path, " "), args)
	}
	var matching []string
	for _, c := range out {
		if strings.HasPrefix(c, cur) && !slices.Contains(matching, c) {
			matching = append(matching, c)
		}
	}
	slices.Sort(matching)
	return matching
}

// machineVerbs take machine names as their arguments.
var machineVerbs = []string{"up", "reload", "provision", "ssh", "ssh-config", "status", "halt", "suspend", "resume",
	"destroy", "package", "port", "upload", "snapshot list", "snapshot push", "snapshot pop"}

// completeArgs offers machine names (and, for the snapshot commands that
// take one, snapshot names) for the command path.
func completeArgs(path string, args []string) []string {
	switch path {
	case "snapshot save", "snapshot restore", "snapshot delete":
		names := machineNamesHere()
		if path == "snapshot save" {
			return names
		}
		snaps := snapshotNamesHere(args)
		if len(args) == 0 {
			return append(names, snaps...)
		}
		return snaps
	case "help":
		return nil
	}
	if slices.Contains(machineVerbs, path) {
		return machineNamesHere()
	}
	return nil
}

// machineNamesHere lists the machines of the project of the current
// folder (orphans too), or none.
func machineNamesHere() []string {
	p, err := loadProject()
	if err != nil {
		return nil
	}
	var names []string
	for _, m := range p.Machines {
		names = append(names, m.Name)
	}
	if orphans, err := machine.Orphans(p); err == nil {
		for _, m := range orphans {
			names = append(names, m.Name())
		}
	}
	return names
}

// snapshotNamesHere lists the snapshots of the machines args name (all of
// the project's without), or none.
func snapshotNamesHere(args []string) []string {
	env, err := newEnv()
	if err != nil {
		return nil
	}
	env = env.WithReporter(ui.Discard)
	ms, err := env.Lookup(".", args, withOrphans)
	if err != nil {
		ms, err = env.Lookup(".", nil, withOrphans)
		if err != nil {
			return nil
		}
	}
	rows, err := env.SnapshotList(context.Background(), ms)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Name)
	}
	return out
}

var completionCommand = &cli.Command{
	Name:      "completion",
	Usage:     "print a shell completion script (bash or zsh)",
	ArgsUsage: "bash|zsh",
	Description: "bash:  den completion bash > /etc/bash_completion.d/den   (or: source <(den completion bash))\n" +
		"zsh:   den completion zsh > \"${fpath[1]}/_den\"            (or: source <(den completion zsh))\n" +
		"Completes commands, flags, the project's machine names and snapshot names.",
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, 1); err != nil {
			return err
		}
		switch cliCtx.Args().First() {
		case "bash":
			fmt.Fprint(os.Stdout, bashCompletion)
		case "zsh":
			fmt.Fprint(os.Stdout, zshCompletion)
		default:
			return usageError{fmt.Errorf("den completes bash and zsh, not %q", cliCtx.Args().First())}
		}
		return nil
	},
}

const bashCompletion = `# bash completion for den (den completion bash)
_den() {
	local IFS=$'\n'
	COMPREPLY=($(den __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _den den
`

const zshCompletion = `#compdef den
# zsh completion for den (den completion zsh)
_den() {
	local -a candidates
	candidates=("${(@f)$(den __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	compadd -a candidates
}
if [ "$funcstack[1]" = "_den" ]; then
	_den "$@"
else
	compdef _den den
fi
`
