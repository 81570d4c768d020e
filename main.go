// Command firewalliq is the FirewallIQ Secure appliance: one static binary
// holding the console, the store, the probe engine and the evidence client.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"firewalliq/appliance/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
