package probe

import (
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
)

// TestReplyFilter runs the tap's L3/L4 filter in x/net/bpf's VM.
func TestReplyFilter(t *testing.T) {
	const tcpPort, udpPort = 40000, 40001
	opts := []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // IHL 6
	withOpts := func() []byte {
		s, d := them4.As4(), us4.As4()
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s[:], DstIP: d[:], Options: opts}
		tcp := &layers.TCP{SrcPort: 22, DstPort: tcpPort, SYN: true, ACK: true}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()
	tests := []struct {
		name   string
		pkt    []byte
		allTCP bool
		keep   bool
	}{
		{"v4 syn-ack to our port", mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: tcpPort, SYN: true, ACK: true}), false, true},
		{"v4 with IP options", withOpts, false, true},
		{"v4 tcp to another port", mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 443}), false, false},
		{"v4 tcp to another port, connect probes running", mustPkt(t, them4, us4, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 443}), true, true},
		{"v4 udp reply", mustPkt(t, them4, us4, protoUDP, &layers.UDP{SrcPort: 53, DstPort: udpPort}), false, true},
		{"v4 udp elsewhere", mustPkt(t, them4, us4, protoUDP, &layers.UDP{SrcPort: 53, DstPort: 5353}), true, false},
		{"v4 icmp", mustPkt(t, fw4, us4, protoICMP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)}), false, true},
		{"v6 syn-ack to our port", mustPkt(t, them6, us6, protoTCP, &layers.TCP{SrcPort: 22, DstPort: tcpPort, SYN: true, ACK: true}), false, true},
		{"v6 tcp elsewhere", mustPkt(t, them6, us6, protoTCP, &layers.TCP{SrcPort: 22, DstPort: 8443}), false, false},
		{"v6 udp reply", mustPkt(t, them6, us6, protoUDP, &layers.UDP{SrcPort: 123, DstPort: udpPort}), false, true},
		{"v6 icmpv6", mustPkt(t, fw6, us6, protoICMPv6, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 1)}), false, true},
		{"not IP", []byte{0x00, 0x01, 0x08, 0x00, 0x06, 0x04}, true, false},
		{"empty", nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := replyFilter([]uint16{39999, tcpPort, 40002}, udpPort, tt.allTCP).assemble()
			if err != nil {
				t.Fatal(err)
			}
			vm, err := bpf.NewVM(ins)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if kept := n > 0; kept != tt.keep {
				t.Fatalf("kept %v, want %v", kept, tt.keep)
			}
		})
	}
	if _, err := tapFilter([]uint16{tcpPort}, udpPort, false, false); err != nil {
		t.Fatalf("full filter does not assemble: %v", err)
	}
}
