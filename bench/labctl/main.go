// Command labctl builds the probe lab (package probe/lab) by hand or for
// bench/probe.sh, and analyses what scanners did in it.
//
//	labctl up [--loss PCT] [--delay D] [--env FILE]   build, print names, serve until SIGINT/SIGTERM
//	labctl sweep                                      delete namespaces of dead lab processes
//	labctl analyze --pcap F --rate R [--scanner ...]  worst 100 ms window, achieved rate, out-of-scope packets
//	labctl accuracy --format nmap|masscan|engine --in F --ports P --hosts N [--proto tcp]
//
// Every command that touches the network only does so inside the lab's
// namespaces; see docs/lab.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "labctl:", err)
		os.Exit(1)
	}
}
