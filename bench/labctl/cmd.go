package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	case "poke":
		return poke(ctx, args[1:])
	case "record":
		return record(args[1:], os.Stdout)
	case "report":
		return report(args[1:], os.Stdout)
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

// poke sends an unsolicited ICMP echo reply from the firewall namespace to
// the scanner every interval until the context ends. A host drops such a
// packet silently, so it starts no conversation and never appears as
// scanner traffic; it only wakes masscan, whose receive thread otherwise
// blocks in a packet read forever once the lab falls silent and never
// exits.
func poke(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("poke", flag.ContinueOnError)
	fwNS := fs.String("ns", "", "firewall namespace")
	from := fs.String("from", "198.18.0.1", "firewall address on the scanner link")
	to := fs.String("to", "198.18.0.2", "scanner address")
	every := fs.Duration("every", 200*time.Millisecond, "interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var conn net.PacketConn
	err := lab.Do(*fwNS, func() error {
		c, err := net.ListenPacket("ip4:icmp", *from)
		conn = c
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	dst := &net.IPAddr{IP: net.ParseIP(*to)}
	// Echo reply, id 0xf1a9, seq 0, no payload; checksum precomputed
	// over the 8 bytes (type 0, code 0).
	msg := []byte{0, 0, 0, 0, 0xf1, 0xa9, 0, 0}
	sum := ^uint16(0xf1a9)
	msg[2], msg[3] = byte(sum>>8), byte(sum)
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		// A lab with loss drops some of the firewall's own packets, and a
		// locally dropped packet fails with EPERM; the next poke will do.
		if _, err := conn.WriteTo(msg, dst); err != nil && !errors.Is(err, syscall.EPERM) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
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
	hist := fs.Duration("hist", 0, "also print probes per bucket of this width (where a run spends its time)")
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
	a, err := computeAnalysis(*pcap, *rate, in, ex, from)
	if err != nil {
		return err
	}
	if *hist > 0 {
		pkts, err := lab.ReadPcap(*pcap)
		if err != nil {
			return err
		}
		probes := lab.Probes(pkts, from...)
		if len(probes) > 0 {
			counts := map[int]int{}
			last := 0
			for _, p := range probes {
				b := int(p.Time.Sub(probes[0].Time) / *hist)
				counts[b]++
				last = max(last, b)
			}
			for b := 0; b <= last; b++ {
				fmt.Fprintf(w, "%8.2fs %6d\n", (time.Duration(b) * *hist).Seconds(), counts[b])
			}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(a)
}

// computeAnalysis reads a capture and computes the pacing and scope figures.
func computeAnalysis(pcap string, rate float64, in, ex []netip.Prefix, from []netip.Addr) (Analysis, error) {
	pkts, err := lab.ReadPcap(pcap)
	if err != nil {
		return Analysis{}, err
	}
	probes := lab.Probes(pkts, from...)
	a := Analysis{Packets: len(pkts), Probes: len(probes), RequestedRate: rate,
		AchievedRate: lab.Rate(probes), WorstWindow: lab.WorstWindow(probes, 100*time.Millisecond).Packets}
	if rate > 0 {
		a.RateRatio = a.AchievedRate / rate
		a.WindowCap = int(rate/10) + 1
	}
	if len(probes) > 1 {
		a.DurationSec = probes[len(probes)-1].Time.Sub(probes[0].Time).Seconds()
	}
	bad := lab.OutOfScope(pkts, func(x netip.Addr) bool { return contains(in, x) && !contains(ex, x) }, from...)
	a.OutOfScope = len(bad)
	if len(bad) > 0 {
		a.FirstOutOfScop = fmt.Sprintf("%s %s -> %s/%d", bad[0].Time.Format(time.RFC3339Nano), bad[0].Proto, bad[0].Dst, bad[0].DstPort)
	}
	return a, nil
}

// AccuracyReport is a scanner's agreement with the ground truth.
type AccuracyReport struct {
	Expected     int                  `json:"expected"`
	Right        int                  `json:"right"`
	Missing      int                  `json:"missing"`
	OpenRight    int                  `json:"open_right"`
	Extra        int                  `json:"extra"`
	Accuracy     float64              `json:"accuracy"`
	OpenAccuracy float64              `json:"open_accuracy"`
	ByState      map[lab.State][2]int `json:"by_state"` // [right, total]
	Mismatches   []string             `json:"mismatches,omitempty"`
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
	r, err := computeAccuracy(*format, *in, *hosts, *ports, *proto, *list)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func computeAccuracy(format, in, hosts, ports, proto string, list int) (AccuracyReport, error) {
	f, err := os.Open(in)
	if err != nil {
		return AccuracyReport{}, err
	}
	defer f.Close()
	var obs []lab.Observation
	switch format {
	case "engine":
		obs, err = lab.ParseResults(f)
	case "nmap":
		obs, err = lab.ParseNmapXML(f)
	case "masscan":
		obs, err = lab.ParseMasscanList(f)
	default:
		err = fmt.Errorf("format %q", format)
	}
	if err != nil {
		return AccuracyReport{}, err
	}
	ps, err := prefixes(hosts)
	if err != nil {
		return AccuracyReport{}, err
	}
	var addrs []netip.Addr
	for _, p := range ps {
		addrs = append(addrs, lab.Hosts(p, 1<<16)...)
	}
	var portList []uint16
	for _, s := range strings.Split(ports, ",") {
		p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil {
			return AccuracyReport{}, fmt.Errorf("ports: %w", err)
		}
		portList = append(portList, uint16(p))
	}
	truth := lab.Truth{Rules: lab.DefaultRules(), Services: lab.DefaultServices(),
		Zones: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("fd00:f1a9:1::/120")}}
	acc := truth.Compare(lab.Keys(addrs, proto, portList), obs)
	out := AccuracyReport{Expected: acc.Expected, Right: acc.Right, Missing: acc.Missing, OpenRight: acc.OpenRight,
		Extra: acc.Extra, ByState: acc.ByState}
	if acc.Expected > 0 {
		out.Accuracy = float64(acc.Right) / float64(acc.Expected)
		out.OpenAccuracy = float64(acc.OpenRight) / float64(acc.Expected)
	}
	for i, m := range acc.Mismatches {
		if i >= list {
			break
		}
		out.Mismatches = append(out.Mismatches, fmt.Sprintf("%s: got %q (%s) want %q", m.Key, m.Got, m.Reason, m.Want.State))
	}
	return out, nil
}

// Record is one benchmark run: a scanner at a rate in a lab with some loss.
type Record struct {
	Tool     string         `json:"tool"`
	Rate     float64        `json:"rate"`
	Loss     float64        `json:"loss"`
	Rep      int            `json:"rep"`
	WallSec  float64        `json:"wall_s"`
	CPUSec   float64        `json:"cpu_s"`
	CPUPer1k float64        `json:"cpu_ms_per_1000_probes"`
	Wire     Analysis       `json:"wire"`
	Accuracy AccuracyReport `json:"accuracy"`
}

// record analyses one run (capture and output) and prints it as a JSON line.
func record(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	var r Record
	fs.StringVar(&r.Tool, "tool", "", "scanner name")
	fs.Float64Var(&r.Rate, "rate", 0, "requested rate")
	fs.Float64Var(&r.Loss, "loss", 0, "lab loss percent")
	fs.IntVar(&r.Rep, "rep", 0, "repetition")
	fs.Float64Var(&r.WallSec, "wall", 0, "wall seconds")
	fs.Float64Var(&r.CPUSec, "cpu", 0, "CPU seconds (user+system)")
	pcap := fs.String("pcap", "", "firewall capture")
	format := fs.String("format", "engine", "output format")
	in := fs.String("in", "", "scanner output")
	hosts := fs.String("hosts", "198.18.1.0/24", "scanned prefixes (also the scope)")
	ports := fs.String("ports", "", "scanned ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in4, err := prefixes(*hosts)
	if err != nil {
		return err
	}
	from := []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("fd00:f1a9::2")}
	if r.Wire, err = computeAnalysis(*pcap, r.Rate, in4, nil, from); err != nil {
		return err
	}
	if r.Accuracy, err = computeAccuracy(*format, *in, *hosts, *ports, "tcp", 5); err != nil {
		return err
	}
	if r.Wire.Probes > 0 {
		r.CPUPer1k = r.CPUSec * 1000 / float64(r.Wire.Probes) * 1000
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// report prints a Markdown table of the medians of each (tool, rate, loss).
func report(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "", "JSON lines written by record")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	type group struct {
		key  string
		recs []Record
	}
	var groups []*group
	idx := map[string]*group{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		k := fmt.Sprintf("%s|%g|%g", r.Tool, r.Rate, r.Loss)
		g, ok := idx[k]
		if !ok {
			g = &group{key: k}
			idx[k] = g
			groups = append(groups, g)
		}
		g.recs = append(g.recs, r)
	}
	fmt.Fprintln(w, "| scanner | rate (pps) | loss | runs | wall (s) | achieved / requested | worst 100 ms (cap) | accuracy | open/not-open | rejected right | closed right | filtered right | out of scope | CPU ms / 1000 probes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, g := range groups {
		med := func(f func(Record) float64) float64 {
			v := make([]float64, len(g.recs))
			for i, r := range g.recs {
				v[i] = f(r)
			}
			return median(v)
		}
		r0 := g.recs[0]
		st := func(s lab.State) string {
			return fmt.Sprintf("%.0f/%d", med(func(r Record) float64 { return float64(r.Accuracy.ByState[s][0]) }), r0.Accuracy.ByState[s][1])
		}
		worstMax := 0
		oos := 0
		for _, r := range g.recs {
			worstMax = max(worstMax, r.Wire.WorstWindow)
			oos += r.Wire.OutOfScope
		}
		// rejected and closed are graded apart: a TCP probe answered by
		// ICMP port unreachable is a firewall's REJECT (rejected), which a
		// scanner that calls it closed (or filtered) gets wrong.
		fmt.Fprintf(w, "| %s | %g | %g%% | %d | %.2f | %.3f | %.0f (max %d; cap %d) | %.1f%% | %.1f%% | %s | %s | %s | %d | %.0f |\n",
			r0.Tool, r0.Rate, r0.Loss, len(g.recs),
			med(func(r Record) float64 { return r.WallSec }),
			med(func(r Record) float64 { return r.Wire.RateRatio }),
			med(func(r Record) float64 { return float64(r.Wire.WorstWindow) }), worstMax, r0.Wire.WindowCap,
			100*med(func(r Record) float64 { return r.Accuracy.Accuracy }),
			100*med(func(r Record) float64 { return r.Accuracy.OpenAccuracy }),
			st(lab.Rejected), st(lab.Closed), st(lab.Filtered), oos,
			med(func(r Record) float64 { return r.CPUPer1k }))
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
