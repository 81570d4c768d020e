package lab

import (
	"fmt"
	"net/netip"
	"slices"
)

// State is the state a probe of one (address, protocol, port) must report.
// The vocabulary is the engine's (issue 5): open, closed, filtered,
// rejected, open|filtered.
type State string

// The states a lab target can be in.
const (
	Open         State = "open"
	Closed       State = "closed"
	Filtered     State = "filtered"
	Rejected     State = "rejected"
	OpenFiltered State = "open|filtered"
)

// Protocols as they appear in results.
const (
	TCP  = "tcp"
	UDP  = "udp"
	ICMP = "icmp"
)

// Action is what the lab firewall does with a matching packet.
type Action string

// Firewall actions. Each renders to one nftables verdict.
const (
	Drop Action = "drop"
	// RejectReset answers a TCP SYN with a RST forged by the firewall,
	// which a scanner cannot tell from a closed port except by TTL.
	RejectReset Action = "reject-tcp-reset"
	// RejectAdmin answers with ICMP administratively prohibited
	// (v4 type 3 code 13, v6 type 1 code 1): nftables "icmpx admin-prohibited".
	RejectAdmin Action = "reject-admin-prohibited"
	// RejectHost answers with ICMP host prohibited (v4 type 3 code 10) or
	// ICMPv6 address unreachable (type 1 code 3), a second unreachable code
	// so results must keep type and code, not only "rejected".
	RejectHost Action = "reject-host-prohibited"
	// RejectPort answers with ICMP port unreachable (v4 type 3 code 3, v6
	// type 1 code 4), iptables' default REJECT. To a TCP probe this is
	// rejected, not closed: a host answers a closed TCP port with a RST,
	// so port unreachable quoting a SYN can only be a packet filter.
	RejectPort Action = "reject-port-unreachable"
)

// Rule is one firewall rule in front of the target zones. It matches a
// range of host numbers (the last byte of the address in a zone, so the
// same rule covers IPv4 and IPv6), a protocol ("" for any) and a port
// (0 for any). The first matching rule wins; no match forwards.
type Rule struct {
	Name     string
	From, To uint8 // host numbers, inclusive
	Proto    string
	Port     uint16
	Action   Action
}

// ServiceKind is how a lab listener behaves.
type ServiceKind string

// Listener behaviours.
const (
	// Banner accepts and writes Service.Banner, then waits for the peer to close.
	Banner ServiceKind = "banner"
	// Silent accepts (TCP) or reads (UDP) and never sends anything.
	Silent ServiceKind = "silent"
	// TLS completes a TLS handshake with a self-signed certificate.
	TLS ServiceKind = "tls"
	// DNS answers every datagram with a DNS response (NXDOMAIN for
	// questions it can parse, FORMERR otherwise) so the port is open
	// whatever payload a scanner chose.
	DNS ServiceKind = "dns"
	// NTP answers every datagram with a 48-byte NTPv4 server packet.
	NTP ServiceKind = "ntp"
)

// Service is a listener that runs on every address of a target zone.
type Service struct {
	Proto  string
	Port   uint16
	Kind   ServiceKind
	Banner string
}

// Expectation is the ground truth for one probe.
type Expectation struct {
	State State
	// Reason says what the scanner should see: "syn-ack", "rst",
	// "udp-reply", "echo-reply", "icmp-unreachable", "no-reply".
	Reason string
	// ICMPType and ICMPCode are set for answers that are ICMP errors
	// (closed UDP ports and rejected probes), in the address family's
	// own numbering; -1 otherwise.
	ICMPType, ICMPCode int
	// Rule names the firewall rule that decided, "" when the packet
	// reached the target.
	Rule string
}

// Truth is the lab's ground truth: firewall rules and listeners, as data.
// It is pure and needs no root, so the analysis code and its tests can use
// it without a lab.
type Truth struct {
	Rules    []Rule
	Services []Service
	// Zones are the target host ranges the truth applies to, indexed by
	// the last byte of the address.
	Zones []netip.Prefix
}

// DefaultRules is the firewall in front of the target zones: "dark" hosts
// that drop everything, hosts that reject everything with a host-level ICMP
// code, and per-port DROP / reset / admin-prohibited / port-unreachable
// rules on all others.
func DefaultRules() []Rule {
	return []Rule{
		{Name: "dark-hosts", From: 200, To: 254, Action: Drop},
		{Name: "prohibited-hosts", From: 100, To: 127, Action: RejectHost},
		{Name: "tcp-3306-drop", From: 0, To: 255, Proto: TCP, Port: 3306, Action: Drop},
		{Name: "tcp-8080-reset", From: 0, To: 255, Proto: TCP, Port: 8080, Action: RejectReset},
		{Name: "tcp-8443-admin", From: 0, To: 255, Proto: TCP, Port: 8443, Action: RejectAdmin},
		{Name: "tcp-8081-port-unreach", From: 0, To: 255, Proto: TCP, Port: 8081, Action: RejectPort},
		{Name: "udp-1900-drop", From: 0, To: 255, Proto: UDP, Port: 1900, Action: Drop},
		{Name: "udp-5060-admin", From: 0, To: 255, Proto: UDP, Port: 5060, Action: RejectAdmin},
	}
}

