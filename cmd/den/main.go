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
	err := app.RunContext(ctx, intersperse(app, os.Args))
	stop()
	os.Exit(report(os.Stderr, err))
}
