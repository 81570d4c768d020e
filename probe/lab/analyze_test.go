package lab

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms ...float64) []Packet {
	out := make([]Packet, len(ms))
	for i, m := range ms {
		out[i] = Packet{Time: t0.Add(time.Duration(m * float64(time.Millisecond)))}
	}
	return out
}

func TestWorstWindow(t *testing.T) {
	tests := []struct {
		name string
		pkts []Packet
		want int
	}{
		{"empty", nil, 0},
		{"one", at(5), 1},
		{"evenly 10ms", at(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110), 10},
		// Half-open: a packet exactly 100 ms after the first is in the next window.
		{"edge excluded", at(0, 99.999, 100), 2},
		{"burst in the middle", at(0, 150, 150.1, 150.2, 249, 400), 4},
		{"unsorted", at(300, 0, 50, 20, 90), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WorstWindow(tt.pkts, 100*time.Millisecond).Packets; got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRate(t *testing.T) {
	// 401 packets 2.5 ms apart: exactly 400 per second.
	ms := make([]float64, 401)
	for i := range ms {
		ms[i] = float64(i) * 2.5
	}
	if r := Rate(at(ms...)); r < 399.999 || r > 400.001 {
		t.Errorf("rate %v, want 400", r)
	}
	if r := Rate(at(1)); r != 0 {
		t.Errorf("one packet: rate %v", r)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestOutOfScope(t *testing.T) {
	scanner := []netip.Addr{addr("198.18.0.2"), addr("fd00:f1a9::2")}
	in := func(a netip.Addr) bool { return netip.MustParsePrefix("198.18.1.0/24").Contains(a) }
	pkts := []Packet{
		{Src: addr("198.18.0.2"), Dst: addr("198.18.1.7"), Proto: TCP, SYN: true},
		{Src: addr("198.18.1.7"), Dst: addr("198.18.0.2"), Proto: TCP, SYN: true, ACK: true}, // reply
		{Src: addr("fd00:f1a9::2"), Dst: addr("fd00:f1a9::1"), Proto: ICMP, ICMPType: 135},   // neighbour solicitation
		{Src: addr("fe80::1"), Dst: addr("ff02::16"), Proto: ICMP, ICMPType: 143},            // MLD report
		{Src: addr("198.18.0.2"), Dst: addr("198.18.2.1"), Proto: TCP, SYN: true},            // leak
		{Src: addr("fd00:f1a9::2"), Dst: addr("fd00:f1a9:1::1"), Proto: UDP},                 // leak (v6 not in scope here)
		{Src: addr("fe80::1"), Dst: addr("fe80::2"), Proto: TCP},                             // link-local TCP is traffic too
	}
	bad := OutOfScope(pkts, in, scanner...)
	if len(bad) != 3 || bad[0].Dst != addr("198.18.2.1") || bad[1].Dst != addr("fd00:f1a9:1::1") || bad[2].Dst != addr("fe80::2") {
		t.Errorf("got %+v", bad)
	}
}

// frame serialises an Ethernet frame with the given layers.
func frame(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func eth(v6 bool) *layers.Ethernet {
	e := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	if v6 {
		e.EthernetType = layers.EthernetTypeIPv6
	}
	return e
}

func ip4(src, dst string, p layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ip6(src, dst string, p layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

// TestReadPcapAndWireStates writes a capture of probes and every kind of
// answer, reads it back, and checks the decoded packets and the states the
// wire proves.
func TestReadPcapAndWireStates(t *testing.T) {
	syn := func(src, dst string, sport, dport uint16) []byte {
		i := ip4(src, dst, layers.IPProtocolTCP)
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
		_ = tc.SetNetworkLayerForChecksum(i)
		return frame(t, eth(false), i, tc)
	}
	reply := func(src, dst string, sport, dport uint16, synack bool) []byte {
		i := ip4(src, dst, layers.IPProtocolTCP)
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: synack, ACK: true, RST: !synack, Window: 1024}
		_ = tc.SetNetworkLayerForChecksum(i)
		return frame(t, eth(false), i, tc)
	}
	// The probe an ICMP error quotes: IPv4 header + 8 bytes of TCP.
	quotedProbe := syn("198.18.0.2", "198.18.1.9", 40000, 8443)[14:][:28]
	icmpErr := frame(t, eth(false), ip4("198.18.0.1", "198.18.0.2", layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)}, gopacket.Payload(quotedProbe))
	// A TCP probe answered by ICMP port unreachable: a firewall's REJECT
	// (a host answers a closed TCP port with a RST), so rejected.
	quotedProbe8081 := syn("198.18.0.2", "198.18.1.9", 40000, 8081)[14:][:28]
	portUnreachTCP := frame(t, eth(false), ip4("198.18.0.1", "198.18.0.2", layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(quotedProbe8081))
	// UDP over IPv6 and its ICMPv6 port unreachable.
	u6 := ip6("fd00:f1a9::2", "fd00:f1a9:1::3", layers.IPProtocolUDP)
	ud := &layers.UDP{SrcPort: 40001, DstPort: 161}
	_ = ud.SetNetworkLayerForChecksum(u6)
	udpProbe := frame(t, eth(true), u6, ud)
	i6 := ip6("fd00:f1a9:1::3", "fd00:f1a9::2", layers.IPProtocolICMPv6)
	ic6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}
	_ = ic6.SetNetworkLayerForChecksum(i6)
	quoted6 := append([]byte{0, 0, 0, 0}, udpProbe[14:]...) // unused word, then the probe
	icmp6Err := frame(t, eth(true), i6, ic6, gopacket.Payload(quoted6))
	arp := frame(t, &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: []byte{198, 18, 0, 2},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 0, 1}})

	frames := [][]byte{
		arp,
		syn("198.18.0.2", "198.18.1.1", 40000, 22), reply("198.18.1.1", "198.18.0.2", 22, 40000, true),
		syn("198.18.0.2", "198.18.1.1", 40000, 25), reply("198.18.1.1", "198.18.0.2", 25, 40000, false),
		syn("198.18.0.2", "198.18.1.1", 40000, 3306), // no answer
		syn("198.18.0.2", "198.18.1.9", 40000, 8443), icmpErr,
		syn("198.18.0.2", "198.18.1.9", 40000, 8081), portUnreachTCP,
		udpProbe, icmp6Err,
	}
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "x.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	pkts, err := ReadPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != len(frames)-1 {
		t.Fatalf("decoded %d packets, want %d (ARP skipped)", len(pkts), len(frames)-1)
	}
	if got := Probes(pkts, addr("198.18.0.2"), addr("fd00:f1a9::2")); len(got) != 6 {
		t.Errorf("probes %d, want 6", len(got))
	}
	if q := pkts[len(pkts)-1].Quoted; q != (Key{Addr: addr("fd00:f1a9:1::3"), Proto: UDP, Port: 161}) {
		t.Errorf("ICMPv6 quoted %+v", q)
	}
	ws := WireStates(pkts, addr("198.18.0.2"), addr("fd00:f1a9::2"))
	want := map[Key]State{
		{addr("198.18.1.1"), TCP, 22}:      Open,
		{addr("198.18.1.1"), TCP, 25}:      Closed,
		{addr("198.18.1.1"), TCP, 3306}:    Filtered,
		{addr("198.18.1.9"), TCP, 8443}:    Rejected,
		{addr("198.18.1.9"), TCP, 8081}:    Rejected,
		{addr("fd00:f1a9:1::3"), UDP, 161}: Closed,
	}
	if len(ws) != len(want) {
		t.Errorf("wire states %v", ws)
	}
	for k, st := range want {
		if ws[k].State != st {
			t.Errorf("%s: %q (%s), want %q", k, ws[k].State, ws[k].Reason, st)
		}
	}
	if r := ws[Key{addr("198.18.1.9"), TCP, 8081}].Reason; !strings.Contains(r, "type 3 code 3") {
		t.Errorf("reason %q lacks the ICMP type and code", r)
	}
	if r := ws[Key{addr("198.18.1.9"), TCP, 8443}].Reason; !strings.Contains(r, "type 3 code 13") {
		t.Errorf("reason %q lacks the ICMP type and code", r)
	}
}

// FuzzQuoted: the quoted-packet decoder takes any bytes without panicking
// and only names a port for TCP or UDP.
func FuzzQuoted(f *testing.F) {
	f.Add([]byte{})                                      // nothing
	f.Add(append([]byte{0x45}, make([]byte, 27)...))     // IPv4, protocol 0
	f.Add(append([]byte{0x4f}, make([]byte, 19)...))     // IHL 60 past the end
	f.Add(append([]byte{0x60}, make([]byte, 39)...))     // IPv6 header only
	f.Add([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0}) // truncated IPv4
	f.Fuzz(func(t *testing.T, b []byte) {
		k := quoted(b)
		if k.Port != 0 && k.Proto != TCP && k.Proto != UDP {
			t.Errorf("port %d for proto %q", k.Port, k.Proto)
		}
	})
}
