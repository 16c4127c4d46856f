package main

import (
	"fmt"

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
		&cli.StringFlag{Name: "format", Value: "den", Usage: "box `FORMAT`: den (den's own) or vagrant-lxc (for vagrant-lxc 1.4: a vagrant user with Vagrant's insecure key, gzip)"},
		&cli.StringFlag{Name: "compression", Value: "zstd", Usage: "rootfs compression: zstd, gzip or xz (vagrant-lxc: gzip only)"},
		&cli.StringFlag{Name: "version", Usage: "the box's `VERSION` in its metadata (default: the time of packaging, YYYY.MM.DD.hhmmss in UTC)"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 1); err != nil {
			return err
		}
		format, err := box.ParseFormat(cliCtx.String("format"))
		if err != nil {
			return usageError{err}
		}
		comp, err := box.ParseCompression(cliCtx.String("compression"))
		if err != nil {
			return usageError{err}
		}
		if format == box.FormatVagrantLXC {
			if cliCtx.IsSet("compression") && comp != box.Gzip {
				return usageError{fmt.Errorf("--format vagrant-lxc writes a gzip rootfs (vagrant-lxc unpacks it with tar xfz): drop --compression %s", comp)}
			}
			comp = box.Gzip
		}
		m, env, err := projectMachine(cliCtx, withOrphans)
		if err != nil {
			return err
		}
		return env.Package(cliCtx.Context, m, machine.PackageOptions{
			Output:      cliCtx.String("output"),
			Format:      format,
			Compression: comp,
			Version:     cliCtx.String("version"),
		})
	},
}
