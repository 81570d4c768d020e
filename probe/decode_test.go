package probe

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/dns/dnsmessage"
)

var (
	us4   = netip.MustParseAddr("10.1.0.1")
	them4 = netip.MustParseAddr("10.2.0.5")
	fw4   = netip.MustParseAddr("10.9.0.1")
	us6   = netip.MustParseAddr("fd00:1::1")
	them6 = netip.MustParseAddr("fd00:2::5")
	fw6   = netip.MustParseAddr("fd00:9::1")
)

func mustPkt(t testing.TB, src, dst netip.Addr, proto uint8, l ...gopacket.SerializableLayer) []byte {
	t.Helper()
	b, err := serializeIP(src, dst, proto, l...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSYNTemplateMatchesGopacket(t *testing.T) {
	for _, src := range []netip.Addr{us4, us6} {
		dst := them4
		if src.Is6() {
			dst = them6
		}
		tmpl, err := newSYNTemplate(src)
		if err != nil {
			t.Fatal(err)
		}
		got := tmpl.build(make([]byte, 128), dst, 40000, 443, 0xdeadbeef, 0x1234)
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 0xdeadbeef, SYN: true, Window: synWindow,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{synMSS >> 8, synMSS & 0xff}}}}
		var want []byte
		if src.Is4() {
			// gopacket with the same IP ID.
			s, d := src.As4(), dst.As4()
			ip := &layers.IPv4{Version: 4, IHL: 5, TTL: probeTTL, Id: 0x1234, Protocol: layers.IPProtocolTCP, SrcIP: s[:], DstIP: d[:]}
			_ = tcp.SetNetworkLayerForChecksum(ip)
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp); err != nil {
				t.Fatal(err)
			}
			want = buf.Bytes()
		} else {
			want = mustPkt(t, src, dst, protoTCP, tcp)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: patched template\n%x\nfull gopacket build\n%x", src, got, want)
		}
	}
}

// quote returns the first 28 (v4) or 48 (v6) bytes of a packet, as an
// ICMP error carries it.
func quote(b []byte) []byte {
	n := 28
	if b[0]>>4 == 6 {
		n = 48
	}
	return b[:min(n, len(b))]
}

func TestDecode(t *testing.T) {
	syn4 := mustPkt(t, us4, them4, protoTCP, &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 77, SYN: true})
	syn6 := mustPkt(t, us6, them6, protoTCP, &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 77, SYN: true})
	synack := mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Seq: 5, Ack: 78, SYN: true, ACK: true})
	prohib4 := mustPkt(t, fw4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)}, gopacket.Payload(quote(syn4)))
	prohib6 := mustPkt(t, fw6, us6, protoICMPv6, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 1)}, gopacket.Payload(append([]byte{0, 0, 0, 0}, quote(syn6)...)))
	tests := []struct {
		name  string
		b     []byte
		err   error
		check func(packet) bool
	}{
		{"syn-ack", synack, nil, func(p packet) bool {
			return p.src == them4 && p.sport == 22 && p.dport == 40000 && p.ack == 78 && p.flags == tcpSYN|tcpACK && p.ttl == probeTTL
		}},
		{"icmp admin prohibited quoting a SYN", prohib4, nil, func(p packet) bool {
			return p.icmpType == 3 && p.icmpCode == 13 && p.hasInner && p.inner.dst == them4 && p.inner.dport == 22 && p.inner.sport == 40000 && p.inner.seq == 77
		}},
		{"icmpv6 admin prohibited quoting a SYN", prohib6, nil, func(p packet) bool {
			return p.icmpType == 1 && p.icmpCode == 1 && p.hasInner && p.inner.dst == them6 && p.inner.seq == 77
		}},
		{"empty", nil, ErrTruncated, nil},
		{"ipv4 header cut", synack[:19], ErrTruncated, nil},
		{"tcp header cut", synack[:30], ErrTruncated, nil},
		{"ipv6 header cut", syn6[:39], ErrTruncated, nil},
		{"icmp quote cut", prohib4[:20+8+10], ErrTruncated, nil},
		{"bogus tcp data offset", func() []byte { b := bytes.Clone(synack); b[20+12] = 0xf0; return b }(), ErrTruncated, nil},
		{"bogus ihl", func() []byte { b := bytes.Clone(synack); b[0] = 0x42; return b }(), ErrTruncated, nil},
		{"ipv4 fragment", func() []byte { b := bytes.Clone(synack); b[6] = 0x20; return b }(), ErrUnsupported, nil},
		{"version 5", []byte{0x50, 0, 0, 0}, ErrUnsupported, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := decode(tt.b)
			if err != tt.err {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if tt.check != nil && !tt.check(p) {
				t.Fatalf("decoded %+v", p)
			}
		})
	}
}

