package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// IP protocol numbers used by the engine.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// Fixed header values of every probe we build. They are ordinary values a
// stock TCP/IP stack would use: no TTL games, no odd flags.
const (
	probeTTL    = 64
	synWindow   = 1024
	synMSS      = 1460
	echoPayload = "FirewallIQ probe" // says who we are to anyone capturing
)

// errFamily is returned when source and destination families differ.
var errFamily = errors.New("address family mismatch")

// synTemplate is a TCP SYN built once with gopacket/layers for a source
// address; per packet only the destination, ports, sequence number, IP ID
// and checksums change (patched in place, which is what makes 150k pps
// affordable).
type synTemplate struct {
	b     []byte
	v6    bool
	ipLen int // IP header length
}

// newSYNTemplate serialises a SYN from src with gopacket/layers.
func newSYNTemplate(src netip.Addr) (*synTemplate, error) {
	tcp := &layers.TCP{
		SrcPort: 1, DstPort: 1, Seq: 0, SYN: true, Window: synWindow,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{synMSS >> 8, synMSS & 0xff}}},
	}
	b, err := serializeIP(src, src, protoTCP, tcp)
	if err != nil {
		return nil, err
	}
	t := &synTemplate{b: b, v6: src.Is6()}
	t.ipLen = 20
	if t.v6 {
		t.ipLen = 40
	}
	return t, nil
}

// serializeIP builds IP header + layers with gopacket, checksums computed.
func serializeIP(src, dst netip.Addr, proto uint8, l ...gopacket.SerializableLayer) ([]byte, error) {
	if src.Is4() != dst.Is4() {
		return nil, errFamily
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	buf := gopacket.NewSerializeBuffer()
	var ipl gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: probeTTL, Protocol: layers.IPProtocol(proto), SrcIP: s[:], DstIP: d[:]}
		ipl, nl = ip, ip
	} else {
		s, d := src.As16(), dst.As16()
		nh := layers.IPProtocol(proto)
		ip := &layers.IPv6{Version: 6, HopLimit: probeTTL, NextHeader: nh, SrcIP: s[:], DstIP: d[:]}
		ipl, nl = ip, ip
	}
	for _, x := range l {
		switch v := x.(type) {
		case *layers.TCP:
			_ = v.SetNetworkLayerForChecksum(nl)
		case *layers.UDP:
			_ = v.SetNetworkLayerForChecksum(nl)
		case *layers.ICMPv6:
			_ = v.SetNetworkLayerForChecksum(nl)
		}
	}
	if err := gopacket.SerializeLayers(buf, opts, append([]gopacket.SerializableLayer{ipl}, l...)...); err != nil {
		return nil, fmt.Errorf("serialize packet: %w", err)
	}
	return append([]byte(nil), buf.Bytes()...), nil
}

// build writes a SYN to dst:dport from sport with seq into out (which must
// hold len(t.b) bytes) and returns the packet.
func (t *synTemplate) build(out []byte, dst netip.Addr, sport, dport uint16, seq uint32, ipID uint16) []byte {
	p := out[:len(t.b)]
	copy(p, t.b)
	tcp := p[t.ipLen:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[16], tcp[17] = 0, 0
	if t.v6 {
		d := dst.As16()
		copy(p[24:40], d[:])
		binary.BigEndian.PutUint16(tcp[16:], l4Checksum(p[8:24], p[24:40], protoTCP, tcp))
		return p
	}
	d := dst.As4()
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[4:], ipID)
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], finish(sum(p[:20], 0)))
	binary.BigEndian.PutUint16(tcp[16:], l4Checksum(p[12:16], p[16:20], protoTCP, tcp))
	return p
}

// sum adds b as big-endian 16-bit words to acc (RFC 1071).
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// finish folds and complements a checksum sum.
func finish(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}

// l4Checksum is the TCP/UDP/ICMPv6 checksum over the pseudo header of
// src/dst (4 or 16 bytes each) and seg, whose checksum field must be zero.
func l4Checksum(src, dst []byte, proto uint8, seg []byte) uint16 {
	acc := sum(src, 0)
	acc = sum(dst, acc)
	acc += uint32(proto) + uint32(len(seg))
	return finish(sum(seg, acc))
}

// UDP payload names (the closed list of benign UDP probes).
const (
	PayloadEmpty = "empty"
	PayloadDNS   = "dns-query"
	PayloadNTP   = "ntp-client"
)

// udpPayload picks the benign payload for a port from the allowed names:
// a DNS query for the root's NS records to port 53, an NTP client request
// to port 123, and an empty datagram everywhere else (or when the specific
// payload is not allowed). It returns the payload and its name.
func udpPayload(port uint16, allowed []string, dnsID uint16) ([]byte, string) {
	has := func(n string) bool {
		for _, a := range allowed {
			if a == n {
				return true
			}
		}
		return false
	}
	switch {
	case port == 53 && has(PayloadDNS):
		return dnsQuery(dnsID), PayloadDNS
	case port == 123 && has(PayloadNTP):
		return ntpRequest(), PayloadNTP
	}
	return nil, PayloadEmpty
}

// dnsQuery is a standard, non-recursive query for ". IN NS": a 12-byte
// header (one question), the root name (a single zero byte), type NS,
// class IN. It is written by hand because gopacket/layers encodes the root
// name as two zero bytes, which shifts the type and class; the test decodes
// it with gopacket to prove the layout.
func dnsQuery(id uint16) []byte {
	b := make([]byte, 12, 17)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	b = append(b, 0)                     // root name
	b = binary.BigEndian.AppendUint16(b, uint16(layers.DNSTypeNS))
	return binary.BigEndian.AppendUint16(b, uint16(layers.DNSClassIN))
}

// ntpRequest is a 48-byte NTPv4 client request (LI 0, VN 4, mode 3), all
// other fields zero, as RFC 5905 allows a client to send.
func ntpRequest() []byte {
	b := make([]byte, 48)
	b[0] = 0<<6 | 4<<3 | 3
	return b
}

// buildUDP builds a UDP datagram with payload from src:sport to dst:dport.
func buildUDP(src, dst netip.Addr, sport, dport uint16, payload []byte) ([]byte, error) {
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	return serializeIP(src, dst, protoUDP, u, gopacket.Payload(payload))
}

// buildEcho builds an ICMP or ICMPv6 echo request.
func buildEcho(src, dst netip.Addr, id, seq uint16) ([]byte, error) {
	if src.Is4() {
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq}
		return serializeIP(src, dst, protoICMP, ic, gopacket.Payload(echoPayload))
	}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	echo := &layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}
	return serializeIP(src, dst, protoICMPv6, ic, echo, gopacket.Payload(echoPayload))
}
