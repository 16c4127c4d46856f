package main

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/config"
)

// portRow is one forwarded port of `den port --json`.
type portRow struct {
	Guest    int    `json:"guest"`
	Host     int    `json:"host"`
	HostIP   string `json:"host_ip"`
	Protocol string `json:"protocol"`
}

var portCommand = &cli.Command{
	Name:      "port",
	Usage:     "list a machine's forwarded ports (guest => host), as in den.hcl",
	ArgsUsage: "[MACHINE]",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "guest", Usage: "print only the host port that guest port `PORT` is forwarded to"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
	},
	Action: func(cliCtx *cli.Context) error {
		if err := checkArgs(cliCtx, 0, 1); err != nil {
			return err
		}
		m, _, err := projectMachine(cliCtx, onlyConfigured)
		if err != nil {
			return err
		}
		fwds := m.Config.Forwards
		if g := cliCtx.Int("guest"); g != 0 {
			for _, f := range fwds {
				if f.Guest == g {
					fmt.Println(f.Host)
					return nil
				}
			}
			return fmt.Errorf("machine %q forwards no guest port %d (see 'den port %s')", m.Name(), g, m.Name())
		}
		if cliCtx.Bool("json") {
			rows := []portRow{}
			for _, f := range fwds {
				rows = append(rows, portRow{f.Guest, f.Host, f.HostIP, f.Protocol})
			}
			return printJSON(rows)
		}
		if len(fwds) == 0 {
			fmt.Printf("Machine %q forwards no ports: add a forward block to %s.\n", m.Name(), m.Project.File)
			return nil
		}
		fmt.Println("The forwarded ports for the machine are listed below. Please note that")
		fmt.Println("these values may differ from values configured in den.hcl if the")
		fmt.Println("machine was started before den.hcl changed ('den reload' applies it).")
		fmt.Println()
		for _, f := range fwds {
			fmt.Printf("    %5d (guest) => %s (host, %s)\n", f.Guest, hostPort(f), f.Protocol)
		}
		return nil
	},
}

func hostPort(f config.Forward) string {
	if f.HostIP == config.DefaultForwardIP {
		return strconv.Itoa(f.Host)
	}
	return fmt.Sprintf("%s:%d", f.HostIP, f.Host)
}

var uploadCommand = &cli.Command{
	Name:      "upload",
	Usage:     "copy a host file or folder into a machine (as its login user)",
	ArgsUsage: "SOURCE [DESTINATION] [MACHINE]",
	Description: "DESTINATION defaults to SOURCE's name in the login user's home; a relative DESTINATION is relative to it.\n" +
		"With three arguments the last names the machine; with two, the second is the machine when the project has one by that name.",
	Action: func(cliCtx *cli.Context) error {
		src, dst, name, err := uploadArgs(cliCtx)
		if err != nil {
			return err
		}
		m, env, err := oneMachine(name, withOrphans)
		if err != nil {
			return err
		}
		_, err = env.Upload(cliCtx.Context, m, src, dst)
		return err
	},
}

// uploadArgs reads den upload's SOURCE [DESTINATION] [MACHINE]: with two
// arguments the second is the machine when the project has one by that
// name.
func uploadArgs(cliCtx *cli.Context) (src, dst, name string, err error) {
	if err := checkArgs(cliCtx, 1, 3); err != nil {
		return "", "", "", err
	}
	args := cliCtx.Args().Slice()
	src = args[0]
	switch len(args) {
	case 2:
		dst = args[1]
		if ms, err := selectNames([]string{args[1]}); err == nil && len(ms) == 1 {
			dst, name = "", args[1]
		}
	case 3:
		dst, name = args[1], args[2]
	}
	return src, dst, name, nil
}