func TestClassifyICMP(t *testing.T) {
	tests := []struct {
		name                    string
		proto, inner, typ, code uint8
		st                      State
		why                     string
	}{
		// A host answers a closed UDP port with port unreachable: closed.
		{"v4 udp port unreachable", protoICMP, protoUDP, 3, 3, StateClosed, ReasonICMPPortUnr},
		{"v6 udp port unreachable", protoICMPv6, protoUDP, 1, 4, StateClosed, ReasonICMPPortUnr},
		// A host answers a closed TCP port with a RST, so port
		// unreachable quoting a SYN is a packet filter's REJECT.
		{"v4 tcp port unreachable", protoICMP, protoTCP, 3, 3, StateRejected, ReasonICMPPortUnr},
		{"v6 tcp port unreachable", protoICMPv6, protoTCP, 1, 4, StateRejected, ReasonICMPPortUnr},
		{"v4 echo port unreachable", protoICMP, protoICMP, 3, 3, StateRejected, ReasonICMPUnreach},
		{"v6 echo port unreachable", protoICMPv6, protoICMPv6, 1, 4, StateRejected, ReasonICMPUnreach},
		{"v4 tcp admin prohibited", protoICMP, protoTCP, 3, 13, StateRejected, ReasonICMPProhib},
		{"v4 udp admin prohibited", protoICMP, protoUDP, 3, 13, StateRejected, ReasonICMPProhib},
		{"v4 tcp host prohibited", protoICMP, protoTCP, 3, 10, StateRejected, ReasonICMPProhib},
		{"v4 udp host unreachable", protoICMP, protoUDP, 3, 1, StateRejected, ReasonICMPUnreach},
		{"v4 tcp host unreachable", protoICMP, protoTCP, 3, 1, StateRejected, ReasonICMPUnreach},
		{"v4 time exceeded", protoICMP, protoTCP, 11, 0, StateFiltered, ReasonICMPTimeExc},
		{"v6 tcp admin prohibited", protoICMPv6, protoTCP, 1, 1, StateRejected, ReasonICMPProhib},
		{"v6 udp address unreachable", protoICMPv6, protoUDP, 1, 3, StateRejected, ReasonICMPUnreach},
		{"v6 time exceeded", protoICMPv6, protoUDP, 3, 0, StateFiltered, ReasonICMPTimeExc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, why := classifyICMP(tt.proto, tt.inner, tt.typ, tt.code)
			if st != tt.st || why != tt.why {
				t.Errorf("proto %d inner %d type %d code %d: %s/%s, want %s/%s", tt.proto, tt.inner, tt.typ, tt.code, st, why, tt.st, tt.why)
			}
		})
	}
}

// testEngine returns an engine with one pending SYN probe to them4:22 and
// one to them6:22, as if sent from port 40000, for matcher tests.
func testEngine(t testing.TB) (*Engine, *entry, *entry) {
	e, err := New(Config{Targets: seqOf(), Scope: prefixes{}, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: 100}, NoRaw: true})
	if err != nil {
		t.Fatal(err)
	}
	e.tcpPorts, e.udpPort = []uint16{40000}, 40001
	b := &batch{done: make(chan struct{})}
	b.remaining.Store(2)
	mk := func(a netip.Addr) *entry {
		en := &entry{kind: KindTCPSyn, key: probeKey{a, protoTCP, 22}, b: b, attempts: 1, last: time.Now()}
		e.pending[en.key] = en
		return en
	}
	return e, mk(them4), mk(them6)
}

