package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func defaultTruth() Truth {
	return Truth{Rules: DefaultRules(), Services: DefaultServices(),
		Zones: []netip.Prefix{netip.MustParsePrefix(targetHosts4), netip.MustParsePrefix(targetHosts6)}}
}

func TestExpect(t *testing.T) {
	tr := defaultTruth()
	tests := []struct {
		name       string
		addr       string
		proto      string
		port       uint16
		state      State
		reason     string
		icmp, code int
		rule       string
	}{
		{"open tcp banner", "198.18.1.1", TCP, 22, Open, "syn-ack", -1, -1, ""},
		{"open tcp v6", "fd00:f1a9:1::1", TCP, 443, Open, "syn-ack", -1, -1, ""},
		{"closed tcp", "198.18.1.1", TCP, 25, Closed, "rst", -1, -1, ""},
		{"dropped port", "198.18.1.1", TCP, 3306, Filtered, "no-reply", -1, -1, "tcp-3306-drop"},
		{"firewall reset", "198.18.1.9", TCP, 8080, Closed, "rst", -1, -1, "tcp-8080-reset"},
		{"admin v4", "198.18.1.9", TCP, 8443, Rejected, "icmp-unreachable", 3, 13, "tcp-8443-admin"},
		{"admin v6", "fd00:f1a9:1::9", TCP, 8443, Rejected, "icmp-unreachable", 1, 1, "tcp-8443-admin"},
		{"tcp port unreachable v4 is a reject", "198.18.1.9", TCP, 8081, Rejected, "icmp-unreachable", 3, 3, "tcp-8081-port-unreach"},
		{"tcp port unreachable v6 is a reject", "fd00:f1a9:1::9", TCP, 8081, Rejected, "icmp-unreachable", 1, 4, "tcp-8081-port-unreach"},
		{"udp 8081 has no rule", "198.18.1.9", UDP, 8081, Closed, "icmp-unreachable", 3, 3, ""},
		{"host prohibited v4", "198.18.1.100", TCP, 22, Rejected, "icmp-unreachable", 3, 10, "prohibited-hosts"},
		{"addr unreachable v6", "fd00:f1a9:1::7f", UDP, 53, Rejected, "icmp-unreachable", 1, 3, "prohibited-hosts"},
		{"dark tcp", "198.18.1.200", TCP, 22, Filtered, "no-reply", -1, -1, "dark-hosts"},
		{"dark udp", "198.18.1.254", UDP, 53, OpenFiltered, "no-reply", -1, -1, "dark-hosts"},
		{"dark echo", "198.18.1.254", ICMP, 0, Filtered, "no-reply", -1, -1, "dark-hosts"},
		{"host .255 is a host", "198.18.1.255", TCP, 80, Open, "syn-ack", -1, -1, ""},
		{"udp dns", "198.18.1.3", UDP, 53, Open, "udp-reply", -1, -1, ""},
		{"udp silent", "198.18.1.3", UDP, 514, OpenFiltered, "no-reply", -1, -1, ""},
		{"udp closed v4", "198.18.1.3", UDP, 161, Closed, "icmp-unreachable", 3, 3, ""},
		{"udp closed v6", "fd00:f1a9:1::3", UDP, 161, Closed, "icmp-unreachable", 1, 4, ""},
		{"udp dropped", "198.18.1.3", UDP, 1900, OpenFiltered, "no-reply", -1, -1, "udp-1900-drop"},
		{"udp admin", "198.18.1.3", UDP, 5060, Rejected, "icmp-unreachable", 3, 13, "udp-5060-admin"},
		{"echo", "fd00:f1a9:1::3", ICMP, 0, Open, "echo-reply", -1, -1, ""},
		{"echo prohibited", "198.18.1.101", ICMP, 0, Rejected, "icmp-unreachable", 3, 10, "prohibited-hosts"},
		{"v4-mapped v6 is v4", "::ffff:198.18.1.1", TCP, 22, Open, "syn-ack", -1, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := tr.Expect(netip.MustParseAddr(tt.addr), tt.proto, tt.port)
			if !ok {
				t.Fatal("not in truth")
			}
			want := Expectation{State: tt.state, Reason: tt.reason, ICMPType: tt.icmp, ICMPCode: tt.code, Rule: tt.rule}
			if e != want {
				t.Errorf("got %+v, want %+v", e, want)
			}
		})
	}
}

func TestExpectOutsideZones(t *testing.T) {
	tr := defaultTruth()
	for _, a := range []string{"198.18.2.1", "198.18.0.2", "fd00:f1a9:1::100", "fd00:f1a9:2::1", "10.0.0.1"} {
		if _, ok := tr.Expect(netip.MustParseAddr(a), TCP, 22); ok {
			t.Errorf("%s: has a truth, want none", a)
		}
	}
	if _, ok := tr.Expect(netip.MustParseAddr("198.18.1.1"), "sctp", 22); ok {
		t.Error("sctp: has a truth, want none")
	}
}

// TestRuleset pins the nftables rendering of a few rules; the lab tests
// prove the rendered ruleset behaves as the truth says.
func TestRuleset(t *testing.T) {
	l := &Lab{
		Target: Zone{V4: netip.MustParsePrefix(targetHosts4), V6: netip.MustParsePrefix(targetHosts6)},
		Truth:  defaultTruth(),
	}
	rs := l.Ruleset()
	for _, want := range []string{
		`iifname "vscan" ip daddr 198.18.1.200-198.18.1.254 drop comment "dark-hosts"`,
		`iifname "vscan" ip6 daddr fd00:f1a9:1::c8-fd00:f1a9:1::fe drop comment "dark-hosts"`,
		`iifname "vscan" ip daddr 198.18.1.100-198.18.1.127 reject with icmp type host-prohibited`,
		`iifname "vscan" ip6 daddr fd00:f1a9:1::64-fd00:f1a9:1::7f reject with icmpv6 type addr-unreachable`,
		`iifname "vscan" ip daddr 198.18.1.0-198.18.1.255 tcp dport 8080 reject with tcp reset`,
		`iifname "vscan" ip6 daddr fd00:f1a9:1::-fd00:f1a9:1::ff udp dport 5060 reject with icmpx type admin-prohibited`,
		`iifname "vscan" ip daddr 198.18.1.0-198.18.1.255 tcp dport 8081 reject with icmpx type port-unreachable comment "tcp-8081-port-unreach"`,
	} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rs)
		}
	}
}

func TestOwnerPID(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		ok   bool
	}{
		{"fiqlab-123-abcdef-scan", 123, true},
		{"fiqlab-123", 0, false},
		{"fiqlab-x-abcdef-fw", 0, false},
		{"fiqlab--abc-fw", 0, false},
		{"other-123-abc-fw", 0, false},
	}
	for _, tt := range tests {
		pid, ok := ownerPID(tt.name)
		if pid != tt.pid || ok != tt.ok {
			t.Errorf("ownerPID(%q) = %d, %v; want %d, %v", tt.name, pid, ok, tt.pid, tt.ok)
		}
	}
}
