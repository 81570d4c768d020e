// Command proberun drives the probe engine from a signed scope, for
// bench/probe.sh: the same verification and output directory as the
// `firewalliq probe` CLI, without the appliance around it. Built with
// `-tags lab` it carries the lab high-cap safety profile, for the
// maximum-rate measurement only.
//
//	proberun --scope S.signed --trust K.pub --probes tcp-syn --rate N --out DIR
//
// Run it inside the lab's scanner namespace (ip netns exec); see docs/lab.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"firewalliq/probe"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "proberun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	scopePath := flag.String("scope", "", "signed scope file")
	trust := flag.String("trust", "", "public key of the scope signer (PEM)")
	kinds := flag.String("probes", "tcp-syn", "comma-separated probe kinds")
	rate := flag.Int("rate", 0, "packets per second (0: the cap)")
	out := flag.String("out", "", "output directory")
	retries := flag.Int("retries", 0, "retries per unanswered probe (0: engine default, -1: none)")
	timeout := flag.Duration("timeout", 0, "wait for an answer per attempt (0: engine default)")
	seed := flag.Uint64("seed", 1, "target order seed")
	flag.Parse()
	if *scopePath == "" || *trust == "" || *out == "" {
		return errors.New("--scope, --trust and --out are required")
	}
	prof, err := safety.Load()
	if err != nil {
		return fmt.Errorf("safety profile: %w", err)
	}
	pub, err := keys.ReadPublic(*trust)
	if err != nil {
		return err
	}
	signed, err := os.ReadFile(*scopePath)
	if err != nil {
		return err
	}
	sc, err := scope.Verify(signed, pub, time.Now(), prof)
	if err != nil {
		return err
	}
	var ports []probe.Port
	for _, p := range sc.Ports() {
		ports = append(ports, probe.Port{Proto: p.Proto, Number: p.Number})
	}
	var ks []probe.Kind
	for _, k := range strings.Split(*kinds, ",") {
		ks = append(ks, probe.Kind(strings.TrimSpace(k)))
	}
	d, err := probe.OpenDir(*out, probe.Checkpoint{ScanID: "bench", Fingerprint: "bench", Seed: *seed}, false)
	if err != nil {
		return err
	}
	defer d.Close()
	eng, err := probe.New(probe.Config{
		ScanID: "bench", Targets: sc.Targets(*seed), TargetCount: sc.Size(),
		Ports: ports, Kinds: ks, Scope: sc,
		Limits:  probe.Limits{Profile: prof.GlobalPPS, Scope: sc.Doc.MaxPPS, Requested: *rate, PerHost: prof.PerHostPPS},
		Retries: *retries, Timeout: *timeout,
		Results: d.Result, Evidence: d.Evidence(), Checkpoint: d.Checkpoint,
	})
	if err != nil {
		return err
	}
	s, runErr := eng.Run(ctx)
	if err := d.Finish(s, runErr == nil); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	fmt.Println(string(b))
	return runErr
}