func TestMatchReplies(t *testing.T) {
	tests := []struct {
		name      string
		pkt       func(e *Engine) []byte
		state     State
		unmatched uint64
	}{
		{"syn-ack with our cookie", func(e *Engine) []byte {
			return mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Ack: e.cookie(probeKey{them4, protoTCP, 22}) + 1, SYN: true, ACK: true})
		}, StateOpen, 0},
		{"rst with our cookie", func(e *Engine) []byte {
			return mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Ack: e.cookie(probeKey{them4, protoTCP, 22}) + 1, RST: true, ACK: true})
		}, StateClosed, 0},
		{"syn-ack with a wrong ack", func(e *Engine) []byte {
			return mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Ack: 12345, SYN: true, ACK: true})
		}, "", 1},
		{"syn-ack from a host we did not probe, with another host's cookie", func(e *Engine) []byte {
			return mustPkt(t, fw4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Ack: e.cookie(probeKey{them4, protoTCP, 22}) + 1, SYN: true, ACK: true})
		}, "", 1},
		{"icmpv6 prohibited quoting our SYN", func(e *Engine) []byte {
			syn := mustPkt(t, us6, them6, protoTCP, &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: e.cookie(probeKey{them6, protoTCP, 22}), SYN: true})
			return mustPkt(t, fw6, us6, protoICMPv6, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 1)}, gopacket.Payload(append([]byte{0, 0, 0, 0}, quote(syn)...)))
		}, StateRejected, 0},
		{"icmp quoting a foreign packet", func(e *Engine) []byte {
			other := mustPkt(t, us4, them4, protoUDP, &layers.UDP{SrcPort: 5353, DstPort: 5353})
			return mustPkt(t, fw4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)}, gopacket.Payload(quote(other)))
		}, "", 1},
		{"a second answer to a decided probe is a duplicate", func(e *Engine) []byte {
			delete(e.pending, probeKey{them4, protoTCP, 22})
			return mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Ack: e.cookie(probeKey{them4, protoTCP, 22}) + 1, SYN: true, ACK: true})
		}, "", 0},
		{"icmp quoting our port with a forged sequence", func(e *Engine) []byte {
			syn := mustPkt(t, us4, them4, protoTCP, &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: 1, SYN: true})
			return mustPkt(t, fw4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)}, gopacket.Payload(quote(syn)))
		}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, en4, en6 := testEngine(t)
			e.handle(tt.pkt(e), false, time.Now())
			got := State("")
			for _, en := range []*entry{en4, en6} {
				if en.fin {
					got = en.res.State
				}
			}
			if strings.Contains(tt.name, "duplicate") && e.duplicates.Load() != 1 {
				t.Fatalf("duplicates %d, want 1", e.duplicates.Load())
			}
			if got != tt.state || e.unmatched.Load() != tt.unmatched {
				t.Fatalf("state %q unmatched %d, want %q %d", got, e.unmatched.Load(), tt.state, tt.unmatched)
			}
			if got == StateRejected && (en6.res.ICMP == nil || en6.res.ICMP.Type != 1 || en6.res.ICMP.Code != 1 || en6.res.ICMP.From != fw6.String()) {
				t.Fatalf("icmp kept as %+v", en6.res.ICMP)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to the reply decoder and the matcher.
// Neither may panic; the matcher may only finish a probe on a packet that
// carries its cookie.
func FuzzDecode(f *testing.F) {
	e, _, _ := testEngine(f)
	syn := mustPkt(f, us4, them4, protoTCP, &layers.TCP{SrcPort: 40000, DstPort: 22, Seq: e.cookie(probeKey{them4, protoTCP, 22}), SYN: true})
	// A well-formed SYN-ACK and RST answering the pending probe.
	f.Add(mustPkt(f, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Ack: e.cookie(probeKey{them4, protoTCP, 22}) + 1, SYN: true, ACK: true}))
	f.Add(mustPkt(f, them6, us6, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, Ack: 1, RST: true, ACK: true}))
	// TCP with bogus options (an option length running past the header).
	f.Add(mustPkt(f, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 40000, SYN: true, ACK: true,
		Options: []layers.TCPOption{{OptionType: 2, OptionLength: 40, OptionData: []byte{1, 2}}}}))
	// ICMP errors quoting our SYN, a truncated quote, and a foreign packet.
	f.Add(mustPkt(f, fw4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)}, gopacket.Payload(quote(syn))))
	f.Add(mustPkt(f, fw4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(syn[:22])))
	f.Add(mustPkt(f, fw4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)},
		gopacket.Payload(quote(mustPkt(f, us4, fw4, protoUDP, &layers.UDP{SrcPort: 53, DstPort: 53})))))
	// An ICMPv6 error and an echo reply.
	f.Add(mustPkt(f, fw6, us6, protoICMPv6, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)},
		gopacket.Payload(append([]byte{0, 0, 0, 0}, quote(mustPkt(f, us6, them6, protoUDP, &layers.UDP{SrcPort: 40001, DstPort: 53}))...))))
	f.Add(mustPkt(f, them4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: e.echoID}))
	// Truncated headers and nonsense.
	f.Add(syn[:10])
	f.Add([]byte{0x60})
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decode(b)
		if err == nil {
			switch p.proto {
			case protoTCP, protoUDP, protoICMP, protoICMPv6:
			default:
				t.Fatalf("decoded unsupported protocol %d", p.proto)
			}
			if !p.src.IsValid() || !p.dst.IsValid() {
				t.Fatal("decoded packet without addresses")
			}
		}
		e, en4, en6 := testEngine(t)
		e.handle(b, false, time.Now())
		e.handle(b, true, time.Now())
		if en4.fin && en4.res.Reason == ReasonSynAck && p.ack != e.cookie(en4.key)+1 {
			t.Fatalf("probe finished by a packet without its cookie: %+v", p)
		}
		_ = en6
	})
}

