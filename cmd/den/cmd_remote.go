package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/layout"
	lxdprovider "github.com/den-dev/den/provider/lxd"
)

// remoteCommand manages the LXD servers den reaches over HTTPS, named as
// LXD's own client names them.
var remoteCommand = &cli.Command{
	Name:  "remote",
	Usage: "LXD servers for provider \"lxd\" (lxd { remote = NAME } in den.hcl)",
	Subcommands: []*cli.Command{
		{
			Name:      "add",
			Usage:     "add an LXD server: it must trust den's client certificate (a token from 'lxc config trust add' on it)",
			ArgsUsage: "NAME https://HOST:8443",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "token", Usage: "a trust `TOKEN` from 'lxc config trust add' on the server"},
				&cli.StringFlag{Name: "password", Usage: "the server's core.trust_password (`PASSWORD`)"},
				&cli.BoolFlag{Name: "accept-certificate", Usage: "with --password: take the certificate the server presents"},
			},
			Action: func(cliCtx *cli.Context) error {
				if err := checkArgs(cliCtx, 2, 2); err != nil {
					return err
				}
				p := lxdprovider.New(layout.DefaultHome().Path())
				r, err := p.AddRemote(cliCtx.Context, cliCtx.Args().Get(0), cliCtx.Args().Get(1), lxdprovider.AddOptions{
					Token: cliCtx.String("token"), Password: cliCtx.String("password"), AcceptCertificate: cliCtx.Bool("accept-certificate"),
				})
				if err != nil {
					return usage(err)
				}
				fmt.Printf("Remote %s added: %s (certificate %s pinned); use it with lxd { remote = %q } in den.hcl.\n", r.Name, r.Addr, r.Fingerprint(), r.Name)
				return nil
			},
		},
		{
			Name:  "list",
			Usage: "list the remotes",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: func(cliCtx *cli.Context) error {
				if err := checkArgs(cliCtx, 0, 0); err != nil {
					return err
				}
				rs, err := lxdprovider.New(layout.DefaultHome().Path()).Remotes()
				if err != nil {
					return err
				}
				if cliCtx.Bool("json") {
					type row struct {
						Name        string `json:"name"`
						Addr        string `json:"addr"`
						Fingerprint string `json:"fingerprint,omitempty"`
					}
					out := []row{}
					for _, r := range rs {
						out = append(out, row{r.Name, r.Addr, r.Fingerprint()})
					}
					return printJSON(out)
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tADDRESS\tCERTIFICATE")
				for _, r := range rs {
					fp := r.Fingerprint()
					if len(fp) > 12 {
						fp = fp[:12]
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Addr, fp)
				}
				return tw.Flush()
			},
		},
		{
			Name:      "remove",
			Usage:     "forget a remote (its server keeps trusting den's certificate until removed there)",
			ArgsUsage: "NAME",
			Action: func(cliCtx *cli.Context) error {
				if err := checkArgs(cliCtx, 1, 1); err != nil {
					return err
				}
				if err := lxdprovider.New(layout.DefaultHome().Path()).RemoveRemote(cliCtx.Context, cliCtx.Args().First()); err != nil {
					return usage(err)
				}
				fmt.Printf("Remote %s removed.\n", cliCtx.Args().First())
				return nil
			},
		},
	},
}

// rsyncCommand copies rsync synced folders into running machines again.
var rsyncCommand = &cli.Command{
	Name:      "rsync",
	Usage:     "copy the rsync synced folders into the running machines again",
	ArgsUsage: "[MACHINE...]",
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, onlyConfigured)
		if err != nil {
			return err
		}
		return env.Rsync(cliCtx.Context, ms)
	},
}

// rsyncAutoCommand copies rsync synced folders whenever they change.
var rsyncAutoCommand = &cli.Command{
	Name:      "rsync-auto",
	Usage:     "copy the rsync synced folders into the running machines on every change, until Ctrl-C",
	ArgsUsage: "[MACHINE...]",
	Action: func(cliCtx *cli.Context) error {
		ms, env, err := projectMachines(cliCtx, onlyConfigured)
		if err != nil {
			return err
		}
		return env.RsyncAuto(cliCtx.Context, ms)
	},
}
