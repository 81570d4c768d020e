package lab

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Packet is the part of a captured frame the analysis needs.
type Packet struct {
	Time     time.Time
	Src, Dst netip.Addr
	// Proto is "tcp", "udp", "icmp" (v4 or v6) or "other" for any other
	// IP payload. Frames that are not IP (ARP) are not returned at all.
	Proto            string
	SrcPort, DstPort uint16
	SYN, ACK, RST    bool
	// ICMPType and ICMPCode are the ICMP or ICMPv6 type and code.
	ICMPType, ICMPCode uint8
	// Quoted is, for an ICMP error, the probe it quotes: the original
	// destination, protocol and destination port.
	Quoted Key
}

// IsProbe reports whether p starts a probe: a TCP SYN (without ACK), any
// UDP datagram, or an ICMP/ICMPv6 echo request. Other packets a scanner
// host sends (the kernel's RST answering a SYN-ACK, the ACK of a connect
// handshake) are consequences of a probe, not new ones, and pacing is
// measured on probes, as it is for nmap and masscan.
func (p Packet) IsProbe() bool {
	switch p.Proto {
	case TCP:
		return p.SYN && !p.ACK
	case UDP:
		return true
	case ICMP:
		if p.Src.Is4() {
			return p.ICMPType == uint8(layers.ICMPv4TypeEchoRequest)
		}
		return p.ICMPType == layers.ICMPv6TypeEchoRequest
	}
	return false
}

// isLinkControl reports whether p is IPv6 neighbour discovery or multicast
// listener traffic: the kernel's own link housekeeping, sent to link-local
// or multicast addresses that never leave the link.
func (p Packet) isLinkControl() bool {
	if p.Proto != ICMP || !p.Src.Is6() {
		return false
	}
	switch {
	case p.ICMPType == layers.ICMPv6TypeNeighborSolicitation || p.ICMPType == layers.ICMPv6TypeNeighborAdvertisement:
		// Unicast neighbour probes go to the firewall's own address.
		return true
	case p.ICMPType >= 130 && p.ICMPType <= 143:
		return p.Dst.IsLinkLocalUnicast() || p.Dst.IsMulticast()
	}
	return false
}

// ReadPcap decodes the IP packets of a pcap or pcapng file.
func ReadPcap(path string) ([]Packet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var lt layers.LinkType
	if r, err := pcapgo.NewReader(f); err == nil {
		src, lt = r, r.LinkType()
	} else {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("lab: %s is neither pcap nor pcapng: %w", path, err)
		}
		src, lt = r, r.LinkType()
	}
	var out []Packet
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("lab: read %s: %w", path, err)
		}
		if p, ok := decode(data, lt, ci.Timestamp); ok {
			out = append(out, p)
		}
	}
}

// decode parses one frame; ok is false for non-IP frames.
func decode(data []byte, lt layers.LinkType, ts time.Time) (Packet, bool) {
	pkt := gopacket.NewPacket(data, lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	p := Packet{Time: ts, Proto: "other"}
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		p.Src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		p.Dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	case *layers.IPv6:
		p.Src, _ = netip.AddrFromSlice(ip.SrcIP)
		p.Dst, _ = netip.AddrFromSlice(ip.DstIP)
	default:
		return Packet{}, false
	}
	switch l := pkt.TransportLayer().(type) {
	case *layers.TCP:
		p.Proto, p.SrcPort, p.DstPort = TCP, uint16(l.SrcPort), uint16(l.DstPort)
		p.SYN, p.ACK, p.RST = l.SYN, l.ACK, l.RST
		return p, true
	case *layers.UDP:
		p.Proto, p.SrcPort, p.DstPort = UDP, uint16(l.SrcPort), uint16(l.DstPort)
		return p, true
	}
	if l, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		p.Proto, p.ICMPType, p.ICMPCode = ICMP, l.TypeCode.Type(), l.TypeCode.Code()
		if p.ICMPType == layers.ICMPv4TypeDestinationUnreachable {
			p.Quoted = quoted(l.Payload)
		}
	} else if l, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		p.Proto, p.ICMPType, p.ICMPCode = ICMP, l.TypeCode.Type(), l.TypeCode.Code()
		if p.ICMPType == layers.ICMPv6TypeDestinationUnreachable && len(l.Payload) >= 4 {
			p.Quoted = quoted(l.Payload[4:]) // skip the unused word
		}
	}
	return p, true
}

// quoted decodes the start of the packet an ICMP error quotes. Anything
// too short to name a destination and port yields the zero Key.
func quoted(b []byte) Key {
	var k Key
	var next byte
	var rest []byte
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		hl := int(b[0]&0x0f) * 4
		if hl < 20 || len(b) < hl {
			return Key{}
		}
		k.Addr, _ = netip.AddrFromSlice(b[16:20])
		next, rest = b[9], b[hl:]
	case len(b) >= 40 && b[0]>>4 == 6:
		k.Addr, _ = netip.AddrFromSlice(b[24:40])
		next, rest = b[6], b[40:] // extension headers are not followed: probes carry none
	default:
		return Key{}
	}
	switch layers.IPProtocol(next) {
	case layers.IPProtocolTCP:
		k.Proto = TCP
	case layers.IPProtocolUDP:
		k.Proto = UDP
	case layers.IPProtocolICMPv4, layers.IPProtocolICMPv6:
		k.Proto = ICMP
		return k
	default:
		return Key{}
	}
	if len(rest) < 4 {
		return Key{}
	}
	k.Port = uint16(rest[2])<<8 | uint16(rest[3])
	return k
}

