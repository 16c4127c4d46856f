package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/server"
)

var serveCommand = &cli.Command{
	Name:  "serve",
	Usage: "run den's REST API (LXD-shaped) on a unix socket and optionally HTTPS",
	Description: "den serve drives this DEN_HOME's machines for other programs and for users who are not root\n" +
		"(den, run by them, talks to it). Callers on the socket are who they are (SO_PEERCRED): root may do\n" +
		"everything, another user only what they could reach themselves. HTTPS clients need a certificate\n" +
		"trusted with 'den serve trust add'; they act as the server's administrator.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "socket", Value: server.DefaultSocket, EnvVars: []string{"DEN_SOCKET"}, Usage: "listen on the unix socket `PATH`"},
		&cli.StringFlag{Name: "group", Value: server.DefaultGroup, Usage: "the socket's `GROUP` (created when missing); its members may connect"},
		&cli.StringFlag{Name: "listen", Usage: "also listen on HTTPS at `ADDR:PORT` (client certificates only)"},
		&cli.BoolFlag{Name: "allow-privileged", Usage: "let users who are not root run privileged machines (root-equivalent)"},
		&cli.BoolFlag{Name: "allow-public-forwards", Usage: "let users who are not root forward ports on addresses beyond loopback"},
		&cli.StringSliceFlag{Name: "allow-bridge", Usage: "a `BRIDGE` users who are not root may attach machines to (default lxcbr0; repeatable)"},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, Usage: "on SIGTERM, how long running operations may go on before they are cancelled"},
	},
	Subcommands: []*cli.Command{serveTrustCommand},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 0); err != nil {
			return err
		}
		if os.Geteuid() != 0 {
			return fmt.Errorf("den serve runs as root (it drives LXC for every user); start it with sudo or its systemd unit")
		}
		env, err := newEnv()
		if err != nil {
			return err
		}
		lk, err := server.LockHome(env.Home)
		if err != nil {
			return err
		}
		defer lk.Unlock()
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		cfg := server.Config{
			Env:                 env,
			Version:             denVersion,
			AllowPrivileged:     cliCtx.Bool("allow-privileged"),
			AllowPublicForwards: cliCtx.Bool("allow-public-forwards"),
			Bridges:             cliCtx.StringSlice("allow-bridge"),
			Log:                 log,
		}
		listeners, err := server.Activated()
		if err != nil {
			return err
		}
		if len(listeners) == 0 {
			l, err := server.ListenUnix(cliCtx.String("socket"), cliCtx.String("group"))
			if err != nil {
				return err
			}
			listeners = append(listeners, l)
		}
		for _, l := range listeners {
			cfg.Addresses = append(cfg.Addresses, "unix:"+l.Addr().String())
		}
		var tlsListener net.Listener
		if addr := cliCtx.String("listen"); addr != "" {
			if tlsListener, err = net.Listen("tcp", addr); err != nil {
				return err
			}
			cfg.Addresses = append(cfg.Addresses, "https://"+tlsListener.Addr().String())
		}
		srv, err := server.New(cfg)
		if err != nil {
			return err
		}
		errs := make(chan error, len(listeners)+1)
		for _, l := range listeners {
			go func() { errs <- srv.ServeUnix(l) }()
		}
		if tlsListener != nil {
			host, _, _ := net.SplitHostPort(tlsListener.Addr().String())
			if err := srv.EnableTLS([]string{host}); err != nil {
				return err
			}
			go func() { errs <- srv.ServeTLS(tlsListener) }()
		}
		log.Info("den serve ready", "den_home", env.Home.Path(), "addresses", cfg.Addresses, "pid", os.Getpid())
		// SIGTERM or SIGINT: finish or cancel the running operations, then
		// stop. The machines keep running.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sig)
		var serveErr error
		select {
		case s := <-sig:
			log.Info("stopping", "signal", s.String())
		case serveErr = <-errs:
		}
		ctx, cancel := context.WithTimeout(context.Background(), cliCtx.Duration("shutdown-timeout")+time.Minute)
		defer cancel()
		srv.Shutdown(ctx, cliCtx.Duration("shutdown-timeout"))
		log.Info("den serve stopped")
		return serveErr
	},
}

var serveTrustCommand = &cli.Command{
	Name:  "trust",
	Usage: "manage the client certificates den serve trusts over HTTPS",
	Subcommands: []*cli.Command{
		{
			Name:      "add",
			Usage:     "trust a client certificate (PEM); its holder may do everything",
			ArgsUsage: "CERT",
			Flags:     []cli.Flag{&cli.StringFlag{Name: "name", Usage: "call it `NAME` (default: its common name)"}},
			Action: func(cliCtx *cli.Context) error {
				if err := checkArgs(cliCtx, 1, 1); err != nil {
					return err
				}
				data, err := os.ReadFile(cliCtx.Args().First())
				if err != nil {
					return err
				}
				c, err := server.NewTrustStore(layout.DefaultHome()).Add(cliCtx.String("name"), data)
				if err != nil {
					return usage(err)
				}
				fmt.Printf("Trusted %s (sha256 %s).\n", c.Name, c.Fingerprint)
				return nil
			},
		},
		{
			Name:  "list",
			Usage: "list the trusted client certificates",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: func(cliCtx *cli.Context) error {
				certs, err := server.NewTrustStore(layout.DefaultHome()).List()
				if err != nil {
					return err
				}
				if cliCtx.Bool("json") {
					return printJSON(certs)
				}
				if len(certs) == 0 {
					fmt.Println("No client certificate is trusted. Add one with 'den serve trust add CERT'.")
					return nil
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tFINGERPRINT\tADDED")
				for _, c := range certs {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Fingerprint[:16], c.Added.Local().Format("2006-01-02 15:04"))
				}
				return tw.Flush()
			},
		},
		{
			Name:      "remove",
			Usage:     "stop trusting a client certificate",
			ArgsUsage: "NAME|FINGERPRINT",
			Action: func(cliCtx *cli.Context) error {
				if err := checkArgs(cliCtx, 1, 1); err != nil {
					return err
				}
				if err := server.NewTrustStore(layout.DefaultHome()).Remove(cliCtx.Args().First()); err != nil {
					return usage(err)
				}
				fmt.Printf("Removed %s.\n", cliCtx.Args().First())
				return nil
			},
		},
	},
}
