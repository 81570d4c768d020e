package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"firewalliq/probe/lab"
)

// run dispatches a subcommand.
func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: labctl up|sweep|analyze|accuracy [flags]")
	}
	switch args[0] {
	case "up":
		return up(ctx, args[1:])
	case "sweep":
		gone, err := lab.Sweep(ctx)
		for _, g := range gone {
			fmt.Println("deleted", g)
		}
		return err
	case "analyze":
		return analyze(args[1:], os.Stdout)
	case "accuracy":
		return accuracy(args[1:], os.Stdout)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// up builds a lab, writes its names and addresses as shell assignments, and
// keeps it (and its listeners) alive until the context ends.
func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	loss := fs.Float64("loss", 0, "netem loss percent on the firewall's egress, both directions")
	delay := fs.Duration("delay", 0, "netem delay on the firewall's egress, both directions")
	sink := fs.Bool("sink", false, "drop everything from the scanner at the firewall's ingress (max-rate runs)")
	envPath := fs.String("env", "", "write shell assignments (LAB_SCANNER=...) to this file once the lab is up")
	verbose := fs.Bool("v", false, "print every command the lab runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := lab.Sweep(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "labctl: sweep:", err)
	}
	opts := lab.Options{Loss: *loss, Delay: *delay}
	if *verbose {
		opts.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	}
	l, err := lab.New(ctx, opts)
	if err != nil {
		return err
	}
	defer l.Close()
	if *sink {
		if err := l.SetSink(ctx, true); err != nil {
			return err
		}
	}
	env := fmt.Sprintf(`LAB_SCANNER=%s
LAB_FIREWALL=%s
LAB_TARGET_NS=%s
LAB_OUTSIDE_NS=%s
LAB_SCANNER4=%s
LAB_SCANNER6=%s
LAB_TARGET4=%s
LAB_TARGET6=%s
LAB_OUTSIDE4=%s
LAB_OUTSIDE6=%s
LAB_CAPTURE_IF=%s
`, l.Scanner, l.Firewall, l.Target.Namespace, l.Outside.Namespace, l.ScannerV4, l.ScannerV6,
		l.Target.V4, l.Target.V6, l.Outside.V4, l.Outside.V6, lab.FirewallScannerIf)
	fmt.Print(env)
	if *envPath != "" {
		if err := os.WriteFile(*envPath+".tmp", []byte(env), 0o644); err != nil {
			return err
		}
		// Rename so a waiting script never reads a half-written file.
		if err := os.Rename(*envPath+".tmp", *envPath); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "labctl: lab up; Ctrl-C tears it down")
	<-ctx.Done()
	return l.Close()
}

// Analysis is the capture report of one scanner run.
type Analysis struct {
	Packets        int     `json:"capture_packets"`
	Probes         int     `json:"probes"`
	RequestedRate  float64 `json:"requested_pps"`
	AchievedRate   float64 `json:"achieved_pps"`
	RateRatio      float64 `json:"achieved_over_requested"`
	WorstWindow    int     `json:"worst_100ms"`
	WindowCap      int     `json:"cap_100ms"`
	DurationSec    float64 `json:"probe_span_s"`
	OutOfScope     int     `json:"out_of_scope_packets"`
	FirstOutOfScop string  `json:"first_out_of_scope,omitempty"`
}

