package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Interface names inside the lab. Each namespace has its own interface
// table, so the names are fixed and short (veth names must fit 15 bytes).
const (
	// FirewallScannerIf is the firewall's leg towards the scanner: every
	// packet the scanner sends crosses it, so the evidence capture runs here.
	FirewallScannerIf = "vscan"
	firewallTargetIf  = "vtgt"
	firewallOutsideIf = "vout"
	// LegIf is the single interface of the scanner and target namespaces.
	LegIf = "eth0"
)

// Zone is a group of addresses behind one namespace.
type Zone struct {
	// Namespace is the network namespace that owns the addresses.
	Namespace string
	// V4 and V6 are the host ranges the namespace answers for (AnyIP local
	// routes), a /24 and a /120.
	V4, V6 netip.Prefix
}

// Contains reports whether addr is one of the zone's hosts.
func (z Zone) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	return z.V4.Contains(addr) || z.V6.Contains(addr)
}

// Options configure a lab. The zero value builds the default topology.
type Options struct {
	// Rules and Services replace DefaultRules and DefaultServices.
	Rules    []Rule
	Services []Service
	// Loss (percent) drops packets at random in the firewall, both
	// directions, so a probe and its reply can each be lost. Delay is tc
	// netem on the firewall's egress, both directions (see SetImpairment).
	Loss  float64
	Delay time.Duration
	// Logf receives every command the lab runs and its output; tests pass
	// a buffer they print only on failure.
	Logf func(format string, args ...any)
}

// Lab is a running network lab. Close tears it down.
type Lab struct {
	// ID is the unique part of every namespace name.
	ID string
	// Scanner is the namespace scanners run in ("ip netns exec").
	Scanner string
	// Firewall is the routing namespace with the nftables ruleset.
	Firewall string
	// ScannerV4 and ScannerV6 are the scanner's addresses.
	ScannerV4, ScannerV6 netip.Addr
	// Target is the zone the scope covers; Outside is reachable through
	// the firewall too but never in scope.
	Target, Outside Zone
	// Truth is the ground truth for the Target zone.
	Truth Truth

	opts Options
	run  runner
	undo Undo
}

// Fixed lab addressing (see docs/lab.md). 198.18.0.0/15 is reserved for
// benchmarking (RFC 2544) and fd00:f1a9::/48 is a ULA prefix, so neither
// collides with a real network; both exist only inside lab namespaces.
const (
	scannerNet4   = "198.18.0.0/24"
	fwScanner4    = "198.18.0.1"
	scanner4      = "198.18.0.2"
	fwScanner6    = "fd00:f1a9::1"
	scanner6      = "fd00:f1a9::2"
	fwTarget4     = "198.18.254.1"
	target4       = "198.18.254.2"
	fwOutside4    = "198.18.254.5"
	outside4      = "198.18.254.6"
	fwTarget6     = "fd00:f1a9:fe01::1"
	target6       = "fd00:f1a9:fe01::2"
	fwOutside6    = "fd00:f1a9:fe02::1"
	outside6      = "fd00:f1a9:fe02::2"
	targetHosts4  = "198.18.1.0/24"
	targetHosts6  = "fd00:f1a9:1::/120"
	outsideHosts4 = "198.18.2.0/24"
	outsideHosts6 = "fd00:f1a9:2::/120"
	// The AnyIP routes cover the whole /64 so any address of it is local;
	// the zone (and so the scope) is the /120 inside it.
	targetRoute6  = "fd00:f1a9:1::/64"
	outsideRoute6 = "fd00:f1a9:2::/64"
)

