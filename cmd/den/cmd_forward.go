package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/den-dev/den/internal/ui"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/forward"
	"github.com/den-dev/den/internal/machine"
)

// forwardCommand is the port forwarder den starts beside a running machine
// (hidden: den runs it, people don't). It binds every rule's host port,
// writes its pidfile (which tells den it is ready) and forwards until it is
// sent SIGTERM at halt.
var forwardCommand = &cli.Command{
	Name:      machine.ForwardCommand,
	Hidden:    true,
	Usage:     "forward host ports to a machine (run by den up)",
	ArgsUsage: "RULE...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "pidfile", Required: true, Usage: "write the pid to `FILE` once listening"},
		&cli.StringFlag{Name: "project", Usage: "with --machine: the project `DIR`"},
		&cli.StringFlag{Name: "machine", Usage: "tunnel each connection through the ssh connection of machine `NAME`"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 1, -1); err != nil {
			return err
		}
		var dial forward.DialFunc
		if name := cliCtx.String("machine"); name != "" {
			if dir := cliCtx.String("project"); dir != "" {
				if err := os.Chdir(dir); err != nil {
					return err
				}
			}
			m, env, err := oneMachine(name, withOrphans)
			if err != nil {
				return err
			}
			dial = sshDialer(env.WithReporter(ui.Discard), m)
		}
		return forward.Main(cliCtx.Context, cliCtx.String("pidfile"), cliCtx.Args().Slice(), os.Stderr, dial)
	},
}

// sshDialer dials through one ssh connection to machine m, made on first
// use and made again when it breaks (the machine restarted).
func sshDialer(env *machine.Env, m *machine.Machine) forward.DialFunc {
	var mu sync.Mutex
	var client *ssh.Client
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		for attempt := 0; attempt < 2; attempt++ {
			if client == nil {
				c, err := env.Connect(ctx, m)
				if err != nil {
					return nil, err
				}
				client = c
			}
			conn, err := client.DialContext(ctx, network, addr)
			if err == nil {
				return conn, nil
			}
			if _, _, perr := client.SendRequest("keepalive@den", true, nil); perr == nil {
				return nil, err // the connection is fine: the guest refused
			}
			client.Close()
			client = nil
		}
		return nil, fmt.Errorf("no ssh connection to machine %q", m.Name())
	}
}
