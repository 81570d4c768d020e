package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// Opt-in additions for tests of remote sensors (docs/fleet.md): an
// internal segment behind the firewall, and a management segment where a
// console listens for sensors in several zones. A lab built by New has
// neither; nothing here changes what New builds.

// Addressing of the additions, inside the lab's 198.18.0.0/15.
const (
	// InternalIf is the firewall's leg towards the internal segment.
	InternalIf  = "vint"
	fwInternal4 = "198.18.254.9"
	internal4   = "198.18.254.10"
	// ManagementIf is the interface a namespace joined to the management
	// segment has towards it.
	ManagementIf = "mgmt0"
	// managementAddr4 is the management namespace's service address, on
	// its loopback; each joined namespace routes it over its own link.
	managementAddr4 = "198.18.252.1"
	// Links to the management namespace are /30s from 198.18.253.0/24,
	// the management side first (.1, .5, ...), the joined side second.
	managementLinks4  = "198.18.253.0/24"
	maxManagementLegs = 32
)

// Segment is a namespace behind the firewall on a leg of its own. The
// firewall forwards its packets to the target zone without applying the
// lab's rules (they match only packets entering from the scanner leg), so
// a scanner here sees the targets as the listeners make them: the view
// from an internal segment.
type Segment struct {
	Namespace string
	// V4 is the segment's address (its default route is the firewall).
	V4 netip.Addr
	// FirewallIf is the firewall's interface towards the segment.
	FirewallIf string
}

// AddInternal adds the internal segment: namespace <id>-int, linked to
// the firewall by a veth pair of its own (firewall 198.18.254.9/30 on
// InternalIf, segment 198.18.254.10/30 on LegIf). Close removes it.
func (l *Lab) AddInternal(ctx context.Context) (Segment, error) {
	s := Segment{Namespace: l.ID + "-int", V4: netip.MustParseAddr(internal4), FirewallIf: InternalIf}
	if err := l.addNamespace(ctx, s.Namespace); err != nil {
		return Segment{}, err
	}
	steps := [][]string{
		{l.Firewall, "link", "add", InternalIf, "type", "veth", "peer", "name", LegIf, "netns", s.Namespace},
		{l.Firewall, "addr", "add", fwInternal4 + "/30", "dev", InternalIf},
		{l.Firewall, "link", "set", InternalIf, "up"},
		{s.Namespace, "addr", "add", internal4 + "/30", "dev", LegIf},
		{s.Namespace, "link", "set", LegIf, "up"},
		{s.Namespace, "route", "add", "default", "via", fwInternal4},
	}
	for _, st := range steps {
		if err := l.run.ipn(ctx, st[0], st[1:]...); err != nil {
			return Segment{}, err
		}
	}
	return s, nil
}

// Management is the management segment: one namespace with a service
// address (Addr, on its loopback) that every joined namespace reaches
// over a veth link of its own, never through the firewall. A console's
// listeners placed there (with Do) are reachable from each joined zone,
// and its traffic stays off the firewall's legs, so captures and counters
// on them see only probes.
type Management struct {
	Namespace string
	Addr      netip.Addr
}

// AddManagement adds the management namespace <id>-mgmt with Addr
// 198.18.252.1 and joins each of namespaces to it: a veth pair (ManagementIf
// on the joined side), a /30 from 198.18.253.0/24, and a host route to Addr
// over it. Close removes it and its links.
func (l *Lab) AddManagement(ctx context.Context, namespaces ...string) (Management, error) {
	if len(namespaces) > maxManagementLegs {
		return Management{}, fmt.Errorf("lab: %d namespaces to join, at most %d", len(namespaces), maxManagementLegs)
	}
	m := Management{Namespace: l.ID + "-mgmt", Addr: netip.MustParseAddr(managementAddr4)}
	if err := l.addNamespace(ctx, m.Namespace); err != nil {
		return Management{}, err
	}
	if err := l.run.ipn(ctx, m.Namespace, "addr", "add", managementAddr4+"/32", "dev", "lo"); err != nil {
		return Management{}, err
	}
	base := netip.MustParsePrefix(managementLinks4).Addr().As4()
	for i, ns := range namespaces {
		mgmt, peer := base, base
		mgmt[3], peer[3] = byte(4*i+1), byte(4*i+2)
		mIf := fmt.Sprintf("m%d", i)
		steps := [][]string{
			{m.Namespace, "link", "add", mIf, "type", "veth", "peer", "name", ManagementIf, "netns", ns},
			{m.Namespace, "addr", "add", netip.AddrFrom4(mgmt).String() + "/30", "dev", mIf},
			{m.Namespace, "link", "set", mIf, "up"},
			{ns, "addr", "add", netip.AddrFrom4(peer).String() + "/30", "dev", ManagementIf},
			{ns, "link", "set", ManagementIf, "up"},
			{ns, "route", "add", managementAddr4 + "/32", "via", netip.AddrFrom4(mgmt).String(), "dev", ManagementIf},
		}
		for _, st := range steps {
			if err := l.run.ipn(ctx, st[0], st[1:]...); err != nil {
				return Management{}, err
			}
		}
	}
	return m, nil
}

// addNamespace creates ns (named after the lab, so Sweep finds it if the
// process dies) with its loopback up, and has Close delete it.
func (l *Lab) addNamespace(ctx context.Context, ns string) error {
	if _, err := l.run.run(ctx, "", "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.addCloser(nsDeleter{run: l.run, ns: ns})
	if err := l.run.sysctl(ctx, ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
		"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"); err != nil {
		return err
	}
	return l.run.ipn(ctx, ns, "link", "set", "lo", "up")
}

// nsDeleter deletes one namespace when the lab closes.
type nsDeleter struct {
	run runner
	ns  string
}

func (d nsDeleter) Close() error { return d.run.deleteNamespace(d.ns) }

// InterfaceCounter reads one statistic ("rx_packets", "tx_packets", ...)
// of interface dev in namespace ns.
func (l *Lab) InterfaceCounter(ctx context.Context, ns, dev, stat string) (uint64, error) {
	if strings.ContainsAny(dev+stat, "/.") {
		return 0, fmt.Errorf("lab: bad interface %q or statistic %q", dev, stat)
	}
	out, err := l.run.run(ctx, "", "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/statistics/"+stat)
	if err != nil {
		return 0, err
	}
	var v uint64
	if _, err := fmt.Sscan(out, &v); err != nil {
		return 0, fmt.Errorf("lab: %s %s %s: %w", ns, dev, stat, err)
	}
	return v, nil
}
