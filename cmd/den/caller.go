package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/den-dev/den/internal/hostcmd"
	"github.com/den-dev/den/internal/machine"
)

// noTriggersFlag is on every command that runs den.hcl's triggers.
var noTriggersFlag = &cli.BoolFlag{Name: "no-triggers", Usage: "run none of den.hcl's triggers"}

// forCaller makes env's operations run for the user who ran den, with
// --no-triggers: host triggers run as that user. A user den cannot look
// up is the error of the host triggers that need it, not of the command.
func forCaller(cliCtx *cli.Context, env *machine.Env) *machine.Env {
	u, err := invokingUser()
	return env.WithCaller(machine.Caller{User: u, UserErr: err, NoTriggers: cliCtx.Bool("no-triggers")})
}

// invokingUser is the user who ran den: under sudo (den is root and
// SUDO_UID is set) the user who ran sudo, with SUDO_GID, never root for
// them; otherwise den's own user.
func invokingUser() (*hostcmd.User, error) {
	s := os.Getenv("SUDO_UID")
	if os.Geteuid() != 0 || s == "" || s == "0" {
		return hostcmd.Current()
	}
	uid, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("SUDO_UID=%q is not a user id: host triggers run as the user who ran sudo", s)
	}
	gid, err := strconv.ParseUint(os.Getenv("SUDO_GID"), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("SUDO_GID=%q is not a group id: host triggers run as the user who ran sudo, with that group", os.Getenv("SUDO_GID"))
	}
	return hostcmd.Lookup(uint32(uid), uint32(gid))
}
