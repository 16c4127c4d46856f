package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/machine"
	"github.com/den-dev/den/internal/ui"
)

var initCommand = &cli.Command{
	Name:      "init",
	Usage:     "write a commented den.hcl in the current folder",
	ArgsUsage: "[BOX]",
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 1); err != nil {
			return err
		}
		b := "debian/bookworm"
		if cliCtx.NArg() == 1 {
			b = cliCtx.Args().First()
		}
		f, err := os.OpenFile("den.hcl", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("den.hcl already exists in this folder; den init never overwrites it (edit it, or remove it first)")
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(config.Template(b)); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Println("A den.hcl has been written to this folder. Read its comments, then run 'den up'.")
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
			fmt.Printf("  %s: box %s, memory %s, %s, hostname %s, bridge %s\n", c.Name, c.Box, mem, cpus, c.Hostname, c.Bridge)
			switch {
			case c.Privileged:
				fmt.Printf("    privileged (guest root is host root)\n")
			case c.Nesting:
				fmt.Printf("    unprivileged, nesting (may run containers)\n")
			default:
				fmt.Printf("    unprivileged\n")
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
					what = strings.TrimSpace(pr.Path + " " + strings.Join(pr.Args, " "))
				default:
					what = fmt.Sprintf("%d inline command(s)", len(pr.Inline))
				}
				fmt.Printf("    provisioner %s (%s, run %s): %s\n", pr.Name, pr.Type, pr.Run, what)
			}
			for _, kv := range c.LXCConfig {
				fmt.Printf("    lxc config %s = %s\n", kv.Key, kv.Value)
			}
		}
		return nil
	},
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
