package probe

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Decoder errors. Each is counted, never fatal: the network is untrusted.
var (
	// ErrTruncated is a packet shorter than its headers claim.
	ErrTruncated = errors.New("truncated packet")
	// ErrUnsupported is a packet the engine has no use for (other
	// protocols, fragments, unknown IP versions).
	ErrUnsupported = errors.New("unsupported packet")
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// packet is what the engine needs of a captured IP packet.
type packet struct {
	src, dst     netip.Addr
	ttl          uint8
	proto        uint8 // protoTCP, protoUDP, protoICMP, protoICMPv6
	sport, dport uint16
	flags        uint8 // TCP
	seq, ack     uint32
	icmpType     uint8
	icmpCode     uint8
	echoID       uint16 // ICMP echo request/reply
	echoSeq      uint16
	// inner is the packet an ICMP error quotes (its IP header and at least
	// the first 8 bytes of its payload), if hasInner.
	inner    quoted
	hasInner bool
}

// quoted is the header of a packet quoted in an ICMP error.
type quoted struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	seq          uint32 // TCP: sequence number
	echoID       uint16 // ICMP echo: identifier and sequence
	echoSeq      uint16
}

// isICMPError reports whether an ICMP/ICMPv6 type carries a quoted packet.
func isICMPError(proto, typ uint8) bool {
	if proto == protoICMP {
		return typ == 3 || typ == 11 || typ == 12 // unreachable, time exceeded, parameter problem
	}
	return typ >= 1 && typ <= 4 // unreachable, too big, time exceeded, parameter problem
}

// decode parses an IPv4 or IPv6 packet (no link header). It never panics
// and never reads out of bounds: every length is checked.
func decode(b []byte) (packet, error) {
	var p packet
	l4, proto, err := decodeIP(b, &p.src, &p.dst, &p.ttl)
	if err != nil {
		return p, err
	}
	p.proto = proto
	switch proto {
	case protoTCP:
		if len(l4) < 20 {
			return p, ErrTruncated
		}
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			// A data offset that points outside the segment is a bogus
			// option length; treat it as truncated.
			return p, ErrTruncated
		}
		p.sport = binary.BigEndian.Uint16(l4[0:])
		p.dport = binary.BigEndian.Uint16(l4[2:])
		p.seq = binary.BigEndian.Uint32(l4[4:])
		p.ack = binary.BigEndian.Uint32(l4[8:])
		p.flags = l4[13]
	case protoUDP:
		if len(l4) < 8 {
			return p, ErrTruncated
		}
		p.sport = binary.BigEndian.Uint16(l4[0:])
		p.dport = binary.BigEndian.Uint16(l4[2:])
	case protoICMP, protoICMPv6:
		if len(l4) < 8 {
			return p, ErrTruncated
		}
		p.icmpType, p.icmpCode = l4[0], l4[1]
		if isICMPError(proto, p.icmpType) {
			q, err := decodeQuoted(l4[8:])
			if err != nil {
				return p, err
			}
			p.inner, p.hasInner = q, true
		} else {
			p.echoID = binary.BigEndian.Uint16(l4[4:])
			p.echoSeq = binary.BigEndian.Uint16(l4[6:])
		}
	default:
		return p, ErrUnsupported
	}
	return p, nil
}

