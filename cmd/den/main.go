// Command den makes disposable development machines from a den.hcl: LXC
// system containers with the project folder mounted inside.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp()
	args := os.Args
	if len(args) < 2 || args[1] != completeCommand.Name {
		args = intersperse(app, args) // completion words stay as typed
	}
	err := app.RunContext(ctx, args)
	stop()
	os.Exit(report(os.Stderr, err))
}
