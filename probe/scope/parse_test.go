package scope

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // canonical address, or "" when refused
		reason   string // substring of the refusal
	}{
		{"ipv4", "10.1.2.3", "10.1.2.3", ""},
		{"ipv6", "2001:db8::1", "2001:db8::1", ""},
		{"ipv6 upper case", "2001:DB8::1", "2001:db8::1", ""},
		{"ipv4-mapped judged as ipv4", "::ffff:10.1.2.3", "10.1.2.3", ""},
		{"loopback", "127.0.0.1", "127.0.0.1", ""},
		{"leading zero octet", "010.1.1.1", "", "leading zero"},
		{"leading zeros", "10.01.1.1", "", "leading zero"},
		{"hex octet", "0x0a.1.1.1", "", "hexadecimal"},
		{"hex integer", "0x0a010101", "", "hexadecimal"},
		{"decimal integer", "167837953", "", "shorthand"},
		{"shorthand", "10.1", "", "shorthand"},
		{"three parts", "10.1.1", "", "shorthand"},
		{"trailing dot", "10.1.1.1.", "", "trailing dot"},
		{"five parts", "10.1.1.1.1", "", "not an IPv4 address"},
		{"octet above 255", "10.1.1.256", "", "above 255"},
		{"zone", "fe80::1%eth0", "", "zone"},
		{"leading space", " 10.1.1.1", "", "whitespace"},
		{"trailing newline", "10.1.1.1\n", "", "whitespace"},
		{"tab", "10.1.1.1\t", "", "whitespace"},
		{"non-ascii digit", "١٠.1.1.1", "", "non-ASCII"},
		{"prefix", "10.0.0.0/24", "", "not a canonical"},
		{"empty", "", "", "empty"},
		{"unspecified v4", "0.0.0.0", "", "unspecified"},
		{"unspecified v6", "::", "", "unspecified"},
		{"multicast", "224.0.0.1", "", "multicast"},
		{"multicast v6", "ff02::1", "", "multicast"},
		{"broadcast", "255.255.255.255", "", "broadcast"},
		{"link-local v6", "fe80::1", "", "link-local"},
		{"mapped unspecified", "::ffff:0.0.0.0", "", "unspecified"},
		{"ipv6 with brackets", "[2001:db8::1]", "", "not a canonical"},
		{"hostname", "example.com", "", "not a canonical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseTarget(tt.in)
			if tt.want != "" {
				if err != nil || a.String() != tt.want {
					t.Fatalf("ParseTarget(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseTarget(%q) = %v, want refusal", tt.in, a)
			}
			if !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("ParseTarget(%q) error %q, want ErrBadTarget mentioning %q", tt.in, err, tt.reason)
			}
		})
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
		reason   string
	}{
		{"v4", "10.0.0.0/24", "10.0.0.0/24", ""},
		{"v6", "2001:db8::/32", "2001:db8::/32", ""},
		{"bare address", "10.0.0.1", "10.0.0.1/32", ""},
		{"host bits", "10.0.0.1/24", "", "host bits set; did you mean 10.0.0.0/24"},
		{"leading zero length", "10.0.0.0/024", "", "plain decimal"},
		{"empty length", "10.0.0.0/", "", "plain decimal"},
		{"signed length", "10.0.0.0/+24", "", "plain decimal"},
		{"too long", "10.0.0.0/33", "", "10.0.0.0/33"},
		{"mapped", "::ffff:10.0.0.0/104", "", "IPv4-mapped"},
		{"zone", "fe80::%eth0/64", "", "zone"},
		{"octal", "010.0.0.0/8", "", "leading zero"},
		{"space", "10.0.0.0/24 ", "", "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePrefix(tt.in)
			if tt.want != "" {
				if err != nil || p.String() != tt.want {
					t.Fatalf("ParsePrefix(%q) = %v, %v", tt.in, p, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want error mentioning %q", tt.in, p, err, tt.reason)
			}
		})
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // FormatPorts of the result, or "" when refused
	}{
		{"example", "tcp:22,80,443,8000-8100 udp:53", "tcp:22,80,443,8000-8100 udp:53"},
		{"sorted and deduplicated", "udp:123,53 tcp:443,22,22,21-23", "tcp:21-23,443 udp:53,123"},
		{"whole range", "tcp:1-65535", "tcp:1-65535"},
		{"single", "udp:53", "udp:53"},
		{"port zero", "tcp:0", ""},
		{"above 65535", "tcp:65536", ""},
		{"leading zero", "tcp:022", ""},
		{"backwards range", "tcp:100-90", ""},
		{"unknown proto", "sctp:22", ""},
		{"upper case proto", "TCP:22", ""},
		{"proto twice", "tcp:22 tcp:80", ""},
		{"double space", "tcp:22  udp:53", ""},
		{"trailing comma", "tcp:22,", ""},
		{"tab", "tcp:22\tudp:53", ""},
		{"no proto", "22,80", ""},
		{"empty", "", ""},
		{"plus", "tcp:+22", ""},
		{"open range", "tcp:22-", ""},
		{"repeated full ranges stay bounded", "tcp:" + strings.Repeat("1-65535,", 400) + "1", "tcp:1-65535"},
		{"too long", "tcp:" + strings.Repeat("1,", 2100) + "1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports, err := ParsePorts(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParsePorts(%q) = %v, want error", tt.in, ports)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.in, err)
			}
			if got := FormatPorts(ports); got != tt.want {
				t.Fatalf("FormatPorts = %q, want %q", got, tt.want)
			}
			if !slices.IsSortedFunc(ports, comparePorts) || len(slices.Compact(slices.Clone(ports))) != len(ports) {
				t.Fatal("ports not sorted and unique")
			}
		})
	}
}

