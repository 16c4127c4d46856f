package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/provider"
	lxcprovider "github.com/den-dev/den/provider/lxc"
)

var hostCommand = &cli.Command{
	Name:  "host",
	Usage: "host prerequisites",
	Subcommands: []*cli.Command{{
		Name:  "check",
		Usage: "check that this host can run den's machines and build boxes",
		Flags: []cli.Flag{&cli.StringFlag{Name: "bridge", Value: "lxcbr0", Usage: "the bridge machines attach to"}},
		Action: func(cliCtx *cli.Context) error {
			env, err := newEnv()
			if err != nil {
				return err
			}
			bridge := cliCtx.String("bridge")
			// Notes (what works, but less well) come first and never fail
			// the check: without lxcfs a guest's free shows the host's memory.
			for _, p := range env.Providers() {
				if n, ok := p.(provider.HostNoter); ok {
					for _, note := range n.HostNotes(cliCtx.Context) {
						env.UI.Warn("", "%s", note)
					}
				}
			}
			var problems []string
			for _, p := range env.Providers() {
				if err := p.CheckHost(cliCtx.Context, []string{bridge}); err != nil {
					problems = append(problems, hostProblems(err)...)
				}
			}
			if err := host.Require("debootstrap"); err != nil {
				problems = append(problems, hostProblems(err)...)
			}
			if len(problems) > 0 {
				return &host.Error{Problems: problems}
			}
			for _, p := range env.Providers() {
				fmt.Printf("host ready for provider %s: root, %s, bridge %s, debootstrap\n", p.Name(), p.Describe(), bridge)
			}
			fmt.Printf("DEN_HOME: %s\n", env.Home.Path())
			for _, p := range env.Providers() {
				if s, ok := p.(provider.StorageReporter); ok {
					for _, l := range s.StorageInfo() {
						fmt.Println(l)
					}
				}
			}
			return nil
		},
	}},
}

// hostProblems lists the problems of a host check's error.
func hostProblems(err error) []string {
	if he, ok := err.(*host.Error); ok {
		return he.Problems
	}
	return []string{err.Error()}
}

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print den's version, the commit it was built from and the liblxc it uses",
	Action: func(cliCtx *cli.Context) error {
		fmt.Println(versionLine(denVersion, denCommit, lxcprovider.LibraryVersion()))
		return nil
	},
}

// versionLine is what den version prints: "den 1.2.0 (commit 0123abc…,
// liblxc 5.0.2)", without the commit when the build did not set one.
func versionLine(version, commit, liblxc string) string {
	if commit == "" {
		return fmt.Sprintf("den %s (liblxc %s)", version, liblxc)
	}
	return fmt.Sprintf("den %s (commit %s, liblxc %s)", version, commit, liblxc)
}
