package main

import (
	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/machine"
)

var packageCommand = &cli.Command{
	Name:      "package",
	Usage:     "make a box file from a machine (it is stopped first and stays stopped)",
	ArgsUsage: "[MACHINE]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "package.box", Usage: "write the box file to `FILE` (it must not exist)"},
		&cli.StringFlag{Name: "compression", Value: "zstd", Usage: "rootfs compression: zstd, gzip or xz"},
		&cli.StringFlag{Name: "version", Usage: "the box's `VERSION` in its metadata (default: the time of packaging, YYYY.MM.DD.hhmmss in UTC)"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 1); err != nil {
			return err
		}
		comp, err := box.ParseCompression(cliCtx.String("compression"))
		if err != nil {
			return usageError{err}
		}
		m, env, err := projectMachine(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		return env.Package(cliCtx.Context, m, machine.PackageOptions{
			Output:      cliCtx.String("output"),
			Compression: comp,
			Version:     cliCtx.String("version"),
		})
	},
}
