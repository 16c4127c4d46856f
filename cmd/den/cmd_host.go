package main

import (
	"fmt"

	golxc "github.com/lxc/go-lxc"
	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/host"
	"github.com/den-dev/den/internal/layout"
)

var hostCommand = &cli.Command{
	Name:  "host",
	Usage: "host prerequisites",
	Subcommands: []*cli.Command{{
		Name:  "check",
		Usage: "check that this host can run den's machines and build boxes",
		Flags: []cli.Flag{&cli.StringFlag{Name: "bridge", Value: "lxcbr0", Usage: "the bridge machines attach to"}},
		Action: func(cliCtx *cli.Context) error {
			bridge := cliCtx.String("bridge")
			if err := host.Check(host.Need{LXC: true, Bridge: bridge, Debootstrap: true}); err != nil {
				return err
			}
			pfx, _ := host.BridgePrefix(bridge)
			fmt.Printf("host ready: root, liblxc %s, cgroups %s, bridge %s (%s), debootstrap\n", golxc.Version(), host.CgroupLayout(), bridge, pfx)
			fmt.Printf("DEN_HOME: %s\n", layout.DefaultHome().Path())
			return nil
		},
	}},
}

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print den's version and the liblxc it uses",
	Action: func(cliCtx *cli.Context) error {
		fmt.Printf("den %s (liblxc %s)\n", version, golxc.Version())
		return nil
	},
}