// decodeIP parses the IP header and returns the transport payload and
// protocol. IPv6 extension headers (hop-by-hop, routing, destination
// options) are skipped; fragments are unsupported (we never send any, so a
// fragment cannot be an answer to us that we could classify safely).
func decodeIP(b []byte, src, dst *netip.Addr, ttl *uint8) ([]byte, uint8, error) {
	if len(b) < 1 {
		return nil, 0, ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return nil, 0, ErrTruncated
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || ihl > len(b) {
			return nil, 0, ErrTruncated
		}
		if total >= ihl && total < len(b) {
			b = b[:total] // drop link padding
		}
		if frag := binary.BigEndian.Uint16(b[6:]); frag&0x3fff != 0 {
			// More-fragments set or a non-zero offset.
			return nil, 0, ErrUnsupported
		}
		*src = netip.AddrFrom4([4]byte(b[12:16]))
		*dst = netip.AddrFrom4([4]byte(b[16:20]))
		*ttl = b[8]
		return b[ihl:], b[9], nil
	case 6:
		if len(b) < 40 {
			return nil, 0, ErrTruncated
		}
		if plen := int(binary.BigEndian.Uint16(b[4:])); 40+plen < len(b) {
			b = b[:40+plen]
		}
		*src = netip.AddrFrom16([16]byte(b[8:24]))
		*dst = netip.AddrFrom16([16]byte(b[24:40]))
		*ttl = b[7]
		nh, rest := b[6], b[40:]
		for range 8 { // bound the extension header chain
			switch nh {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(rest) < 8 {
					return nil, 0, ErrTruncated
				}
				l := (int(rest[1]) + 1) * 8
				if l > len(rest) {
					return nil, 0, ErrTruncated
				}
				nh, rest = rest[0], rest[l:]
			case 44:
				return nil, 0, ErrUnsupported
			default:
				return rest, nh, nil
			}
		}
		return nil, 0, ErrUnsupported
	}
	return nil, 0, ErrUnsupported
}

// decodeQuoted parses the packet quoted by an ICMP error: an IP header and
// at least 8 bytes of transport header (RFC 792 guarantees 8).
func decodeQuoted(b []byte) (quoted, error) {
	var q quoted
	var ttl uint8
	l4, proto, err := decodeIP(b, &q.src, &q.dst, &ttl)
	if err != nil {
		return q, err
	}
	q.proto = proto
	if len(l4) < 8 {
		return q, ErrTruncated
	}
	switch proto {
	case protoTCP:
		q.sport = binary.BigEndian.Uint16(l4[0:])
		q.dport = binary.BigEndian.Uint16(l4[2:])
		q.seq = binary.BigEndian.Uint32(l4[4:])
	case protoUDP:
		q.sport = binary.BigEndian.Uint16(l4[0:])
		q.dport = binary.BigEndian.Uint16(l4[2:])
	case protoICMP, protoICMPv6:
		q.echoID = binary.BigEndian.Uint16(l4[4:])
		q.echoSeq = binary.BigEndian.Uint16(l4[6:])
	default:
		return q, ErrUnsupported
	}
	return q, nil
}

// classifyICMP maps an ICMP/ICMPv6 error (outer proto, type, code) that
// quotes a probe of protocol inner to a state and reason.
//
// Port unreachable quoting a UDP probe means the host itself answered
// "nothing here": closed. Quoting a TCP probe it cannot come from the
// host's stack, which answers a closed TCP port with a RST: it is a packet
// filter's REJECT (iptables' default), so it is rejected like every other
// unreachable code, with type and code kept by the caller. Administratively
// prohibited gets its own reason. Time exceeded never reached the target:
// filtered.
func classifyICMP(proto, inner, typ, code uint8) (State, string) {
	portUnreach := proto == protoICMP && typ == 3 && code == 3 || proto == protoICMPv6 && typ == 1 && code == 4
	switch {
	case portUnreach && inner == protoUDP:
		return StateClosed, ReasonICMPPortUnr
	case portUnreach && inner == protoTCP:
		return StateRejected, ReasonICMPPortUnr
	case portUnreach:
		// An echo request has no port: the message says nothing more
		// than "unreachable".
		return StateRejected, ReasonICMPUnreach
	}
	if proto == protoICMP {
		switch {
		case typ == 3 && (code == 9 || code == 10 || code == 13):
			return StateRejected, ReasonICMPProhib
		case typ == 11:
			return StateFiltered, ReasonICMPTimeExc
		}
		return StateRejected, ReasonICMPUnreach
	}
	switch {
	case typ == 1 && (code == 1 || code == 5 || code == 6):
		// administratively prohibited, source address failed
		// ingress/egress policy, reject route to destination
		return StateRejected, ReasonICMPProhib
	case typ == 3:
		return StateFiltered, ReasonICMPTimeExc
	}
	return StateRejected, ReasonICMPUnreach
}