// DefaultServices are the listeners on every address of every target zone.
// Ports without a listener (tcp/25, udp/161 for example) are closed.
func DefaultServices() []Service {
	return []Service{
		{Proto: TCP, Port: 22, Kind: Banner, Banner: "SSH-2.0-FiqLab_1.0\r\n"},
		{Proto: TCP, Port: 80, Kind: Silent},
		{Proto: TCP, Port: 443, Kind: TLS},
		{Proto: UDP, Port: 53, Kind: DNS},
		{Proto: UDP, Port: 123, Kind: NTP},
		{Proto: UDP, Port: 514, Kind: Silent},
	}
}

// BenchTCPPorts are the six TCP ports the benchmark scans: open, closed by
// the target, filtered (DROP), closed by the firewall's reset, rejected
// (admin-prohibited) and another open one.
func BenchTCPPorts() []uint16 { return []uint16{22, 25, 80, 3306, 8080, 8443} }

// ICMP codes, per family, for the unreachable messages the lab produces.
const (
	icmp4Unreach      = 3
	icmp4PortUnreach  = 3
	icmp4HostProhib   = 10
	icmp4AdminProhib  = 13
	icmp6Unreach      = 1
	icmp6AdminProhib  = 1
	icmp6AddrUnreach  = 3
	icmp6PortUnreach  = 4
	noICMP            = -1
	hostNumberUnknown = -1
)

// hostNumber returns the last byte of addr if addr lies in one of the
// zones, or -1.
func (tr Truth) hostNumber(addr netip.Addr) int {
	addr = addr.Unmap()
	for _, z := range tr.Zones {
		if z.Contains(addr) {
			b := addr.AsSlice()
			return int(b[len(b)-1])
		}
	}
	return hostNumberUnknown
}

// Match returns the first rule that applies to a probe, or false.
func (tr Truth) Match(addr netip.Addr, proto string, port uint16) (Rule, bool) {
	h := tr.hostNumber(addr)
	if h < 0 {
		return Rule{}, false
	}
	for _, r := range tr.Rules {
		if h < int(r.From) || h > int(r.To) {
			continue
		}
		if r.Proto != "" && r.Proto != proto {
			continue
		}
		if r.Port != 0 && r.Port != port {
			continue
		}
		return r, true
	}
	return Rule{}, false
}

// service returns the listener on (proto, port), if any.
func (tr Truth) service(proto string, port uint16) (Service, bool) {
	i := slices.IndexFunc(tr.Services, func(s Service) bool { return s.Proto == proto && s.Port == port })
	if i < 0 {
		return Service{}, false
	}
	return tr.Services[i], true
}

// Expect returns what a correct scanner reports for a probe of proto/port
// on addr ("icmp" with port 0 is an echo request). ok is false when addr is
// not in a target zone or proto is unknown.
func (tr Truth) Expect(addr netip.Addr, proto string, port uint16) (e Expectation, ok bool) {
	if tr.hostNumber(addr) < 0 {
		return Expectation{}, false
	}
	if proto != TCP && proto != UDP && proto != ICMP {
		return Expectation{}, false
	}
	v4 := addr.Unmap().Is4()
	unreach := func(code4, code6 int) (int, int) {
		if v4 {
			return icmp4Unreach, code4
		}
		return icmp6Unreach, code6
	}
	e = Expectation{ICMPType: noICMP, ICMPCode: noICMP}
	if r, hit := tr.Match(addr, proto, port); hit {
		e.Rule = r.Name
		switch r.Action {
		case Drop:
			e.Reason = "no-reply"
			e.State = Filtered
			if proto == UDP {
				e.State = OpenFiltered
			}
		case RejectReset:
			if proto == TCP {
				e.State, e.Reason = Closed, "rst"
				return e, true
			}
			// nftables "reject with tcp reset" only matches TCP; other
			// protocols get the default ICMP port unreachable.
			e.State, e.Reason = Closed, "icmp-unreachable"
			e.ICMPType, e.ICMPCode = unreach(icmp4PortUnreach, icmp6PortUnreach)
		case RejectAdmin:
			e.State, e.Reason = Rejected, "icmp-unreachable"
			e.ICMPType, e.ICMPCode = unreach(icmp4AdminProhib, icmp6AdminProhib)
		case RejectPort:
			// Closed only for UDP, where the host's own stack says the
			// same; to TCP (and echo) it is the firewall's REJECT.
			e.State, e.Reason = Rejected, "icmp-unreachable"
			if proto == UDP {
				e.State = Closed
			}
			e.ICMPType, e.ICMPCode = unreach(icmp4PortUnreach, icmp6PortUnreach)
		case RejectHost:
			e.State, e.Reason = Rejected, "icmp-unreachable"
			e.ICMPType, e.ICMPCode = unreach(icmp4HostProhib, icmp6AddrUnreach)
		default:
			panic(fmt.Sprintf("lab: unknown action %q", r.Action))
		}
		return e, true
	}
	switch proto {
	case ICMP:
		e.State, e.Reason = Open, "echo-reply"
	case TCP:
		if _, has := tr.service(TCP, port); has {
			e.State, e.Reason = Open, "syn-ack"
		} else {
			e.State, e.Reason = Closed, "rst"
		}
	case UDP:
		s, has := tr.service(UDP, port)
		switch {
		case !has:
			e.State, e.Reason = Closed, "icmp-unreachable"
			e.ICMPType, e.ICMPCode = unreach(icmp4PortUnreach, icmp6PortUnreach)
		case s.Kind == Silent:
			e.State, e.Reason = OpenFiltered, "no-reply"
		default:
			e.State, e.Reason = Open, "udp-reply"
		}
	}
	return e, true
}