func TestUDPPayloads(t *testing.T) {
	all := []string{PayloadEmpty, PayloadDNS, PayloadNTP}
	tests := []struct {
		port    uint16
		allowed []string
		name    string
		size    int
	}{
		{53, all, PayloadDNS, 17},
		{123, all, PayloadNTP, 48},
		{161, all, PayloadEmpty, 0},
		{53, []string{PayloadEmpty}, PayloadEmpty, 0}, // the profile does not allow DNS
		{123, []string{PayloadDNS}, PayloadEmpty, 0},
	}
	for _, tt := range tests {
		b, name := udpPayload(tt.port, tt.allowed, 0x1234)
		if name != tt.name || len(b) != tt.size {
			t.Errorf("port %d %v: %s (%d bytes), want %s (%d)", tt.port, tt.allowed, name, len(b), tt.name, tt.size)
		}
	}
	var d layers.DNS
	q, _ := udpPayload(53, all, 0x1234)
	if err := d.DecodeFromBytes(q, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if d.ID != 0x1234 || d.QR || d.RD || len(d.Questions) != 1 || len(d.Questions[0].Name) != 0 || d.Questions[0].Type != layers.DNSTypeNS {
		t.Fatalf("dns query %+v", d)
	}
	// A second, stricter parser agrees: one question ". NS IN", no
	// trailing bytes.
	var mp dnsmessage.Parser
	h, err := mp.Start(q)
	if err != nil || h.ID != 0x1234 || h.RecursionDesired {
		t.Fatalf("dnsmessage header %+v: %v", h, err)
	}
	qs, err := mp.AllQuestions()
	if err != nil || len(qs) != 1 || qs[0].Name.String() != "." || qs[0].Type != dnsmessage.TypeNS || qs[0].Class != dnsmessage.ClassINET {
		t.Fatalf("dnsmessage questions %+v: %v", qs, err)
	}
	if n, _ := udpPayload(123, all, 0); n[0] != 0x23 {
		t.Fatalf("ntp first byte %#x, want LI 0 VN 4 mode 3", n[0])
	}
}

// TestSYNPortPerAttempt: each attempt of a SYN probe leaves from the next
// reserved port, with the same cookie.
func TestSYNPortPerAttempt(t *testing.T) {
	e, en, _ := testEngine(t)
	e.tcpPorts = []uint16{40000, 40010, 40020, 40030}
	en.src = us4
	tmpl := map[netip.Addr]*synTemplate{}
	for attempt := range 5 {
		en.attempts = attempt
		b, err := e.build(make([]byte, 0, 128), en, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		p, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if want := e.tcpPorts[attempt%4]; p.sport != want || p.seq != e.cookie(en.key) || p.dst != them4 {
			t.Fatalf("attempt %d: sport %d seq %d dst %s; want sport %d", attempt, p.sport, p.seq, p.dst, want)
		}
	}
}

// TestKernelResentSYN: a connect-based probe's SYN that the tap sees
// twice (same source port and sequence number: the kernel's
// retransmission after the process closed the socket too late) counts
// once more in packets_sent and kernel_resent, whether the tap kept the
// outgoing copy or, on loopback, the incoming one. A new connection's SYN
// (another port or sequence number) and the handshake's other packets do
// not.
func TestKernelResentSYN(t *testing.T) {
	syn := func(sport uint16, seq uint32) []byte {
		return mustPkt(t, us4, them4, protoTCP, &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 443, Seq: seq, SYN: true})
	}
	ack := mustPkt(t, us4, them4, protoTCP, &layers.TCP{SrcPort: 50000, DstPort: 443, Seq: 8, Ack: 2, ACK: true})
	synack := mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 443, DstPort: 50000, Seq: 1, Ack: 8, SYN: true, ACK: true})
	tests := []struct {
		name     string
		outgoing bool
		pkts     [][]byte
		resent   uint64
	}{
		{"one SYN", true, [][]byte{syn(50000, 7)}, 0},
		{"SYN sent again", true, [][]byte{syn(50000, 7), syn(50000, 7)}, 1},
		{"SYN sent twice again", true, [][]byte{syn(50000, 7), syn(50000, 7), syn(50000, 7)}, 2},
		{"loopback: incoming copies", false, [][]byte{syn(50000, 7), syn(50000, 7)}, 1},
		{"a new connection from another port", true, [][]byte{syn(50000, 7), syn(50001, 7)}, 0},
		{"a new connection, another sequence", true, [][]byte{syn(50000, 7), syn(50000, 9)}, 0},
		{"handshake packets", true, [][]byte{syn(50000, 7), ack, ack}, 0},
		{"the target's SYN-ACK twice", false, [][]byte{synack, synack}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEngine(t)
			e.watch[probeKey{them4, protoTCP, 443}] = &watchInfo{refs: 1}
			e.watch[probeKey{them4, protoTCP, 80}] = &watchInfo{refs: 1}
			now := time.Now()
			for i, p := range tt.pkts {
				e.handle(p, tt.outgoing, now.Add(time.Duration(i)*time.Second))
			}
			if got := e.resent.Load(); got != tt.resent {
				t.Fatalf("kernel_resent %d, want %d", got, tt.resent)
			}
			if got := e.sent.Load(); got != tt.resent {
				t.Fatalf("packets_sent grew by %d, want %d", got, tt.resent)
			}
			if got := e.meter.Count(); got != tt.resent {
				t.Fatalf("the rate meter counted %d, want %d", got, tt.resent)
			}
		})
	}
	// An unwatched destination (no connect probe to it) is not ours.
	e, _, _ := testEngine(t)
	e.handle(syn(50000, 7), true, time.Now())
	e.handle(syn(50000, 7), true, time.Now())
	if e.resent.Load() != 0 {
		t.Fatalf("counted a SYN to an unwatched port")
	}
}
