package probe

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// firewallEnv marks the child process running inside the test's namespace.
const firewallEnv = "FIQ_PROBE_FIREWALL_CHILD"

// firewallRules is an nftables ruleset on the namespace's loopback input:
// one port per firewall behaviour, for TCP and UDP, IPv4 and IPv6.
const firewallRules = `
table inet fiqtest {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 20001 drop
		tcp dport 20002 reject with tcp reset
		tcp dport 20003 reject with icmpx type admin-prohibited
		tcp dport 20005 reject with icmpx type port-unreachable
		udp dport 20011 drop
		udp dport 20012 reject with icmpx type admin-prohibited
	}
}
`

// TestFirewallClassification runs the engine against an nftables firewall
// in a network namespace the test creates (all traffic stays on that
// namespace's loopback): DROP must come out filtered (open|filtered for
// UDP), a TCP reset closed, ICMP admin-prohibited rejected with its type
// and code, for every kind, IPv4 and IPv6.
func TestFirewallClassification(t *testing.T) {
	needRoot(t)
	if os.Getenv(firewallEnv) == "" {
		for _, tool := range []string{"ip", "nft"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("needs %s (iproute2, nftables)", tool)
			}
		}
		ns := fmt.Sprintf("fiqfw%d", os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v\n%s", err, out)
		}
		defer exec.Command("ip", "netns", "del", ns).Run()
		if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("lo up: %v\n%s", err, out)
		}
		nft := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		nft.Stdin = strings.NewReader(firewallRules)
		if out, err := nft.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestFirewallClassification$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), firewallEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || testing.Verbose() {
			t.Logf("child:\n%s", out)
		}
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return
	}
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			a := netip.MustParseAddr(addr)
			for _, p := range []int{20000} {
				l, err := net.Listen("tcp", net.JoinHostPort(addr, fmt.Sprint(p)))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
			}
			uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 20010)))
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			go func() {
				b := make([]byte, 1500)
				for {
					n, from, err := uc.ReadFromUDPAddrPort(b)
					if err != nil {
						return
					}
					_, _ = uc.WriteToUDPAddrPort(b[:n], from)
				}
			}()
			var ports []Port
			for p := uint16(20000); p <= 20005; p++ {
				ports = append(ports, Port{"tcp", p})
			}
			for p := uint16(20010); p <= 20013; p++ {
				ports = append(ports, Port{"udp", p})
			}
			s, col := runEngine(t, Config{
				ScanID: "firewall", Targets: seqOf(a), Scope: prefixes{netip.PrefixFrom(a, a.BitLen())},
				Ports: ports, Kinds: []Kind{KindTCPSyn, KindTCPConnect, KindUDP, KindBanner, KindTLSHello}, Limits: Limits{Profile: 1000},
				ReadTimeout: 300 * time.Millisecond,
				Timeout:     300 * time.Millisecond, Retries: 1,
			})
			prohib := ICMP{Type: 3, Code: 13, From: addr}
			if a.Is6() {
				prohib = ICMP{Type: 1, Code: 1, From: addr}
			}
			portUnr := ICMP{Type: 3, Code: 3, From: addr}
			if a.Is6() {
				portUnr = ICMP{Type: 1, Code: 4, From: addr}
			}
			type want struct {
				st   State
				why  string
				icmp *ICMP
			}
			tcp := map[uint16]want{
				20000: {StateOpen, "", nil},
				20001: {StateFiltered, ReasonNoResponse, nil},
				20002: {StateClosed, "", nil},
				20003: {StateRejected, ReasonICMPProhib, &prohib},
				20004: {StateClosed, "", nil},
				// A REJECT with ICMP port unreachable (iptables' default):
				// a host answers a closed TCP port with a RST, so this is
				// the firewall's REJECT: rejected, and every kind, with or
				// without a tap, keeps type and code.
				20005: {StateRejected, ReasonICMPPortUnr, &portUnr},
			}
			check := func(k Kind, port uint16, w want) {
				t.Helper()
				r, ok := col.find(k, port)
				if !ok {
					t.Errorf("%s/%d: no result", k, port)
					return
				}
				if r.State != w.st || (w.why != "" && r.Reason != w.why) {
					t.Errorf("%s/%d: %s (%s), want %s (%s)", k, port, r.State, r.Reason, w.st, w.why)
				}
				if w.icmp != nil && (r.ICMP == nil || *r.ICMP != *w.icmp) {
					t.Errorf("%s/%d: icmp %+v, want %+v", k, port, r.ICMP, w.icmp)
				}
				if w.st == StateFiltered && r.Retries != 1 {
					t.Errorf("%s/%d: %d retries, want 1", k, port, r.Retries)
				}
			}
			for p, w := range tcp {
				// The connect kinds share the tap's view of a port while
				// they run at the same time.
				for _, k := range []Kind{KindTCPSyn, KindTCPConnect, KindBanner, KindTLSHello} {
					check(k, p, w)
				}
			}
			check(KindUDP, 20010, want{StateOpen, ReasonUDPResponse, nil})
			check(KindUDP, 20011, want{StateOpenFiltered, ReasonNoResponse, nil})
			check(KindUDP, 20012, want{StateRejected, ReasonICMPProhib, &prohib})
			check(KindUDP, 20013, want{StateClosed, ReasonICMPPortUnr, &portUnr})
			if s.Worst100ms > s.WindowLimit || s.UnmatchedReplies != 0 {
				t.Errorf("summary: worst %d limit %d unmatched %d", s.Worst100ms, s.WindowLimit, s.UnmatchedReplies)
			}

			// Without raw sockets there is no tap: the connect kinds read
			// ICMP errors from their socket's error queue instead, and
			// must tell the same story (IPv6 included, where the kernel
			// does not fail the connect).
			var tcpPorts []Port
			for p := uint16(20000); p <= 20005; p++ {
				tcpPorts = append(tcpPorts, Port{"tcp", p})
			}
			_, col = runEngine(t, Config{
				ScanID: "firewall-noraw", Targets: seqOf(a), Scope: prefixes{netip.PrefixFrom(a, a.BitLen())},
				Ports: tcpPorts, Kinds: []Kind{KindTCPSyn, KindBanner}, Limits: Limits{Profile: 1000},
				Timeout: 300 * time.Millisecond, Retries: 1, ReadTimeout: 300 * time.Millisecond, NoRaw: true,
			})
			for p, w := range tcp {
				check(KindTCPConnect, p, w)
				check(KindBanner, p, w)
			}
		})
	}
}