// probeKey is the Key a probe packet targets.
func (p Packet) probeKey() Key {
	k := Key{Addr: p.Dst, Proto: p.Proto, Port: p.DstPort}
	if p.Proto == ICMP {
		k.Port = 0
	}
	return k
}

// WireStates derives, from a capture of the scanner's link alone, what a
// correct scanner must report for every probe the scanner sent: the state
// the replies on the wire prove, independent of any scanner's logic. A SYN
// answered by SYN-ACK is open, by RST closed; a UDP reply is open; an echo
// reply open; an ICMP port unreachable quoting a UDP probe closed; any
// other ICMP unreachable, port unreachable quoting a TCP probe included,
// rejected (keeping type and code in the reason); no reply filtered (TCP,
// ICMP) or open|filtered (UDP). It is the lab's wire-level oracle.
func WireStates(pkts []Packet, scanner ...netip.Addr) map[Key]Observation {
	out := map[Key]Observation{}
	for _, p := range Probes(pkts, scanner...) {
		k := p.probeKey()
		if _, seen := out[k]; seen {
			continue
		}
		st := Filtered
		if p.Proto == UDP {
			st = OpenFiltered
		}
		out[k] = Observation{Key: k, State: st, Reason: "no-reply"}
	}
	set := func(k Key, st State, why string) {
		if _, probed := out[k]; probed {
			out[k] = Observation{Key: k, State: st, Reason: why}
		}
	}
	for _, p := range pkts {
		if !slices.Contains(scanner, p.Dst) {
			continue
		}
		switch p.Proto {
		case TCP:
			k := Key{Addr: p.Src, Proto: TCP, Port: p.SrcPort}
			switch {
			case p.SYN && p.ACK:
				set(k, Open, "syn-ack")
			case p.RST:
				set(k, Closed, "rst")
			}
		case UDP:
			set(Key{Addr: p.Src, Proto: UDP, Port: p.SrcPort}, Open, "udp-reply")
		case ICMP:
			echoReply := (p.Src.Is4() && p.ICMPType == layers.ICMPv4TypeEchoReply) ||
				(p.Src.Is6() && p.ICMPType == layers.ICMPv6TypeEchoReply)
			if echoReply {
				set(Key{Addr: p.Src, Proto: ICMP}, Open, "echo-reply")
				continue
			}
			if !p.Quoted.Addr.IsValid() {
				continue
			}
			why := fmt.Sprintf("icmp-unreachable type %d code %d", p.ICMPType, p.ICMPCode)
			portUnreach := (p.Src.Is4() && p.ICMPCode == icmp4PortUnreach) || (p.Src.Is6() && p.ICMPCode == icmp6PortUnreach)
			// A host answers a closed TCP port with a RST, so only UDP
			// makes port unreachable mean closed.
			if portUnreach && p.Quoted.Proto == UDP {
				set(p.Quoted, Closed, why)
			} else {
				set(p.Quoted, Rejected, why)
			}
		}
	}
	return out
}

// From returns the packets whose source is one of addrs.
func From(pkts []Packet, addrs ...netip.Addr) []Packet {
	var out []Packet
	for _, p := range pkts {
		if slices.Contains(addrs, p.Src) {
			out = append(out, p)
		}
	}
	return out
}

// Probes returns the probe packets (see Packet.IsProbe) sent by addrs.
func Probes(pkts []Packet, addrs ...netip.Addr) []Packet {
	var out []Packet
	for _, p := range From(pkts, addrs...) {
		if p.IsProbe() {
			out = append(out, p)
		}
	}
	return out
}

// OutOfScope returns every IP packet sent from the scanner side whose
// destination is not accepted by inScope, ignoring only IPv6 link
// housekeeping (neighbour discovery, MLD). pkts must be a capture of the
// scanner's link, and scanner its addresses: packets from other sources
// (replies) are skipped.
func OutOfScope(pkts []Packet, inScope func(netip.Addr) bool, scanner ...netip.Addr) []Packet {
	var bad []Packet
	for _, p := range pkts {
		fromScanner := slices.Contains(scanner, p.Src) || (p.Src.Is6() && p.Src.IsLinkLocalUnicast())
		if !fromScanner || p.isLinkControl() {
			continue
		}
		if !inScope(p.Dst) {
			bad = append(bad, p)
		}
	}
	return bad
}

// Window is the busiest stretch of a capture.
type Window struct {
	// Packets is the largest number of packets in any window of the
	// requested width; Start is when that window starts.
	Packets int
	Start   time.Time
}

// WorstWindow slides a window of width w over the packet times (in any
// order) and returns the fullest one. A window is half-open, [t, t+w), and
// starts at a packet, which is where the maximum of a sliding count is.
func WorstWindow(pkts []Packet, w time.Duration) Window {
	ts := make([]time.Time, len(pkts))
	for i, p := range pkts {
		ts[i] = p.Time
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	var best Window
	j := 0
	for i := range ts {
		for j < len(ts) && ts[j].Sub(ts[i]) < w {
			j++
		}
		if n := j - i; n > best.Packets {
			best = Window{Packets: n, Start: ts[i]}
		}
	}
	return best
}

// Rate is the achieved packet rate of pkts: the packets after the first
// divided by the time from the first to the last (at exactly R per second,
// N packets span (N-1)/R seconds). Fewer than two packets give 0.
func Rate(pkts []Packet) float64 {
	if len(pkts) < 2 {
		return 0
	}
	first, last := pkts[0].Time, pkts[0].Time
	for _, p := range pkts {
		if p.Time.Before(first) {
			first = p.Time
		}
		if p.Time.After(last) {
			last = p.Time
		}
	}
	span := last.Sub(first).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(len(pkts)-1) / span
}
