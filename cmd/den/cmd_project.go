package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/internal/vagrantfile"
)

var initCommand = &cli.Command{
	Name:      "init",
	Usage:     "write a commented den.hcl in the current folder",
	ArgsUsage: "[BOX]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "overwrite an existing den.hcl"},
		&cli.BoolFlag{Name: "minimal", Aliases: []string{"m"}, Usage: "write only the box line, no comments"},
		&cli.StringFlag{Name: "from", Usage: "write it from a `VAGRANTFILE` (runs its Ruby code, as vagrant would)", TakesFile: true},
	},
	Action: func(cliCtx *cli.Context) error {
		if from := cliCtx.String("from"); from != "" {
			if err := checkArgs(cliCtx, 0, 0); err != nil {
				return err
			}
			return vagrantfile.Init(cliCtx.Context, from, ".", os.Stdout, os.Stderr)
		}
		if err := checkArgs(cliCtx, 0, 1); err != nil {
			return err
		}
		b := cliCtx.Args().First()
		data := config.Template(b)
		if cliCtx.Bool("minimal") {
			data = config.MinimalTemplate(b)
		}
		if !cliCtx.Bool("force") {
			if _, err := os.Lstat(config.FileName); err == nil {
				return fmt.Errorf("%s already exists in this folder; den init does not overwrite it without --force (edit it, or remove it first)", config.FileName)
			}
		}
		if err := fsutil.WriteFileAtomic(config.FileName, data, 0o644); err != nil {
			return err
		}
		fmt.Printf("A %s has been written to this folder. Read its comments, then run 'den up'.\n", config.FileName)
		return nil
	},
}

var validateCommand = &cli.Command{
	Name:      "validate",
	Usage:     "check den.hcl and print what it describes",
	ArgsUsage: "[MACHINE...]",
	Action: func(cliCtx *cli.Context) error {
		p, err := loadProject()
		if err != nil {
			return err
		}
		ms, err := machine.Select(p, cliCtx.Args().Slice())
		if err != nil {
			return usage(err)
		}
		env, err := newEnv()
		if err != nil {
			return err
		}
		if err := env.CheckHost(cliCtx.Context, p, ms); err != nil {
			return err
		}
		if len(p.Warnings) > 0 {
			config.WriteDiagnostics(os.Stderr, p.Files, p.Warnings, false)
		}
		rel, _ := filepath.Rel(mustGetwd(), p.File)
		fmt.Printf("%s is valid: %d machine(s)\n", rel, len(p.Machines))
		for _, m := range ms {
			c := m.Config
			mem := "no limit"
			if c.Memory > 0 {
				mem = ui.Bytes(c.Memory)
			}
			cpus := "all CPUs"
			if c.CPUs > 0 {
				cpus = fmt.Sprintf("%d CPUs", c.CPUs)
			}
			net := "bridge " + c.Bridge
			if c.Network == config.NetworkProject {
				net = "the project's network"
				if c.PrivateIP.IsValid() {
					net += ", address " + c.PrivateIP.String()
				}
			}
			fmt.Printf("  %s: box %s, memory %s, %s, hostname %s, %s\n", c.Name, c.Box, mem, cpus, c.Hostname, net)
			switch {
			case c.Privileged:
				fmt.Printf("    privileged (guest root is host root)\n")
			case c.Nesting:
				fmt.Printf("    unprivileged, nesting (may run containers)\n")
			default:
				fmt.Printf("    unprivileged\n")
			}
			if c.Provider != config.ProviderLXD {
				fmt.Printf("    store %s\n", storeText(c.Storage))
			}
			if c.BoxVersion != "" {
				fmt.Printf("    box version %s\n", c.BoxVersion)
			}
			if c.BoxURL != "" {
				fmt.Printf("    box url %s\n", c.BoxURL)
			}
			for _, f := range c.Forwards {
				fmt.Printf("    forward %s\n", f)
			}
			for _, sf := range c.Synced {
				ro := ""
				if sf.ReadOnly {
					ro = " (read-only)"
				}
				fmt.Printf("    synced folder %s -> %s%s\n", sf.Host, sf.Guest, ro)
			}
			for _, pr := range c.Provisions {
				what := pr.Destination
				switch {
				case pr.Type == config.ProvisionFile:
					what = pr.Source + " -> " + pr.Destination
				case pr.Path != "":
					what = shellWords(append([]string{pr.Path}, pr.Args...))
				default:
					what = fmt.Sprintf("%d inline command(s)", len(pr.Inline))
				}
				fmt.Printf("    provisioner %s (%s, run %s): %s\n", pr.Name, pr.Type, pr.Run, what)
			}
			for _, kv := range c.LXCConfig {
				fmt.Printf("    lxc config %s = %s\n", kv.Key, kv.Value)
			}
			if c.Primary {
				fmt.Printf("    primary (ssh and the other one-machine commands pick it)\n")
			}
			if c.SSH.ForwardAgent {
				fmt.Printf("    ssh forwards the agent\n")
			}
			if len(c.SSH.ForwardEnv) > 0 {
				fmt.Printf("    ssh passes on %s\n", strings.Join(c.SSH.ForwardEnv, ", "))
			}
			for _, tr := range c.Triggers {
				var parts []string
				if tr.Run != nil {
					parts = append(parts, "on the host "+triggerWhat(tr.Run))
				}
				if tr.RunRemote != nil {
					parts = append(parts, "in the guest "+triggerWhat(tr.RunRemote))
				}
				onError := ""
				if tr.OnError == config.OnErrorContinue {
					onError = ", on error continue"
				}
				fmt.Printf("    trigger %s (%s %s%s): %s\n", tr.Name, tr.When, tr.Command, onError, strings.Join(parts, ", then "))
			}
			if c.Autostart {
				fmt.Printf("    autostart (order %d, delay %s)\n", c.AutostartOrder, c.AutostartDelay)
			}
		}
		return nil
	},
}

// storeText says which store den.hcl's storage asks for, for validate.
func storeText(storage string) string {
	if storage == "" {
		return "auto (the one DEN_HOME gets when the machine is made)"
	}
	return storage
}

// triggerWhat says what a trigger's run or run_remote runs.
func triggerWhat(r *config.TriggerRun) string {
	if r.Path != "" {
		return shellWords(append([]string{r.Path}, r.Args...))
	}
	return fmt.Sprintf("%d inline command(s)", len(r.Inline))
}

// shellWords writes words as a shell would need them typed: plain when
// safe, single-quoted otherwise.
func shellWords(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
