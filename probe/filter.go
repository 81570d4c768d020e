package probe

import (
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// bpfProg is a tiny assembler for classic BPF with named jump targets.
type bpfProg struct {
	ins    []bpf.Instruction
	labels map[string]int
	jumps  map[int][2]string // instruction index -> true, false targets ("" = next)
}

func newBPFProg() *bpfProg {
	return &bpfProg{labels: map[string]int{}, jumps: map[int][2]string{}}
}

func (p *bpfProg) label(name string)        { p.labels[name] = len(p.ins) }
func (p *bpfProg) add(i ...bpf.Instruction) { p.ins = append(p.ins, i...) }

// jeq jumps to ifTrue when A == v, else to ifFalse.
func (p *bpfProg) jeq(v uint32, ifTrue, ifFalse string) {
	p.jumps[len(p.ins)] = [2]string{ifTrue, ifFalse}
	p.ins = append(p.ins, bpf.JumpIf{Cond: bpf.JumpEqual, Val: v})
}

// anyOf jumps to ifTrue when A is one of vs, else to ifFalse.
func (p *bpfProg) anyOf(vs []uint16, ifTrue, ifFalse string) {
	for i, v := range vs {
		if i == len(vs)-1 {
			p.jeq(uint32(v), ifTrue, ifFalse)
		} else {
			p.jeq(uint32(v), ifTrue, "")
		}
	}
	if len(vs) == 0 {
		p.ja(ifFalse)
	}
}

// ja jumps to target unconditionally.
func (p *bpfProg) ja(target string) {
	p.jumps[len(p.ins)] = [2]string{target, ""}
	p.ins = append(p.ins, bpf.Jump{})
}

func (p *bpfProg) assemble() ([]bpf.Instruction, error) {
	out := append([]bpf.Instruction(nil), p.ins...)
	skip := func(at int, name string) (uint32, error) {
		if name == "" {
			return 0, nil
		}
		to, ok := p.labels[name]
		if !ok || to <= at {
			return 0, fmt.Errorf("bpf: bad jump from %d to %q", at, name)
		}
		return uint32(to - at - 1), nil
	}
	for at, t := range p.jumps {
		st, err := skip(at, t[0])
		if err != nil {
			return nil, err
		}
		sf, err := skip(at, t[1])
		if err != nil {
			return nil, err
		}
		switch j := out[at].(type) {
		case bpf.JumpIf:
			if st > 255 || sf > 255 {
				return nil, fmt.Errorf("bpf: jump too far at %d", at)
			}
			j.SkipTrue, j.SkipFalse = uint8(st), uint8(sf)
			out[at] = j
		case bpf.Jump:
			out[at] = bpf.Jump{Skip: st}
		}
	}
	return out, nil
}

// replyFilter is the L3/L4 part of the tap's filter, on a packet that
// starts at the IP header: keep ICMP and ICMPv6 (echo replies and errors
// quoting our probes), TCP to tcpPorts and UDP to udpPort (replies to the
// raw probes), every TCP packet when allTCP (connect-based probes use
// kernel-chosen ports), and IPv6 with extension headers (decided in user
// space). Everything else never leaves the kernel, so a busy appliance's
// own traffic costs the engine nothing. It runs in x/net/bpf's VM in
// tests.
func replyFilter(tcpPorts []uint16, udpPort uint16, allTCP bool) *bpfProg {
	p := newBPFProg()
	p.add(bpf.LoadAbsolute{Off: 0, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	p.jeq(4, "v4", "")
	p.jeq(6, "v6", "drop")

	p.label("v4")
	p.add(bpf.LoadAbsolute{Off: 9, Size: 1})
	p.jeq(protoICMP, "accept", "")
	p.jeq(protoTCP, "v4tcp", "")
	p.jeq(protoUDP, "v4udp", "drop")
	p.label("v4tcp")
	if allTCP {
		p.ja("accept")
	}
	p.add(bpf.LoadMemShift{Off: 0}, bpf.LoadIndirect{Off: 2, Size: 2})
	p.anyOf(tcpPorts, "accept", "drop")
	p.label("v4udp")
	p.add(bpf.LoadMemShift{Off: 0}, bpf.LoadIndirect{Off: 2, Size: 2})
	p.jeq(uint32(udpPort), "accept", "drop")

	p.label("v6")
	p.add(bpf.LoadAbsolute{Off: 6, Size: 1})
	p.jeq(protoICMPv6, "accept", "")
	p.jeq(0, "accept", "")  // hop-by-hop options
	p.jeq(43, "accept", "") // routing
	p.jeq(60, "accept", "") // destination options
	p.jeq(protoTCP, "v6tcp", "")
	p.jeq(protoUDP, "v6udp", "drop")
	p.label("v6tcp")
	if allTCP {
		p.ja("accept")
	}
	p.add(bpf.LoadAbsolute{Off: 42, Size: 2})
	p.anyOf(tcpPorts, "accept", "drop")
	p.label("v6udp")
	p.add(bpf.LoadAbsolute{Off: 42, Size: 2})
	p.jeq(uint32(udpPort), "accept", "drop")

	p.label("accept")
	p.add(bpf.RetConstant{Val: 0xffff})
	p.label("drop")
	p.add(bpf.RetConstant{Val: 0})
	return p
}

// tapFilter is the tap's kernel filter: outgoing packets only if
// keepOutgoing (the kernel-built packets of connect-based probes), IPv4
// and IPv6 only (by the packet socket's protocol, which x/net/bpf's VM
// cannot run, hence the split), then replyFilter.
func tapFilter(tcpPorts []uint16, udpPort uint16, allTCP, keepOutgoing bool) ([]bpf.RawInstruction, error) {
	var prefix []bpf.Instruction
	if !keepOutgoing {
		prefix = append(prefix,
			bpf.LoadExtension{Num: bpf.ExtType},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: pktOutgoing, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
		)
	}
	prefix = append(prefix,
		bpf.LoadExtension{Num: bpf.ExtProto},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IP, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IPV6, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	)
	rest, err := replyFilter(tcpPorts, udpPort, allTCP).assemble()
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(append(prefix, rest...))
}