// analyze reads a capture of the firewall's scanner leg and reports pacing
// and scope figures.
func analyze(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	pcap := fs.String("pcap", "", "capture file (pcap or pcapng)")
	rate := fs.Float64("rate", 0, "requested rate, probes per second")
	scope := fs.String("scope", "198.18.1.0/24,fd00:f1a9:1::/120", "comma-separated in-scope prefixes")
	exclude := fs.String("exclude", "", "comma-separated excluded prefixes")
	scanner := fs.String("scanner", "198.18.0.2,fd00:f1a9::2", "comma-separated scanner addresses")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, err := prefixes(*scope)
	if err != nil {
		return err
	}
	ex, err := prefixes(*exclude)
	if err != nil {
		return err
	}
	var from []netip.Addr
	for _, s := range strings.Split(*scanner, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("scanner: %w", err)
		}
		from = append(from, a)
	}
	pkts, err := lab.ReadPcap(*pcap)
	if err != nil {
		return err
	}
	probes := lab.Probes(pkts, from...)
	a := Analysis{Packets: len(pkts), Probes: len(probes), RequestedRate: *rate,
		AchievedRate: lab.Rate(probes), WorstWindow: lab.WorstWindow(probes, 100*time.Millisecond).Packets}
	if *rate > 0 {
		a.RateRatio = a.AchievedRate / *rate
		a.WindowCap = int(*rate/10) + 1
	}
	if len(probes) > 1 {
		a.DurationSec = probes[len(probes)-1].Time.Sub(probes[0].Time).Seconds()
	}
	bad := lab.OutOfScope(pkts, func(x netip.Addr) bool { return contains(in, x) && !contains(ex, x) }, from...)
	a.OutOfScope = len(bad)
	if len(bad) > 0 {
		a.FirstOutOfScop = fmt.Sprintf("%s %s -> %s/%d", bad[0].Time.Format(time.RFC3339Nano), bad[0].Proto, bad[0].Dst, bad[0].DstPort)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(a)
}

// accuracy grades one scanner's output against the lab's ground truth.
func accuracy(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("accuracy", flag.ContinueOnError)
	format := fs.String("format", "engine", "engine (results.jsonl), nmap (-oX) or masscan (-oL)")
	in := fs.String("in", "", "scanner output file")
	hosts := fs.String("hosts", "198.18.1.0/24", "comma-separated prefixes that were scanned")
	ports := fs.String("ports", "", "comma-separated ports that were scanned")
	proto := fs.String("proto", "tcp", "protocol scanned")
	list := fs.Int("list", 10, "mismatches to list")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	var obs []lab.Observation
	switch *format {
	case "engine":
		obs, err = lab.ParseResults(f)
	case "nmap":
		obs, err = lab.ParseNmapXML(f)
	case "masscan":
		obs, err = lab.ParseMasscanList(f)
	default:
		err = fmt.Errorf("format %q", *format)
	}
	if err != nil {
		return err
	}
	ps, err := prefixes(*hosts)
	if err != nil {
		return err
	}
	var addrs []netip.Addr
	for _, p := range ps {
		addrs = append(addrs, lab.Hosts(p, 1<<16)...)
	}
	var portList []uint16
	for _, s := range strings.Split(*ports, ",") {
		p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil {
			return fmt.Errorf("ports: %w", err)
		}
		portList = append(portList, uint16(p))
	}
	truth := lab.Truth{Rules: lab.DefaultRules(), Services: lab.DefaultServices(),
		Zones: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("fd00:f1a9:1::/120")}}
	acc := truth.Compare(lab.Keys(addrs, *proto, portList), obs)
	type stateRow struct {
		Right, Total int
	}
	out := struct {
		Expected, Right, Missing, OpenRight, Extra int
		Accuracy, OpenAccuracy                     float64
		ByState                                    map[lab.State]stateRow
		Mismatches                                 []string
	}{Expected: acc.Expected, Right: acc.Right, Missing: acc.Missing, OpenRight: acc.OpenRight, Extra: acc.Extra,
		ByState: map[lab.State]stateRow{}}
	if acc.Expected > 0 {
		out.Accuracy = float64(acc.Right) / float64(acc.Expected)
		out.OpenAccuracy = float64(acc.OpenRight) / float64(acc.Expected)
	}
	for s, v := range acc.ByState {
		out.ByState[s] = stateRow{Right: v[0], Total: v[1]}
	}
	for i, m := range acc.Mismatches {
		if i >= *list {
			break
		}
		out.Mismatches = append(out.Mismatches, fmt.Sprintf("%s: got %q (%s) want %q", m.Key, m.Got, m.Reason, m.Want.State))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("prefix %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}