// New builds a lab: four namespaces, veth links, addresses, routes,
// forwarding, the nftables ruleset, optional netem, and the listeners.
// On error everything built so far is torn down.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	for _, tool := range []string{"ip", "nft", "tc", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("lab: %s not installed (run scripts/deps.sh): %w", tool, err)
		}
	}
	if opts.Rules == nil {
		opts.Rules = DefaultRules()
	}
	if opts.Services == nil {
		opts.Services = DefaultServices()
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("lab: id: %w", err)
	}
	id := fmt.Sprintf("%s%d-%s", NamePrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	l := &Lab{
		ID:        id,
		Scanner:   id + "-scan",
		Firewall:  id + "-fw",
		ScannerV4: netip.MustParseAddr(scanner4),
		ScannerV6: netip.MustParseAddr(scanner6),
		Target: Zone{Namespace: id + "-tgt",
			V4: netip.MustParsePrefix(targetHosts4), V6: netip.MustParsePrefix(targetHosts6)},
		Outside: Zone{Namespace: id + "-out",
			V4: netip.MustParsePrefix(outsideHosts4), V6: netip.MustParsePrefix(outsideHosts6)},
		opts: opts,
		run:  runner{log: opts.Logf},
	}
	l.Truth = Truth{Rules: opts.Rules, Services: opts.Services, Zones: []netip.Prefix{l.Target.V4, l.Target.V6}}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// namespaces lists every namespace of the lab.
func (l *Lab) namespaces() []string {
	return []string{l.Scanner, l.Firewall, l.Target.Namespace, l.Outside.Namespace}
}

// build does the work of New.
func (l *Lab) build(ctx context.Context) error {
	r := l.run
	for _, ns := range l.namespaces() {
		if _, err := r.run(ctx, "", "ip", "netns", "add", ns); err != nil {
			return err
		}
		// Before any interface exists: no duplicate address detection (no
		// tentative addresses, no startup delay), no router advertisements,
		// and no ICMP error rate limits, which would otherwise turn closed
		// UDP ports and REJECTs into silence at scan rates.
		if err := r.sysctl(ctx, ns,
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
			"net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=1000000",
			"net.ipv4.icmp_msgs_burst=1000000", "net.ipv6.icmp.ratelimit=0",
			// IPv6 refuses IPV6_PKTINFO with a source address that is only
			// routed local (AnyIP) unless non-local binds are allowed; the
			// UDP listeners answer from the address a probe was sent to.
			"net.ipv6.ip_nonlocal_bind=1",
		); err != nil {
			return err
		}
		if err := r.ipn(ctx, ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if err := r.sysctl(ctx, l.Firewall, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
		return err
	}
	// Each veth pair is created directly between two lab namespaces, never
	// in the root namespace, so the host never holds a lab interface.
	legs := []struct {
		fwIf, peerNS, fw4, peer4, fw6, peer6 string
		plen4                                string
	}{
		{FirewallScannerIf, l.Scanner, fwScanner4, scanner4, fwScanner6, scanner6, "24"},
		{firewallTargetIf, l.Target.Namespace, fwTarget4, target4, fwTarget6, target6, "30"},
		{firewallOutsideIf, l.Outside.Namespace, fwOutside4, outside4, fwOutside6, outside6, "30"},
	}
	for _, g := range legs {
		steps := [][]string{
			{l.Firewall, "link", "add", g.fwIf, "type", "veth", "peer", "name", LegIf, "netns", g.peerNS},
			{l.Firewall, "addr", "add", g.fw4 + "/" + g.plen4, "dev", g.fwIf},
			{l.Firewall, "addr", "add", g.fw6 + "/64", "dev", g.fwIf, "nodad"},
			{l.Firewall, "link", "set", g.fwIf, "up"},
			{g.peerNS, "addr", "add", g.peer4 + "/" + g.plen4, "dev", LegIf},
			{g.peerNS, "addr", "add", g.peer6 + "/64", "dev", LegIf, "nodad"},
			{g.peerNS, "link", "set", LegIf, "up"},
			{g.peerNS, "route", "add", "default", "via", g.fw4},
			{g.peerNS, "-6", "route", "add", "default", "via", g.fw6},
		}
		for _, s := range steps {
			if err := r.ipn(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	zones := []struct {
		z              Zone
		route6, via4   string
		via6, fwIf     string
		localV4, local string
	}{
		{l.Target, targetRoute6, target4, target6, firewallTargetIf, targetHosts4, targetRoute6},
		{l.Outside, outsideRoute6, outside4, outside6, firewallOutsideIf, outsideHosts4, outsideRoute6},
	}
	for _, z := range zones {
		steps := [][]string{
			// AnyIP: the zone namespace treats the whole range as local, so
			// every host of the /24 exists without 256 addresses.
			{z.z.Namespace, "route", "add", "local", z.localV4, "dev", "lo"},
			{z.z.Namespace, "-6", "route", "add", "local", z.local, "dev", "lo"},
			{l.Firewall, "route", "add", z.localV4, "via", z.via4, "dev", z.fwIf},
			{l.Firewall, "-6", "route", "add", z.route6, "via", z.via6, "dev", z.fwIf},
		}
		for _, s := range steps {
			if err := r.ipn(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	if _, err := r.run(ctx, l.Ruleset(), "ip", "netns", "exec", l.Firewall, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lab: load nftables ruleset: %w", err)
	}
	if l.opts.Loss > 0 || l.opts.Delay > 0 {
		if err := l.SetImpairment(ctx, l.opts.Loss, l.opts.Delay); err != nil {
			return err
		}
	}
	for _, z := range []Zone{l.Target, l.Outside} {
		cl, err := startServices(z.Namespace, l.opts.Services)
		if err != nil {
			return fmt.Errorf("lab: listeners in %s: %w", z.Namespace, err)
		}
		l.addCloser(cl)
	}
	return nil
}

func (l *Lab) addCloser(c io.Closer) { l.undo.Add(c) }

// hostRange renders host numbers from..to of a prefix as an nftables range.
func hostRange(p netip.Prefix, from, to uint8) string {
	b := p.Masked().Addr().AsSlice()
	lo := append([]byte(nil), b...)
	hi := append([]byte(nil), b...)
	lo[len(lo)-1], hi[len(hi)-1] = from, to
	a, _ := netip.AddrFromSlice(lo)
	z, _ := netip.AddrFromSlice(hi)
	if from == to {
		return a.String()
	}
	return a.String() + "-" + z.String()
}

// Ruleset renders the firewall's nftables ruleset from the lab's rules.
// Rules match only packets entering from the scanner leg, so replies flow
// back untouched and the ruleset stays stateless (no conntrack table to
// fill at high rates).
func (l *Lab) Ruleset() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet fiqlab {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	for _, r := range l.Truth.Rules {
		for _, fam := range []struct {
			match  string
			prefix netip.Prefix
			host   string
		}{
			{"ip daddr", l.Target.V4, "reject with icmp type host-prohibited"},
			{"ip6 daddr", l.Target.V6, "reject with icmpv6 type addr-unreachable"},
		} {
			m := fmt.Sprintf("iifname %q %s %s", FirewallScannerIf, fam.match, hostRange(fam.prefix, r.From, r.To))
			switch {
			case r.Proto == ICMP && fam.match == "ip daddr":
				m += " meta l4proto icmp"
			case r.Proto == ICMP:
				m += " meta l4proto ipv6-icmp"
			case r.Proto != "" && r.Port != 0:
				m += fmt.Sprintf(" %s dport %d", r.Proto, r.Port)
			case r.Proto != "":
				m += " meta l4proto " + r.Proto
			}
			var verdict string
			switch r.Action {
			case Drop:
				verdict = "drop"
			case RejectReset:
				verdict = "reject with tcp reset"
			case RejectAdmin:
				verdict = "reject with icmpx type admin-prohibited"
			case RejectPort:
				verdict = "reject with icmpx type port-unreachable"
			case RejectHost:
				verdict = fam.host
			}
			fmt.Fprintf(&b, "\t\t%s %s comment %q\n", m, verdict, r.Name)
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// SetImpairment sets packet loss (percent) and delay between the scanner
// and the targets; zero removes them. Loss is random drop in the firewall
// (nftables numgen) on every forwarded packet, probes and replies alike,
// and on the firewall's own answers (REJECT's RSTs and ICMP errors), so it
// works on kernels without sch_netem. Delay needs tc netem; on a kernel
// without it SetImpairment returns ErrNoNetem.
func (l *Lab) SetImpairment(ctx context.Context, lossPercent float64, delay time.Duration) error {
	fw := func(stdin string, args ...string) (string, error) {
		return l.run.run(ctx, stdin, "ip", append([]string{"netns", "exec", l.Firewall}, args...)...)
	}
	// "delete" fails when the table does not exist; that is the wanted state.
	_, _ = fw("", "nft", "delete", "table", "inet", "fiqloss")
	if lossPercent > 0 {
		if lossPercent > 100 {
			return fmt.Errorf("lab: loss %g%% above 100", lossPercent)
		}
		// numgen draws per packet; the threshold is in hundredths of a percent.
		thr := int(lossPercent*100 + 0.5)
		chain := func(name, hook string) string {
			return fmt.Sprintf("\tchain %s {\n\t\ttype filter hook %s priority filter - 10; policy accept;\n"+
				"\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n"+
				"\t\tnumgen random mod 10000 < %d counter drop\n\t}\n", name, hook, thr)
		}
		rs := "table inet fiqloss {\n" + chain("lossfw", "forward") + chain("lossout", "output") + "}\n"
		if _, err := fw(rs, "nft", "-f", "-"); err != nil {
			return fmt.Errorf("lab: loss: %w", err)
		}
	}
	for _, dev := range []string{firewallTargetIf, FirewallScannerIf} {
		if delay <= 0 {
			_, _ = fw("", "tc", "qdisc", "del", "dev", dev, "root")
			continue
		}
		out, err := fw("", "tc", "qdisc", "replace", "dev", dev, "root", "netem", "limit", "100000",
			"delay", fmt.Sprintf("%dus", delay.Microseconds()))
		if err != nil {
			if strings.Contains(out, "qdisc kind is unknown") {
				return ErrNoNetem
			}
			return fmt.Errorf("lab: netem: %w", err)
		}
	}
	return nil
}

// SetSink makes the firewall drop every IP packet from the scanner at
// ingress, before routing, so a maximum-rate measurement is limited by the
// sender and not by the lab forwarding, answering and capturing.
func (l *Lab) SetSink(ctx context.Context, on bool) error {
	if !on {
		_, err := l.run.run(ctx, "", "ip", "netns", "exec", l.Firewall, "nft", "delete", "table", "netdev", "fiqsink")
		return err
	}
	rs := fmt.Sprintf("table netdev fiqsink {\n\tchain in {\n\t\ttype filter hook ingress device %q priority 0; policy accept;\n\t\tmeta protocol { ip, ip6 } counter drop\n\t}\n}\n", FirewallScannerIf)
	_, err := l.run.run(ctx, rs, "ip", "netns", "exec", l.Firewall, "nft", "-f", "-")
	return err
}

// Command returns a command that runs name inside namespace ns
// ("ip netns exec ns name args..."). Scanners are always started this way:
// the whole process, and every socket it opens, lives in the lab.
func (l *Lab) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Counters returns the packet counters of the firewall's scanner leg:
// rx is what the scanner sent, tx what the firewall sent back.
func (l *Lab) Counters(ctx context.Context) (rx, tx uint64, err error) {
	read := func(name string) (uint64, error) {
		out, err := l.run.run(ctx, "", "ip", "netns", "exec", l.Firewall, "cat",
			"/sys/class/net/"+FirewallScannerIf+"/statistics/"+name)
		if err != nil {
			return 0, err
		}
		var v uint64
		_, err = fmt.Sscan(out, &v)
		return v, err
	}
	if rx, err = read("rx_packets"); err != nil {
		return 0, 0, err
	}
	tx, err = read("tx_packets")
	return rx, tx, err
}

// Close stops the listeners and deletes every namespace of the lab (which
// removes its veth links, routes and ruleset with it). It is safe to call
// more than once and keeps going after errors.
func (l *Lab) Close() error { return l.undo.Teardown(l.namespaces(), l.run.log) }
