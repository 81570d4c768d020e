package scope

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"os"
	"testing"
)

// FuzzDecodeDocument: the strict decoder never panics, and whatever it
// accepts and validates survives the canonical round trip: decoding the
// canonical encoding gives a document with the same canonical encoding.
func FuzzDecodeDocument(f *testing.F) {
	// Seeds: a valid document, duplicate and case-folded keys, a null,
	// a float, an offset time, a non-object and invalid UTF-8.
	f.Add([]byte(`{"id":"v1","tenant":"t1","name":"lab","environment":"non-production","cidrs":["192.0.2.0/28"],"ports":"","probes":["icmp-echo"],"not_before":"2026-01-01T00:00:00Z","not_after":"2027-01-01T00:00:00Z","max_pps":10}`))
	f.Add([]byte(`{"id":"a","id":"b"}`))
	f.Add([]byte(`{"ID":"a"}`))
	f.Add([]byte(`{"cidrs":null}`))
	f.Add([]byte(`{"max_pps":1.5}`))
	f.Add([]byte(`{"not_before":"2026-01-01T00:00:00+01:00"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("{\"name\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDocument(data)
		if err != nil || d.Validate() != nil {
			return
		}
		c1, err := d.Canonical()
		if err != nil {
			t.Fatalf("valid document has no canonical form: %v", err)
		}
		d2, err := DecodeDocument(c1)
		if err != nil {
			t.Fatalf("canonical form does not decode: %v\n%s", err, c1)
		}
		c2, err := d2.Canonical()
		if err != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("canonical round trip differs:\n%s\n%s", c1, c2)
		}
	})
}

// FuzzVerify: Verify never panics, and any envelope it accepts carries
// exactly the canonical document that the test key signed (the seed), so a
// mutation can change formatting but never meaning.
func FuzzVerify(f *testing.F) {
	signed, err := Sign(baseDoc(), testKey)
	if err != nil {
		f.Fatal(err)
	}
	want, _, _ := Open(signed)
	wantCanon, _ := want.Canonical()
	// Seeds: the valid envelope, the envelope reformatted, a truncation
	// and the committed vectors.
	f.Add(signed)
	f.Add(bytes.ReplaceAll(signed, []byte(","), []byte(", ")))
	f.Add(signed[:len(signed)-20])
	if v, err := os.ReadFile("testdata/vectors.json"); err == nil {
		f.Add(v)
	}
	pub := testKey.Public().(ed25519.PublicKey)
	p := testProfile(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Verify(data, pub, testNow, p)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Canonical(), wantCanon) {
			t.Fatalf("accepted a document the key never signed:\n%s", s.Canonical())
		}
	})
}

// FuzzParseTarget: an accepted target is unmapped, has no zone, prints in
// canonical form and parses back to itself; and the parser agrees with
// Contains on a scope holding it.
func FuzzParseTarget(f *testing.F) {
	// Seeds: canonical and refused forms from TestParseTarget.
	for _, s := range []string{"10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3", "010.1.1.1", "0x0a.1.1.1", "10.1", "10.1.1.1.", "fe80::1%eth0", " 10.1.1.1", "255.255.255.255", "", "1.2.3.4/32"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseTarget(s)
		if err != nil {
			return
		}
		if a.Zone() != "" || a.Is4In6() || !a.IsValid() {
			t.Fatalf("ParseTarget(%q) = %v", s, a)
		}
		b, err := ParseTarget(a.String())
		if err != nil || b != a {
			t.Fatalf("ParseTarget(%q) = %v, but %q parses as %v, %v", s, a, a.String(), b, err)
		}
	})
}

// FuzzParsePorts: accepted specs are sorted, unique, and FormatPorts gives a
// spec that parses to the same ports.
func FuzzParsePorts(f *testing.F) {
	// Seeds: the docs example and refused forms.
	for _, s := range []string{"tcp:22,80,443,8000-8100 udp:53,123", "tcp:1-65535", "tcp:0", "tcp:22  udp:53", "tcp:022", "udp:53,53", "tcp:5-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, err := ParsePorts(s)
		if err != nil {
			return
		}
		back, err := ParsePorts(FormatPorts(ports))
		if err != nil || len(back) != len(ports) {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
		for i := range back {
			if back[i] != ports[i] || ports[i].Number == 0 || i > 0 && comparePorts(ports[i-1], ports[i]) >= 0 {
				t.Fatalf("round trip of %q: %v vs %v", s, back, ports)
			}
		}
	})
}

// FuzzParsePrefix: accepted prefixes are masked, zone-free and not
// IPv4-mapped, and their String form parses back to the same prefix.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.0/24", "2001:db8::/32", "10.0.0.1", "10.0.0.1/24", "10.0.0.0/024", "::ffff:10.0.0.0/104"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			t.Fatalf("ParsePrefix(%q) = %v", s, p)
		}
		q, err := ParsePrefix(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip of %q: %v, %v", s, q, err)
		}
	})
}

// FuzzCheckPrefix: CheckPrefix agrees with asking Contains of every
// address of the prefix (brute force, so the prefix is kept to at most 4096
// addresses), and an out-of-scope verdict names an address or an exclude
// that really is the reason.
func FuzzCheckPrefix(f *testing.F) {
	// Seeds: a prefix inside, one across an exclude, one across the end of
	// a CIDR, one in IPv6 across two adjacent CIDRs.
	f.Add([]byte{10, 20, 2, 0}, uint8(24))
	f.Add([]byte{10, 20, 1, 0}, uint8(24))
	f.Add([]byte{10, 30, 1, 0}, uint8(23))
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(116))
	d := baseDoc()
	d.CIDRs = []string{"10.20.0.0/16", "10.30.0.0/24", "10.30.1.0/25", "2001:db8:20::/120", "2001:db8:20::100/120"}
	d.Exclude = []string{"10.20.1.128/25", "10.20.7.7", "2001:db8:20::80/124"}
	s := mustScope(f, d)
	f.Fuzz(func(t *testing.T, raw []byte, bits uint8) {
		var a netip.Addr
		switch len(raw) {
		case 4:
			a = netip.AddrFrom4([4]byte(raw))
		case 16:
			a = netip.AddrFrom16([16]byte(raw))
		default:
			return
		}
		if int(bits) > a.BitLen() || a.BitLen()-int(bits) > 12 {
			return
		}
		p := netip.PrefixFrom(a, int(bits)).Masked()
		err := s.CheckPrefix(p)
		all := true
		for x := p.Addr(); p.Contains(x); x = x.Next() {
			if !s.Contains(x) {
				all = false
				break
			}
			if x == lastOf(p) {
				break
			}
		}
		if all != (err == nil) {
			t.Fatalf("CheckPrefix(%s) = %v, brute force says all in scope = %v", p, err, all)
		}
		if err != nil && !errors.Is(err, ErrOutOfScope) {
			t.Fatalf("CheckPrefix(%s) = %v", p, err)
		}
	})
}

func lastOf(p netip.Prefix) netip.Addr {
	iv := prefixInterval(p)
	return fromU128(iv.hi, p.Addr().Is4())
}
