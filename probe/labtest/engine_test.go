package labtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/probe"
	"firewalliq/probe/lab"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// childEnv names the file holding a childConfig; when set, the test binary
// is the engine process running inside the lab's scanner namespace.
const childEnv = "FIQ_LABTEST_CHILD"

// childConfig is what the parent test hands the engine process.
type childConfig struct {
	Signed  []byte        `json:"signed"`
	Pub     []byte        `json:"pub"`
	Kinds   []string      `json:"kinds"`
	Rate    int           `json:"rate"`
	Retries int           `json:"retries"`
	Timeout time.Duration `json:"timeout"`
	Out     string        `json:"out"`
	Seed    uint64        `json:"seed"`
	NoRaw   bool          `json:"no_raw"`
}

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		if err := runChild(p); err != nil {
			fmt.Fprintln(os.Stderr, "labtest child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is the engine process: it verifies the signed scope against the
// compiled-in profile exactly as the CLI does and runs the engine into an
// output directory (results.jsonl, probes.pcapng, summary.json).
func runChild(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg childConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	prof, err := safety.Load()
	if err != nil {
		return fmt.Errorf("safety profile: %w", err)
	}
	sc, err := scope.Verify(cfg.Signed, ed25519.PublicKey(cfg.Pub), time.Now(), prof)
	if err != nil {
		return err
	}
	var ports []probe.Port
	for _, p := range sc.Ports() {
		ports = append(ports, probe.Port{Proto: p.Proto, Number: p.Number})
	}
	var kinds []probe.Kind
	for _, k := range cfg.Kinds {
		kinds = append(kinds, probe.Kind(k))
	}
	d, err := probe.OpenDir(cfg.Out, probe.Checkpoint{ScanID: "labtest", Fingerprint: "labtest", Seed: cfg.Seed}, false)
	if err != nil {
		return err
	}
	defer d.Close()
	eng, err := probe.New(probe.Config{
		ScanID: "labtest", Targets: sc.Targets(cfg.Seed), TargetCount: sc.Size(),
		Ports: ports, Kinds: kinds, Scope: sc,
		Limits:  probe.Limits{Profile: prof.GlobalPPS, Scope: sc.Doc.MaxPPS, Requested: cfg.Rate, PerHost: prof.PerHostPPS},
		Retries: cfg.Retries, Timeout: cfg.Timeout, NoRaw: cfg.NoRaw,
		Results: d.Result, Evidence: d.Evidence(), Checkpoint: d.Checkpoint,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, runErr := eng.Run(ctx)
	if err := d.Finish(s, runErr == nil); err != nil {
		return err
	}
	return runErr
}

// scenario is one engine run in a lab.
type scenario struct {
	loss    float64
	rate    int
	retries int
	kinds   []string
	ports   string
	icmp    bool
	// cidrs replaces the scope's default CIDRs (the whole target zone).
	cidrs []string
	// noRaw runs the engine as without CAP_NET_RAW (tcp-syn falls back
	// to tcp-connect).
	noRaw bool
}

// outcome is everything a scenario produced.
type outcome struct {
	lab     *lab.Lab
	scope   *scope.Scope
	asked   []lab.Key
	obs     []lab.Observation
	results map[lab.Key]probe.Result
	rows    []probe.Result
	dupes   []lab.Key
	summary probe.Summary
	pkts    []lab.Packet
	capture lab.CaptureStats
}

// allPorts is every port the lab's ground truth distinguishes.
const allPorts = "tcp:22,25,80,443,3306,8080,8081,8443 udp:53,123,161,514,1900,5060"

// excludedHost is excluded from the scope in both families: it exists in
// the target namespace and answers, so only the scope keeps it unprobed.
const excludedHost = 50

func hostAddr(p netip.Prefix, h uint8) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	b[len(b)-1] = h
	a, _ := netip.AddrFromSlice(b)
	return a
}

// run builds a lab, signs a scope over its target zone, runs the engine in
// the scanner namespace under a firewall capture, and collects everything.
func run(t *testing.T, sc scenario) *outcome {
	t.Helper()
	if testing.Short() {
		// The -race -short pass of scripts/test.sh would run the engine
		// race-instrumented for a minute; the full pass covers it.
		t.Skip("engine lab scans take ~15 s each; skipped in -short mode")
	}
	l := lab.NewT(t, lab.Options{Loss: sc.loss})
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	probes := make([]safety.Kind, 0, len(sc.kinds))
	for _, k := range sc.kinds {
		probes = append(probes, safety.Kind(k))
	}
	cidrs := sc.cidrs
	if cidrs == nil {
		cidrs = []string{l.Target.V4.String(), l.Target.V6.String()}
	}
	doc := scope.Document{
		ID: "labtest-" + strings.ReplaceAll(t.Name(), "/", "-"), Tenant: "lab", Name: "lab target zone",
		Environment: scope.EnvNonProduction,
		CIDRs:       cidrs,
		Exclude: []string{
			netip.PrefixFrom(hostAddr(l.Target.V4, excludedHost), 32).String(),
			netip.PrefixFrom(hostAddr(l.Target.V6, excludedHost), 128).String(),
		},
		Ports: sc.ports, Probes: probes,
		NotBefore: now.Add(-time.Hour).UTC().Truncate(time.Second), NotAfter: now.Add(time.Hour).UTC().Truncate(time.Second),
		MaxPPS: sc.rate,
	}
	signed, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	verified, err := scope.Verify(signed, pub, now, prof)
	if err != nil {
		t.Fatal(err)
	}
	o := &outcome{lab: l, scope: verified, results: map[lab.Key]probe.Result{}}

	// What was asked: every in-scope address times every port (and echo).
	var addrs []netip.Addr
	for _, z := range []netip.Prefix{l.Target.V4, l.Target.V6} {
		for _, a := range lab.Hosts(z, 256) {
			if verified.Contains(a) {
				addrs = append(addrs, a)
			}
		}
	}
	for _, p := range verified.Ports() {
		o.asked = append(o.asked, lab.Keys(addrs, p.Proto, []uint16{p.Number})...)
	}
	if sc.icmp {
		o.asked = append(o.asked, lab.Keys(addrs, lab.ICMP, []uint16{0})...)
	}

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "child.json")
	out := filepath.Join(dir, "out")
	cb, _ := json.Marshal(childConfig{Signed: signed, Pub: pub, Kinds: sc.kinds, Rate: sc.rate,
		Retries: sc.retries, Timeout: time.Second, Out: out, Seed: 7, NoRaw: sc.noRaw})
	if err := os.WriteFile(cfgPath, cb, 0o600); err != nil {
		t.Fatal(err)
	}
	capPath := filepath.Join(dir, "firewall.pcap")
	c, err := l.StartCapture(capPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(ctx, l.Scanner, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	var combined bytes.Buffer
	cmd.Stdout, cmd.Stderr = &combined, &combined
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("engine ran %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(100 * time.Millisecond) // let the last replies reach the capture
	if o.capture, err = c.Stop(); err != nil {
		t.Fatalf("capture: %v", err)
	}
	if runErr != nil {
		t.Fatalf("engine process: %v\n%s", runErr, combined.String())
	}
	if o.pkts, err = lab.ReadPcap(capPath); err != nil {
		t.Fatal(err)
	}
	sb, err := os.ReadFile(filepath.Join(out, probe.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(sb, &o.summary); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, probe.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		var r probe.Result
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			t.Fatalf("results: %v", err)
		}
		a, err := netip.ParseAddr(r.Target)
		if err != nil {
			t.Fatalf("results: target %q: %v", r.Target, err)
		}
		k := lab.Key{Addr: a, Proto: r.Proto, Port: r.Port}
		if prev, dup := o.results[k]; dup && prev.Probe == r.Probe {
			o.dupes = append(o.dupes, k)
		}
		o.results[k] = r
		o.rows = append(o.rows, r)
		o.obs = append(o.obs, lab.Observation{Key: k, State: lab.State(r.State), Reason: r.Reason})
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return o
}

// checkWire asserts what the firewall capture proves whatever the results:
// nothing left the scope, the excluded hosts and the outside zone saw
// nothing, and no 100 ms window carried more than rate/10+1 probes.
func checkWire(t *testing.T, o *outcome, rate int) {
	t.Helper()
	l := o.lab
	if o.capture.Dropped != 0 {
		t.Errorf("capture dropped %d frames: the proof is incomplete", o.capture.Dropped)
	}
	if bad := lab.OutOfScope(o.pkts, o.scope.Contains, l.ScannerV4, l.ScannerV6); len(bad) > 0 {
		t.Errorf("%d packets left the scope, first %+v", len(bad), bad[0])
	}
	excluded := []netip.Addr{hostAddr(l.Target.V4, excludedHost), hostAddr(l.Target.V6, excludedHost)}
	for _, p := range lab.From(o.pkts, l.ScannerV4, l.ScannerV6) {
		if slices.Contains(excluded, p.Dst) || l.Outside.Contains(p.Dst) {
			t.Errorf("packet to excluded/outside address: %+v", p)
		}
	}
	probes := lab.Probes(o.pkts, l.ScannerV4, l.ScannerV6)
	w := lab.WorstWindow(probes, 100*time.Millisecond)
	limit := rate/10 + 1
	t.Logf("wire: %d probes, worst 100 ms window %d (limit %d), achieved %.1f pps of %d; engine summary: sent %d, measured %.1f pps, worst %d, retries %d, kernel resent %d, refused %d, unmatched %d",
		len(probes), w.Packets, limit, lab.Rate(probes), rate,
		o.summary.PacketsSent, o.summary.MeasuredPPS, o.summary.Worst100ms, o.summary.Retries, o.summary.KernelResent, o.summary.RefusedPackets, o.summary.UnmatchedReplies)
	if w.Packets > limit {
		t.Errorf("worst 100 ms window on the wire: %d probes at %s, limit %d", w.Packets, w.Start.Format(time.RFC3339Nano), limit)
	}
	if o.summary.Worst100ms > limit {
		t.Errorf("engine's own worst window %d above limit %d", o.summary.Worst100ms, limit)
	}
	if uint64(len(probes)) != o.summary.PacketsSent {
		t.Errorf("wire shows %d probe packets, engine summary claims %d sent", len(probes), o.summary.PacketsSent)
	}
}

// TestEngineMatchesGroundTruth: without loss, every result row (TCP SYN,
// UDP, ICMP echo; IPv4 and IPv6; open, closed by target and by firewall
// reset, filtered, rejected with two ICMP codes, open|filtered) equals the
// lab's ground truth, and the wire proves scope and cap.
func TestEngineMatchesGroundTruth(t *testing.T) {
	const rate = 1000
	o := run(t, scenario{rate: rate, kinds: []string{"tcp-syn", "udp", "icmp-echo"}, ports: allPorts, icmp: true})
	truth := o.lab.Truth
	acc := truth.Compare(o.asked, o.obs)
	t.Logf("accuracy: %d/%d right, %d missing, %d extra; by state %v", acc.Right, acc.Expected, acc.Missing, acc.Extra, acc.ByState)
	for i, m := range acc.Mismatches {
		if i == 30 {
			t.Errorf("... %d more mismatches", len(acc.Mismatches)-i)
			break
		}
		t.Errorf("%s: got %q (%s), want %q (%s, rule %q)", m.Key, m.Got, m.Reason, m.Want.State, m.Want.Reason, m.Want.Rule)
	}
	if acc.Extra != 0 {
		t.Errorf("%d results for probes that were not asked for", acc.Extra)
	}
	if len(o.dupes) > 0 {
		t.Errorf("%d duplicate result rows, first %s", len(o.dupes), o.dupes[0])
	}
	// Rejections keep the ICMP type and code the firewall sent.
	for k, r := range o.results {
		want, ok := truth.Expect(k.Addr, k.Proto, k.Port)
		if !ok || want.ICMPType < 0 || lab.State(r.State) != want.State {
			continue
		}
		if r.ICMP == nil || r.ICMP.Type != want.ICMPType || r.ICMP.Code != want.ICMPCode {
			t.Errorf("%s: icmp %+v, want type %d code %d", k, r.ICMP, want.ICMPType, want.ICMPCode)
		}
	}
	checkWire(t, o, rate)
}

// TestEngineUnderLoss: with 2% netem loss on both directions and retries,
// no open port is reported as anything else, every other disagreement is
// an answer the wire shows was lost, and the engine reports exactly what
// the wire proves.
func TestEngineUnderLoss(t *testing.T) {
	const rate = 1000
	// Four retries: with about 4% of exchanges lost (2% each way), three
	// left roughly one run in ten with one of the ~1,700 open ports
	// unanswered on every attempt; four make that about one in 250.
	o := run(t, scenario{loss: 2, rate: rate, retries: 4, kinds: []string{"tcp-syn", "udp"}, ports: allPorts})
	truth := o.lab.Truth
	acc := truth.Compare(o.asked, o.obs)
	t.Logf("accuracy under 2%% loss: %d/%d right, %d missing; by state %v", acc.Right, acc.Expected, acc.Missing, acc.ByState)
	for _, m := range acc.Mismatches {
		switch {
		case m.Want.State == lab.Open:
			t.Errorf("open port %s reported %q (%s)", m.Key, m.Got, m.Reason)
		case m.Got == lab.Filtered || m.Got == lab.OpenFiltered:
			t.Logf("lost answer: %s reported %q, truth %q", m.Key, m.Got, m.Want.State)
		default:
			t.Errorf("%s: got %q (%s), want %q", m.Key, m.Got, m.Reason, m.Want.State)
		}
	}
	// Without loss on the wire this test would pass without testing
	// anything: some answer must have come only on a retry.
	if !o.summary.LossSeen {
		t.Errorf("no probe was answered only on a retry: the lab's %g%% loss did not apply", 2.0)
	}
	wire := lab.WireStates(o.pkts, o.lab.ScannerV4, o.lab.ScannerV6)
	disagree := 0
	for k, r := range o.results {
		w, ok := wire[k]
		if !ok || lab.State(r.State) == w.State {
			continue
		}
		disagree++
		if disagree <= 10 {
			t.Errorf("%s: engine says %q (%s), the wire shows %q (%s)", k, r.State, r.Reason, w.State, w.Reason)
		}
	}
	checkWire(t, o, rate)
}

// TestEngineBannerAndTLS: connect-based kinds against the lab's listeners:
// the banner is read and stored escaped, the TLS handshake yields the lab
// certificate, and every row's state still equals the ground truth (the
// engine's packet tap turns ICMP rejections of a connect into "rejected").
func TestEngineBannerAndTLS(t *testing.T) {
	const rate = 1000
	o := run(t, scenario{rate: rate, kinds: []string{"banner", "tls-hello"}, ports: "tcp:22,443,3306,8443",
		cidrs: []string{"198.18.1.0/28", "198.18.1.96/28", "198.18.1.192/28", "fd00:f1a9:1::/124"}})
	truth := o.lab.Truth
	for _, kind := range []probe.Kind{probe.KindBanner, probe.KindTLSHello} {
		var obs []lab.Observation
		for _, r := range o.rows {
			if r.Probe == kind {
				a, _ := netip.ParseAddr(r.Target)
				obs = append(obs, lab.Observation{Key: lab.Key{Addr: a, Proto: r.Proto, Port: r.Port}, State: lab.State(r.State), Reason: r.Reason})
			}
		}
		acc := truth.Compare(o.asked, obs)
		t.Logf("%s: %d/%d right, %d missing", kind, acc.Right, acc.Expected, acc.Missing)
		for i, m := range acc.Mismatches {
			if i == 20 {
				t.Errorf("... %d more", len(acc.Mismatches)-i)
				break
			}
			t.Errorf("%s %s: got %q (%s), want %q", kind, m.Key, m.Got, m.Reason, m.Want.State)
		}
	}
	banners, certs := 0, 0
	for _, r := range o.rows {
		if r.State != probe.StateOpen {
			continue
		}
		switch {
		case r.Probe == probe.KindBanner && r.Port == 22:
			banners++
			if r.Banner == nil || r.Banner.Text != `SSH-2.0-FiqLab_1.0\x0d\x0a` {
				t.Errorf("%s banner %+v", r.Target, r.Banner)
			}
		case r.Probe == probe.KindTLSHello && r.Port == 443:
			certs++
			if r.TLS == nil || len(r.TLS.Chain) == 0 || !strings.Contains(r.TLS.Chain[0].Subject, "lab.fiq.test") {
				t.Errorf("%s tls %+v", r.Target, r.TLS)
			}
		}
	}
	if banners == 0 || certs == 0 {
		t.Errorf("saw %d banners and %d certificates, want some of each", banners, certs)
	}
	checkWire(t, o, rate)
}

// TestEngineConnectFallback: without raw sockets tcp-syn runs as
// tcp-connect, recorded in every row, and every state still equals the
// truth, IPv6 rejections included: Linux does not fail a TCPv6 connect on
// ICMPv6 admin-prohibited or address-unreachable, so without a packet tap
// the engine must read them from the socket's error queue (IPV6_RECVERR).
func TestEngineConnectFallback(t *testing.T) {
	const rate = 1000
	o := run(t, scenario{rate: rate, kinds: []string{"tcp-syn"}, ports: "tcp:22,25,3306,8080,8443", noRaw: true,
		cidrs: []string{"198.18.1.0/28", "198.18.1.96/28", "198.18.1.192/28", "fd00:f1a9:1::/124", "fd00:f1a9:1::60/124"}})
	for _, r := range o.rows {
		if r.Probe != probe.KindTCPConnect || r.Fallback != probe.KindTCPSyn {
			t.Fatalf("%s/%d: probe %q fallback_from %q, want tcp-connect from tcp-syn", r.Target, r.Port, r.Probe, r.Fallback)
		}
	}
	acc := o.lab.Truth.Compare(o.asked, o.obs)
	for _, m := range acc.Mismatches {
		t.Errorf("%s: got %q (%s), want %q", m.Key, m.Got, m.Reason, m.Want.State)
	}
	t.Logf("connect fallback: %d/%d right", acc.Right, acc.Expected)
	checkWire(t, o, rate)
}