// fakeResolver answers from a table and counts calls, so tests can prove a
// hostname is resolved exactly once.
type fakeResolver struct {
	answers map[string][]netip.Addr
	calls   int
}

func (f *fakeResolver) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	f.calls++
	a, ok := f.answers[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return a, nil
}

func TestResolve(t *testing.T) {
	s := mustScope(t, baseDoc())
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	f := &fakeResolver{answers: map[string][]netip.Addr{
		"web.example":    addrs("10.0.0.20", "2001:db8::20", "10.0.0.20"),
		"mixed.example":  addrs("10.0.0.20", "10.0.9.9"),
		"excl.example":   addrs("10.0.0.5"),
		"mapped.example": addrs("::ffff:10.0.0.30"),
		"mcast.example":  addrs("224.0.0.1"),
		"zone.example":   {netip.MustParseAddr("fe80::1%eth0")},
		"empty.example":  {},
		"rebind.example": addrs("10.0.0.40"),
	}}
	tests := []struct {
		name, target string
		want         []netip.Addr
		reason       string
	}{
		{"literal", "10.0.0.17", addrs("10.0.0.17"), ""},
		{"hostname pinned, sorted, unique", "web.example", addrs("10.0.0.20", "2001:db8::20"), ""},
		{"upper-case hostname", "WEB.example", addrs("10.0.0.20", "2001:db8::20"), ""},
		{"one address out rejects all", "mixed.example", nil, "10.0.9.9"},
		{"excluded address named", "excl.example", nil, "10.0.0.5 is excluded by 10.0.0.0/28"},
		{"mapped answer judged as v4", "mapped.example", addrs("10.0.0.30"), ""},
		{"multicast answer", "mcast.example", nil, "multicast"},
		{"zone answer", "zone.example", nil, "zone"},
		{"no answer", "empty.example", nil, "no address"},
		{"unknown host", "nope.example", nil, "no such host"},
		{"trailing dot", "web.example.", nil, "trailing dot"},
		{"underscore", "_srv.example", nil, "character"},
		{"hyphen edge", "-web.example", nil, "hyphen"},
		{"numeric tld is an address", "10.0.0", nil, "shorthand"},
		{"literal out of scope", "192.0.2.1", nil, "none of the scope's CIDRs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Resolve(context.Background(), tt.target, f.resolve)
			if tt.reason != "" {
				if err == nil || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("Resolve(%q) = %v, %v; want error mentioning %q", tt.target, got, err, tt.reason)
				}
				return
			}
			if err != nil || !slices.Equal(got.Addrs, tt.want) {
				t.Fatalf("Resolve(%q) = %v, %v; want %v", tt.target, got.Addrs, err, tt.want)
			}
		})
	}
	// Resolved once: a second answer (rebinding) is never consulted for a
	// Target already returned.
	f.calls = 0
	tg, err := s.Resolve(context.Background(), "rebind.example", f.resolve)
	if err != nil || f.calls != 1 {
		t.Fatalf("resolve: %v, %d calls", err, f.calls)
	}
	f.answers["rebind.example"] = addrs("192.0.2.66")
	if !slices.Equal(tg.Addrs, addrs("10.0.0.40")) {
		t.Fatal("pinned addresses changed")
	}
}

// TestResolveSystemLocalhost uses the real resolver on "localhost" only,
// which is answered from the hosts file without network traffic.
func TestResolveSystemLocalhost(t *testing.T) {
	d := baseDoc()
	d.CIDRs = []string{"127.0.0.0/17", "::1/128"}
	d.Exclude = nil
	s := mustScope(t, d)
	tg, err := s.Resolve(context.Background(), "localhost", nil)
	if err != nil {
		t.Fatalf("Resolve(localhost): %v", err)
	}
	for _, a := range tg.Addrs {
		if !a.IsLoopback() {
			t.Fatalf("localhost resolved to %s", a)
		}
	}
}
